"""`scripts/bench` → `python -m bench`: every benchmark against its baseline, in one bounded run.

Writes bench/results/<UTC time>/report.json, report.md and report.png, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import alerts, imports, login, notifications, page
from bench.environment import bench_infra, running_suite
from bench.report import Result, markdown, write

RESULTS = Path(__file__).parent / "results"
BENCHMARKS = ("page", "login", "alerts", "import", "notifications")


async def run(selected: list[str], seconds: float, quick: bool) -> list[Result]:
    results: list[Result] = []
    infra = bench_infra()
    async with running_suite(infra) as suite:
        for name in selected:
            print(f"running {name}…", flush=True)
            if name == "page":
                results.append(await page.run(suite, seconds))
            elif name == "login":
                results.append(await login.run(suite, seconds))
            elif name == "alerts":
                results.append(await alerts.run(suite, 1_000 if quick else 10_000))
            elif name == "import":
                results.append(await imports.run(suite))
            elif name == "notifications":
                results.append(await notifications.run(suite, 100 if quick else 1000))
            print(markdown(results[-1:], {"started_at": "", "machine": ""}).split("\n")[6], flush=True)
    from tests.conftest import _forget_run

    await _forget_run(infra)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="duration of each timed load (page and login run 3 rounds of it per side)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller volumes, for trying the command out")
    args = parser.parse_args()
    started = datetime.now(UTC)
    results = asyncio.run(run(args.only, args.seconds, args.quick))
    directory = write(results, RESULTS / started.strftime("%Y%m%dT%H%M%SZ"), started)
    print()
    print((directory / "report.md").read_text())
    print(f"report: {directory}/report.json, report.md, report.png")
    sys.exit(0)


if __name__ == "__main__":
    main()

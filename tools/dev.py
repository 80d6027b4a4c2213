"""`python -m tools.dev` (through `scripts/dev`): the whole suite on this machine, with demo data.

Creates the databases, starts the mail sink, the PayFiP simulator, the four services and the gateway,
seeds «Mairie de Démonstration», prints where to click, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from shared.plumbing.db import ensure_database
from tools.balancer import Balancer
from tools.processes import ROOT, ManagedProcess, ProcessGroup, ProcessSpec
from tools.seed import seed_demo
from tools.suite import SERVICES, SuiteConfig, suite_plan

VAR = ROOT / "var"


async def run(args: argparse.Namespace) -> int:
    config = SuiteConfig(
        database_url=os.environ.get("PORTAIL_DATABASE_URL", SuiteConfig.database_url),
        amqp_url=os.environ.get("PORTAIL_AMQP_URL", SuiteConfig.amqp_url),
        replicas={name: int(count) for name, count in (r.split("=", 1) for r in args.replicas)},
        log_level=args.log_level,
    )
    for service in SERVICES:
        if await ensure_database(config.database(service)):
            print(f"created database {config.database(service).rsplit('/', 1)[-1]}")
    group = ProcessGroup(VAR / "logs")
    mailsink = ManagedProcess(
        ProcessSpec(
            "mailsink",
            "tools.mailsink",
            8025,
            {
                "MAILSINK_SMTP_PORT": str(config.smtp_port),
                "MAILSINK_WEB_PORT": "8025",
                "MAILSINK_DIR": str(VAR / "mail"),
            },
            ready_path="/healthz",
        ),
        group.log_dir,
    )
    group.processes["mailsink"] = mailsink
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plan = suite_plan(config)
    balancers = [Balancer(f.name, f.port, f.targets) for f in plan.frontends]
    try:
        await mailsink.start()
        await mailsink.wait_ready()
        for balancer in balancers:
            await balancer.start()
        await group.start(plan.specs)
        public_url = f"http://demo.localhost:{config.ports['gateway']}"
        seeded = await seed_demo(config.url("invoices"), config.internal_token, public_url)
        (VAR / "demo-office-api-key.txt").write_text(seeded["office_api_key"] + "\n")
        print_banner(config, group, balancers)
        await stop.wait()
    except Exception as error:
        print(f"\nThe suite could not start: {error}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping…", flush=True)
        await group.stop()
        for balancer in balancers:
            await balancer.stop()
        print("stopped.")
    return 0


def print_banner(config: SuiteConfig, group: ProcessGroup, balancers: list[Balancer]) -> None:
    gateway = config.ports["gateway"]
    lines = [
        "",
        "Le portail des factures is running.",
        "",
        f"  Residents' portal (Mairie de Démonstration):  http://demo.localhost:{gateway}/",
        "  Mail sink (activation links arrive here):     http://127.0.0.1:8025/",
        f"  PayFiP simulator:                             {config.url('payfip')}/_control/operations",
        "",
        "  Demo residents (activate with «Activer mon compte», then read the mail sink):",
        "    marie.dupont@example.org, jean.martin@example.org, lucie.bernard@example.org",
        f"  Office API key of the demo town:              {Path('var/demo-office-api-key.txt')}",
        "",
        "  Services: "
        + ", ".join(f"{n} {p.spec.url}" for n, p in group.processes.items() if n != "mailsink"),
        *(
            f"  {f.name}: {len(f.targets)} replicas behind {config.url(f.name)} (round robin)"
            for f in balancers
        ),
        f"  Logs: {group.log_dir}/<process>.log     Press Ctrl-C to stop everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--replicas",
        nargs="*",
        default=[],
        metavar="SERVICE=N",
        help="run several replicas, e.g. notifier=3 payments=3 gateway=2",
    )
    parser.add_argument("--log-level", default="INFO")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()

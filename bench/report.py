"""What a benchmark run reports: JSON for machines, a markdown table for people, a PNG of the ratios."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Result:
    name: str
    what: str
    subject: dict[str, float]
    baseline: dict[str, float]
    # subject ÷ baseline on the benchmark's main figure (higher is better), when there is a baseline.
    ratio: float | None
    target: str
    met: bool | None
    notes: list[str] = field(default_factory=list)


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        f"# Benchmarks, {meta['started_at']}",
        "",
        f"Machine: {meta['machine']}. Each subject runs against its baseline in the same command.",
        "",
        "| benchmark | subject | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        subject = ", ".join(f"{k} {_fmt(v)}" for k, v in r.subject.items())
        baseline = ", ".join(f"{k} {_fmt(v)}" for k, v in r.baseline.items()) or "–"
        ratio = f"{r.ratio:.0%}" if r.ratio is not None else "–"
        met = {True: "yes", False: "**no**", None: "–"}[r.met]
        lines.append(f"| {r.name} | {subject} | {baseline} | {ratio} | {r.target} | {met} |")
    lines.append("")
    for r in results:
        if r.notes:
            lines.append(f"## {r.name}: {r.what}")
            lines.extend(f"- {note}" for note in r.notes)
            lines.append("")
    return "\n".join(lines)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_ratio = [r for r in results if r.ratio is not None]
    fig, ax = plt.subplots(figsize=(8, 0.6 * max(len(with_ratio), 1) + 1.5))
    names = [r.name for r in with_ratio]
    ratios = [100 * (r.ratio or 0) for r in with_ratio]
    colours = ["#18753c" if r.met else "#ce0500" for r in with_ratio]
    ax.barh(names, ratios, color=colours)
    for y, (value, r) in enumerate(zip(ratios, with_ratio, strict=True)):
        ax.text(value + 1, y, f"{value:.0f} %  (target {r.target})", va="center", fontsize=9)
    ax.set_xlabel("subject ÷ baseline (%)")
    ax.set_xlim(0, max([*ratios, 100]) * 1.35)
    ax.invert_yaxis()
    ax.set_title("Le portail des factures: benchmarks against their baselines")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: list[Result], directory: Path, started_at: datetime) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "started_at": started_at.astimezone(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
    }
    (directory / "report.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2, ensure_ascii=False)
        + "\n"
    )
    (directory / "report.md").write_text(markdown(results, meta))
    plot(results, directory / "report.png")
    return directory


def _cores() -> int:
    import os

    return os.cpu_count() or 0

"""Subject and baseline measured in alternating rounds, so that a machine that slows down or speeds up
during the run (a shared virtual machine does) weighs on both alike; the ratio is the median of the
rounds' ratios, and the spread of the rounds is reported beside it."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ROUNDS = 3

Measure = Callable[[], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class Rounds:
    subject: list[dict[str, float]]
    baseline: list[dict[str, float]]
    ratios: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def median(self, side: str, figure: str) -> float:
        rounds = self.subject if side == "subject" else self.baseline
        return statistics.median(r[figure] for r in rounds)

    def worst(self, side: str, figure: str) -> float:
        rounds = self.subject if side == "subject" else self.baseline
        return max(r[figure] for r in rounds)

    def total(self, side: str, figure: str) -> float:
        rounds = self.subject if side == "subject" else self.baseline
        return sum(r[figure] for r in rounds)

    def describe(self) -> str:
        return "ratios of the rounds: " + ", ".join(f"{r:.0%}" for r in self.ratios)


async def alternate(subject: Measure, baseline: Measure, figure: str, rounds: int = ROUNDS) -> Rounds:
    """Run subject and baseline `rounds` times each, alternating which goes first (S B, B S, S B…)."""
    subjects: list[dict[str, float]] = []
    baselines: list[dict[str, float]] = []
    for n in range(rounds):
        if n % 2 == 0:
            subjects.append(await subject())
            baselines.append(await baseline())
        else:
            baselines.append(await baseline())
            subjects.append(await subject())
    ratios = [s[figure] / b[figure] for s, b in zip(subjects, baselines, strict=True)]
    return Rounds(subjects, baselines, ratios)

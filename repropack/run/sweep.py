"""Seeds and sweeps: one run per combination of ``--sweep`` values and ``--seeds``, each with its name."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from repropack.errors import BadInput


@dataclass(frozen=True)
class PlannedRun:
    seed: int | None
    sets: tuple[str, ...]  # KEY=VALUE, the fixed --set first, then this combination's sweep values
    name: str | None  # None: the recorder's default name (command, overrides, seed)


def plan_runs(
    seeds: tuple[int, ...], sweeps: list[tuple[str, list[str]]], sets: tuple[str, ...], seed: int | None
) -> list[PlannedRun]:
    """Every combination, sweep values outermost, seeds innermost (``lr=0.1`` seeds 0..4, then ``lr=1``)."""
    chosen: list[int | None] = list(seeds) if seeds else [seed]
    combos = list(itertools.product(*[[f"{key}={value}" for value in values] for key, values in sweeps]))
    swept = {key for key, _ in sweeps}
    both = sorted(swept & {item.partition("=")[0] for item in sets})
    if both:
        raise BadInput(f"--set {both[0]} and --sweep {both[0]} are both given.", hint="Keep one of them.")
    return [PlannedRun(each, sets + combo, None) for combo in combos for each in chosen]

"""Hyper-parameters of the experiment, read from ``config.json``.

Both ``train`` and ``evaluate`` read the same file so that they agree on the model shape and on the
train/test split; a typed, frozen dataclass makes a typo in the JSON fail loudly instead of being
silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    """All knobs of one run. The training seed is not here: it comes from ``--seed``."""

    hidden_size: int = 64
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    test_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be strictly between 0 and 1, got {self.test_fraction}")
        if min(self.hidden_size, self.epochs, self.batch_size) < 1:
            raise ValueError("hidden_size, epochs and batch_size must all be at least 1")


def load_config(path: str | Path) -> Config:
    """Read a JSON config; unknown keys are an error so that misspelt settings are not ignored."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    known = {field.name for field in dataclasses.fields(Config)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown config keys {unknown}; known keys are {sorted(known)}")
    return Config(**raw)

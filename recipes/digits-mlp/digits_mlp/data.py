"""Load the 8x8 handwritten digits (scikit-learn's bundled copy of the UCI set) and split it.

The file is a gzipped CSV with one image per row: 64 pixel intensities in 0..16, then the label.
Only the standard library and torch are used, so the recipe's image needs nothing but torch.
The split is drawn from its own ``torch.Generator`` seeded by ``split_seed``: it never touches the
global RNG, so the test set is the same whatever the training seed, and ``evaluate`` sees exactly
the rows ``train`` held out.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import torch

NUM_PIXELS = 64
NUM_CLASSES = 10
MAX_PIXEL = 16.0


@dataclass(frozen=True)
class Split:
    """Features (float32, scaled to 0..1) and labels (int64) of the train and test parts."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def read_rows(path: str | Path, limit: int | None = None) -> list[list[float]]:
    """Parse the CSV; ``limit`` keeps only the first rows, which keeps unit tests fast."""
    rows: list[list[float]] = []
    with gzip.open(path, "rt", encoding="ascii", newline="") as handle:
        for line_no, record in enumerate(csv.reader(handle), start=1):
            if limit is not None and len(rows) >= limit:
                break
            if len(record) != NUM_PIXELS + 1:
                raise ValueError(f"{path}:{line_no}: expected {NUM_PIXELS + 1} columns, got {len(record)}")
            rows.append([float(value) for value in record])
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return rows


def load_digits(path: str | Path, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(features, labels)``: features shaped (n, 64) in [0, 1], labels shaped (n,) in 0..9."""
    table = torch.tensor(read_rows(path, limit), dtype=torch.float64)
    features = (table[:, :NUM_PIXELS] / MAX_PIXEL).to(torch.float32)
    labels = table[:, NUM_PIXELS].to(torch.int64)
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}")
    return features, labels


def split(features: torch.Tensor, labels: torch.Tensor, test_fraction: float, seed: int) -> Split:
    """Shuffle with a private generator and hold out ``round(n * test_fraction)`` rows (at least one)."""
    count = labels.shape[0]
    test_count = min(max(1, round(count * test_fraction)), count - 1)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    test_idx, train_idx = order[:test_count], order[test_count:]
    return Split(features[train_idx], labels[train_idx], features[test_idx], labels[test_idx])


def load_split(path: str | Path, test_fraction: float, seed: int, limit: int | None = None) -> Split:
    """Load the file and split it; the one entry point ``train`` and ``evaluate`` share."""
    features, labels = load_digits(path, limit)
    return split(features, labels, test_fraction, seed)

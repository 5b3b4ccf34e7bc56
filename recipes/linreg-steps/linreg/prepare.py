"""Step 1: read the raw points, standardize x, and write prepared/train.csv beside the code (the working
copy repropack gives every command), with the scaling the model needs to map back."""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path


def prepare(rows: list[tuple[float, float]]) -> tuple[list[tuple[float, float]], dict[str, float]]:
    xs = [x for x, _ in rows]
    mean, std = statistics.fmean(xs), statistics.pstdev(xs)
    return [((x - mean) / std, y) for x, y in rows], {"x_mean": mean, "x_std": std}


def read_points(path: str) -> list[tuple[float, float]]:
    with open(path, newline="") as handle:
        return [(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)]


def main(argv: list[str]) -> None:
    prepared, scaling = prepare(read_points(argv[0]))
    folder = Path("prepared")
    folder.mkdir(exist_ok=True)
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["x", "y"])
        writer.writerows([(f"{x:.6f}", f"{y:.4f}") for x, y in prepared])
    (folder / "scaling.json").write_text(json.dumps(scaling, sort_keys=True))
    print(f"prepared {len(prepared)} points into {folder / 'train.csv'}")


if __name__ == "__main__":
    main(sys.argv[1:])

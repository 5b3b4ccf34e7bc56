"""Step 2: fit y = slope * x + intercept by full-batch gradient descent on prepared/train.csv, as the
flags say (--lr, --epochs: the spec's params), and write metrics.json and model.json to --output."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from linreg.prepare import read_points


def fit(points: list[tuple[float, float]], lr: float, epochs: int, seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    slope, intercept = rng.uniform(-1, 1), rng.uniform(-1, 1)
    n = len(points)
    for _ in range(epochs):
        grad_slope = sum((slope * x + intercept - y) * x for x, y in points) * 2 / n
        grad_intercept = sum(slope * x + intercept - y for x, y in points) * 2 / n
        slope, intercept = slope - lr * grad_slope, intercept - lr * grad_intercept
    return slope, intercept


def mse(points: list[tuple[float, float]], slope: float, intercept: float) -> float:
    return sum((slope * x + intercept - y) ** 2 for x, y in points) / len(points)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    points = read_points(args.data)
    scaling = json.loads((Path(args.data).parent / "scaling.json").read_text())
    slope, intercept = fit(points, args.lr, args.epochs, args.seed)
    raw_slope = slope / scaling["x_std"]  # back to the units of the raw x
    raw_intercept = intercept - raw_slope * scaling["x_mean"]
    metrics = {"mse": round(mse(points, slope, intercept), 6), "slope": round(raw_slope, 6)}
    out = Path(args.output)
    (out / "metrics.json").write_text(json.dumps(metrics, sort_keys=True) + "\n")
    model = {"slope": round(raw_slope, 6), "intercept": round(raw_intercept, 6)}
    (out / "model.json").write_text(json.dumps(model, sort_keys=True) + "\n")
    print(f"fitted slope {raw_slope:.4f}, intercept {raw_intercept:.4f}, mse {metrics['mse']:.4f}")


if __name__ == "__main__":
    main()

"""Evaluate saved weights: ``python -m digits_mlp.evaluate --config C --data D --weights W --output O``.

Rebuilds the test split from the config's ``split_seed`` and scores it with the same function
``train`` uses, so the weights ``train`` wrote reproduce ``train``'s metrics exactly on CPU.
Writes ``O/metrics.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from digits_mlp.config import load_config
from digits_mlp.data import load_split
from digits_mlp.device import make_deterministic, pick_device
from digits_mlp.metrics import evaluate_model, summary_line, write_metrics
from digits_mlp.model import DigitsMLP


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line interface; ``--limit`` must match the one given to ``train`` (tests only)."""
    parser = argparse.ArgumentParser(prog="python -m digits_mlp.evaluate", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="hyper-parameters (JSON)")
    parser.add_argument("--data", type=Path, required=True, help="digits CSV, gzipped")
    parser.add_argument("--weights", type=Path, required=True, help="state_dict written by train")
    parser.add_argument("--output", type=Path, required=True, help="folder for metrics.json")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows (tests)")
    return parser.parse_args(argv)


def load_model(weights: Path, hidden_size: int, device: torch.device) -> DigitsMLP:
    """Build the model and load the weights; ``weights_only`` refuses pickled code in the file."""
    model = DigitsMLP(hidden_size)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.to(device)


def main(argv: list[str] | None = None) -> int:
    """Entry point: load the weights, score the held-out split, write the metrics."""
    args = parse_args(argv)
    config = load_config(args.config)
    make_deterministic()
    device = pick_device()
    data = load_split(args.data, config.test_fraction, config.split_seed, args.limit)
    model = load_model(args.weights, config.hidden_size, device)

    metrics = evaluate_model(model, data.test_x, data.test_y)
    write_metrics(args.output, {**metrics, "test_rows": data.test_y.shape[0]})
    print(f"evaluated {args.weights} on {data.test_y.shape[0]} test rows ({device})")
    print(summary_line(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

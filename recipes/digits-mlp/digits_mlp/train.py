"""Train the MLP from scratch: ``python -m digits_mlp.train --config C --data D --output O --seed S``.

Writes ``O/model.pt`` (a CPU ``state_dict``) and ``O/metrics.json``. Everything random is drawn
from ``--seed`` (weight initialisation through the global torch RNG, batch order through a private
generator), so the same seed on the same kind of device gives the same weights.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from digits_mlp.config import Config, load_config
from digits_mlp.data import Split, load_split
from digits_mlp.device import make_deterministic, pick_device
from digits_mlp.metrics import evaluate_model, summary_line, write_metrics
from digits_mlp.model import DigitsMLP

WEIGHTS_FILE = "model.pt"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line interface; ``--limit`` exists for fast tests, not for real runs."""
    parser = argparse.ArgumentParser(prog="python -m digits_mlp.train", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="hyper-parameters (JSON)")
    parser.add_argument("--data", type=Path, required=True, help="digits CSV, gzipped")
    parser.add_argument("--output", type=Path, required=True, help="folder for model.pt and metrics.json")
    parser.add_argument("--seed", type=int, required=True, help="seed for initialisation and batch order")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows (tests)")
    return parser.parse_args(argv)


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG the run may touch and return a private generator for batch shuffling."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over the training rows in a seeded random order; returns the mean training loss."""
    model.train()
    order = torch.randperm(labels.shape[0], generator=generator).to(features.device)
    total = 0.0
    for batch in torch.split(order, batch_size):
        optimizer.zero_grad(set_to_none=True)
        loss = functional.cross_entropy(model(features[batch]), labels[batch])
        loss.backward()
        optimizer.step()
        total += loss.item() * batch.shape[0]
    return total / labels.shape[0]


def fit(model: nn.Module, data: Split, config: Config, generator: torch.Generator) -> float:
    """Train for ``config.epochs`` epochs with Adam; returns the last epoch's mean training loss."""
    device = next(model.parameters()).device
    features, labels = data.train_x.to(device), data.train_y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    train_loss = float("nan")
    for _ in range(config.epochs):
        train_loss = run_epoch(model, optimizer, features, labels, config.batch_size, generator)
    return train_loss


def save_weights(model: nn.Module, path: Path) -> None:
    """Save a CPU copy of the ``state_dict`` so that the file loads on any machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}, path)


def main(argv: list[str] | None = None) -> int:
    """Entry point: train, save the weights, evaluate on the held-out split, write the metrics."""
    args = parse_args(argv)
    config = load_config(args.config)
    make_deterministic()
    device = pick_device()
    generator = seed_everything(args.seed)
    data = load_split(args.data, config.test_fraction, config.split_seed, args.limit)
    model = DigitsMLP(config.hidden_size).to(device)

    started = time.perf_counter()
    train_loss = fit(model, data, config, generator)
    print(
        f"trained {config.epochs} epochs on {data.train_y.shape[0]} rows ({device}) "
        f"in {time.perf_counter() - started:.2f}s, final train loss {train_loss:.4f}"
    )

    save_weights(model, args.output / WEIGHTS_FILE)
    metrics = evaluate_model(model, data.test_x, data.test_y)
    extra = {
        "epochs": config.epochs,
        "seed": args.seed,
        "test_rows": data.test_y.shape[0],
        "train_loss": train_loss,
    }
    write_metrics(args.output, {**metrics, **extra})
    print(summary_line(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

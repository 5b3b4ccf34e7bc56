"""The evaluation shared by ``train`` and ``evaluate``.

Both commands call :func:`evaluate_model` on the same test split, in one full batch, so that the
weights ``train`` saves give back exactly the numbers ``train`` reported (bit-for-bit on CPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

METRICS_FILE = "metrics.json"


@torch.no_grad()
def evaluate_model(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Return ``accuracy`` (fraction correct) and ``test_loss`` (mean cross-entropy) on the given rows.

    A single batch, rather than a loop of mini-batches, keeps the result independent of any batch
    size setting and avoids summing per-batch means.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits = model(features.to(device))
    targets = labels.to(device)
    loss = functional.cross_entropy(logits, targets).item()
    accuracy = (logits.argmax(dim=1) == targets).to(torch.float64).mean().item()
    model.train(was_training)
    return {"accuracy": accuracy, "test_loss": loss}


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics.json`` (the file ``experiment.yaml`` points repropack at) and return its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / METRICS_FILE
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def summary_line(metrics: dict[str, Any]) -> str:
    """The last line both commands print, for people reading logs."""
    return f"test accuracy: {metrics['accuracy']:.4f} test loss: {metrics['test_loss']:.4f}"

"""The model: a one-hidden-layer perceptron, 64 pixels -> hidden -> 10 class logits.

Small on purpose (about 4.8k parameters with hidden=64): it trains in seconds on a CPU, its weights
file is a few tens of kilobytes, and it still reaches roughly 97% test accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from digits_mlp.data import NUM_CLASSES, NUM_PIXELS


class DigitsMLP(nn.Module):
    """Linear -> ReLU -> Linear; returns raw logits (the loss applies the softmax)."""

    def __init__(self, hidden_size: int, in_features: int = NUM_PIXELS, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Map a batch shaped (n, 64) to logits shaped (n, 10)."""
        logits: torch.Tensor = self.layers(pixels)
        return logits

"""Device choice and the switches that make runs repeatable.

``REPRO_DEVICE`` lets the caller force a device: ``cpu``, ``cuda`` or ``auto`` (the default, which
means CUDA when PyTorch sees a GPU and the CPU otherwise). Forcing ``cuda`` without a usable GPU is
an error rather than a silent fall-back, so a run never claims a device it did not use.
"""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "REPRO_DEVICE"
_CHOICES = ("auto", "cpu", "cuda")


def pick_device() -> torch.device:
    """Return the device named by ``REPRO_DEVICE``, or the best available one under ``auto``."""
    wanted = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if wanted not in _CHOICES:
        raise ValueError(f"{DEVICE_ENV}={wanted!r}: expected one of {', '.join(_CHOICES)}")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{DEVICE_ENV}=cuda but torch.cuda.is_available() is False")
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


def make_deterministic() -> None:
    """Ask PyTorch for bit-for-bit repeatable kernels on CPU and GPU.

    cuBLAS only computes deterministically with a fixed workspace, which must be configured
    before its first use, hence the environment variable. One CPU thread keeps floating-point
    summation order independent of how many cores the machine (or container) has; this model
    is far too small to gain anything from more threads.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.set_num_threads(1)

"""What a valid experiment.yaml becomes: the :class:`Spec` and its parts, and the format's constants."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SPEC_VERSION = 1
GPU_MODES = ("auto", "none", "required")
TOP_KEYS = (
    "version",
    "name",
    "python",
    "base",
    "requirements",
    "lockfile",
    "config",
    "seed",
    "datasets",
    "params",
    "commands",
    "artifacts",
    "metrics",
    "gpu",
)
REQUIRED_KEYS = ("version", "name", "python", "base", "requirements", "commands")
REQUIRED_EXAMPLES = {
    "version": "version: 1",
    "name": "name: spiral-mlp",
    "python": 'python: "3.11"',
    "base": "base: debian-bookworm",
    "requirements": "requirements: requirements.in",
    "commands": "commands: {train: python train.py}",
}
DATASET_KEYS = ("path", "embed")
METRICS_KEYS = ("file", "stdout", "expected")
EXPECTED_KEYS = ("value", "abs_tol", "rel_tol")
PLACEHOLDERS = ("config", "output", "seed")

# Docker's rules for a repository name component (lower case) and for a tag.
NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
TAG_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
IMAGE_NAME = re.compile(rf"^{NAME_COMPONENT}$")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_-]*$")
PYTHON_VERSION = re.compile(r"^3\.(\d{1,2})$")
DIGEST_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$")
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path  # absolute, on this host
    embed: bool


@dataclass(frozen=True)
class Expected:
    value: float
    abs_tol: float
    rel_tol: float

    def tolerance(self) -> float:
        """The allowed |actual - value|: abs_tol + rel_tol * |value|."""
        return self.abs_tol + self.rel_tol * abs(self.value)


@dataclass(frozen=True)
class Metrics:
    file: str | None
    stdout: dict[str, str] = field(default_factory=dict)
    expected: dict[str, Expected] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    path: Path  # the experiment.yaml, absolute
    name: str
    python: str
    base: str
    requirements: Path
    lockfile: Path
    config: Path | None
    seed: int
    datasets: dict[str, Dataset]
    commands: dict[str, str | list[str]]  # a string is one process; a list, steps run in order
    metrics: Metrics
    gpu: str
    params: dict[str, str | int | float | bool] = field(default_factory=dict)  # {params.NAME}, --set NAME=
    artifacts: tuple[str, ...] = ()  # files a command makes (globs; working folder or output), hashed per run

    @property
    def root(self) -> Path:
        """The experiment's folder: the code shipped is this folder of its git repository."""
        return self.path.parent

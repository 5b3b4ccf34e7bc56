"""Factories shared by the unit tests: small, real experiments in temporary git repositories.

Nothing here talks to Docker, the network or pip-compile. The lockfile is written by hand in the exact
shape ``repropack lock`` produces (header with the inputs digest, ``==`` pins, ``--hash=sha256`` lines).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from repropack import cli
from repropack.freeze.lockfile import HEADER, inputs_digest

# Fixed author and dates: the same files give the same commit id in every temporary repository, so
# manifests of two experiments in two different folders can be compared byte for byte.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Zebulon Testauthor",
    "GIT_AUTHOR_EMAIL": "zebulon@example.invalid",
    "GIT_COMMITTER_NAME": "Zebulon Testauthor",
    "GIT_COMMITTER_EMAIL": "zebulon@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}

REMOVE = object()  # an override value that deletes the key from the spec

BASE_SPEC: dict[str, Any] = {
    "version": 1,
    "name": "spiral-mlp",
    "python": "3.11",
    "base": "debian-bookworm",
    "requirements": "requirements.in",
    "config": "config.json",
    "seed": 7,
    "datasets": {"points": {"path": "data/points.csv"}},
    "commands": {
        "train": "python train.py --config {config} --data {datasets.points} --output {output} --seed {seed}",
    },
    "metrics": {
        "file": "metrics.json",
        "expected": {"accuracy": {"value": 0.9, "abs_tol": 0.05}},
    },
    "gpu": "auto",
}

REQUIREMENTS_IN = "numpy==1.26.4\n"
CONFIG = {"lr": 0.1, "model": {"hidden": 16}}
POINTS_CSV = "x,y,label\n0.1,0.2,0\n0.3,0.4,1\n"
TRAIN_PY = "print('accuracy: 0.9')\n"


def fake_hash(seed: str) -> str:
    """A well-formed sha256 hex digest that depends only on ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


def lock_text(requirements: Path, python: str, pins: dict[str, str] | None = None) -> str:
    """A lockfile as 'repropack lock' writes it, with fake but well-formed hashes."""
    pins = pins or {"numpy": "1.26.4"}
    body = ""
    for name, version in sorted(pins.items()):
        body += (
            f"{name}=={version} \\\n"
            f"    --hash=sha256:{fake_hash(name + version + 'a')} \\\n"
            f"    --hash=sha256:{fake_hash(name + version + 'b')}\n"
            f"    # via -r {requirements.name}\n"
        )
    return HEADER + f"# repropack-inputs: sha256:{inputs_digest(requirements, python)}\n" + body


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return done.stdout


@dataclass
class Experiment:
    """A minimal valid experiment: ``repo/exp/experiment.yaml`` in a git repository with one commit."""

    repo: Path
    folder: Path
    spec: dict[str, Any]

    @property
    def spec_path(self) -> Path:
        return self.folder / "experiment.yaml"

    @property
    def lockfile(self) -> Path:
        return self.folder / "requirements.lock"

    def write(self, relative: str, content: str | bytes) -> Path:
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def commit(self, message: str = "update") -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD").strip()

    def relock(self) -> None:
        self.lockfile.write_text(lock_text(self.folder / "requirements.in", str(self.spec.get("python", "3.11"))))

    def load(self) -> Any:
        from repropack.experiment.validate import load_spec

        return load_spec(self.spec_path)


MakeExperiment = Callable[..., Experiment]


@dataclass
class Result:
    """What one CLI call gave: its exit code and what it printed."""

    code: int
    out: str
    err: str


RunCli = Callable[..., Result]


def cli_runner(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``repropack ARGS`` in this process through cli.main, as the console script does."""

    def run(*args: str | Path) -> Result:
        monkeypatch.setattr(sys, "argv", ["repropack", *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            cli.main()
        captured = capsys.readouterr()
        code = done.value.code
        return Result(code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err)

    return run

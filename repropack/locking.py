"""`repropack lock`: make or refresh the experiment's hash-pinned lockfile, only when it is needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repropack.errors import BadInput
from repropack.freeze.lock import compile_lock, inputs_digest, read_lock
from repropack.spec import load_spec


@dataclass(frozen=True)
class LockResult:
    path: Path
    changed: bool
    message: str


def lock_experiment(spec_path: Path, *, upgrade: bool) -> LockResult:
    """Up to date (same inputs digest): nothing runs. Otherwise resolve, keeping current pins unless upgrading."""
    spec = load_spec(spec_path, lockfile_may_be_missing=True)  # making it is this command's job
    previous = None
    if spec.lockfile.exists():
        try:
            current = read_lock(spec.lockfile)
        except BadInput:
            current = None  # an invalid lock is remade from scratch
        if current is not None:
            if not upgrade and current.inputs_sha256 == inputs_digest(spec.requirements, spec.python):
                return LockResult(spec.lockfile, False, f"up to date ({len(current.packages)} packages)")
            previous = None if upgrade else spec.lockfile
    lock = compile_lock(spec.requirements, spec.python, spec.lockfile, previous=previous)
    return LockResult(spec.lockfile, True, f"wrote {len(lock.packages)} packages, pinned with hashes")

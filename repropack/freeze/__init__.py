"""Freeze: turn every moving part of an experiment into a pinned fact, and seal them in a manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.engine import Engine
from repropack.freeze.base import ResolvedBase, resolve_base
from repropack.freeze.code import CodeSnapshot, snapshot
from repropack.freeze.config import FrozenConfig, freeze_config
from repropack.freeze.data import FrozenDataset, freeze_dataset
from repropack.freeze.lock import Lock, check_current, compile_lock, read_lock
from repropack.spec import Spec


@dataclass(frozen=True)
class Frozen:
    spec: Spec
    code: CodeSnapshot
    lock: Lock
    lock_created: bool
    base: ResolvedBase
    config: FrozenConfig | None
    datasets: dict[str, FrozenDataset]
    manifest: dict[str, Any]
    manifest_bytes: bytes
    digest: str


def obtain_lock(spec: Spec, missing_to: Path) -> tuple[Lock, bool]:
    """The experiment's lock, checked and current; resolved into ``missing_to`` when there is none.

    An existing lockfile is never rewritten here: a stale or invalid one is an error.
    """
    if spec.lockfile.exists():
        lock = read_lock(spec.lockfile)
        check_current(lock, spec.requirements, spec.python)
        return lock, False
    return compile_lock(spec.requirements, spec.python, missing_to), True


def freeze(spec: Spec, *, allow_dirty: bool, engine: Engine | None, lock_missing_to: Path) -> Frozen:
    """Freeze ``spec``. Cheap checks come first, so a dirty tree fails before any resolver or hashing."""
    from repropack.manifest import build_manifest, seal

    code = snapshot(spec.root, allow_dirty=allow_dirty, exclude=tuple(d.path for d in spec.datasets.values()))
    lock, created = obtain_lock(spec, lock_missing_to)
    base = resolve_base(spec, lock, engine)
    config = freeze_config(spec.config) if spec.config else None
    datasets = {name: freeze_dataset(ds) for name, ds in spec.datasets.items()}
    document = build_manifest(spec, code, lock, base, config, datasets)
    data, digest = seal(document)
    return Frozen(spec, code, lock, created, base, config, datasets, document, data, digest)

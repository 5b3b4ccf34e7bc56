"""Freeze: turn every moving part of an experiment into a pinned fact (code commit and tree, lockfile,
base image by digest, config, every dataset file's sha256). Sealing the facts into a manifest is the
next stage (:mod:`repropack.manifest.seal`). May import experiment, checksums, bases, engine and the shared
top-level modules; never manifest, image or anything above."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repropack.checksums.hashing import HashStats, ProgressCallback
from repropack.engine.client import Engine
from repropack.experiment.model import Spec
from repropack.freeze.base_image import ResolvedBase, resolve_base
from repropack.freeze.code import CodeSnapshot, snapshot
from repropack.freeze.config import FrozenConfig, freeze_config
from repropack.freeze.data import FrozenDataset, freeze_dataset
from repropack.freeze.lockfile import Lock, check_current, compile_lock, read_lock
from repropack.freeze.secrets import refuse_secrets


@dataclass(frozen=True)
class Frozen:
    spec: Spec
    code: CodeSnapshot
    lock: Lock
    lock_created: bool
    base: ResolvedBase
    config: FrozenConfig | None
    datasets: dict[str, FrozenDataset]

    @property
    def hash_stats(self) -> HashStats:
        """What hashing the datasets read, and what the stat cache spared it."""
        return sum((ds.stats for ds in self.datasets.values()), HashStats())


def obtain_lock(spec: Spec, missing_to: Path) -> tuple[Lock, bool]:
    """The experiment's lock, checked and current; resolved into ``missing_to`` when there is none.

    An existing lockfile is never rewritten here: a stale or invalid one is an error.
    """
    if spec.lockfile.exists():
        lock = read_lock(spec.lockfile)
        check_current(lock, spec.requirements, spec.python)
        return lock, False
    return compile_lock(spec.requirements, spec.python, missing_to), True


def freeze(
    spec: Spec,
    *,
    allow_dirty: bool,
    engine: Engine | None,
    lock_missing_to: Path,
    on_progress: ProgressCallback | None = None,
    allowed_secrets: frozenset[str] = frozenset(),
) -> Frozen:
    """Freeze ``spec``. Cheap checks come first, so a dirty tree or a secret in the code fails before any
    resolver or hashing (a secret-looking dataset file is named once its dataset is hashed).

    ``on_progress(bytes hashed, bytes to hash)`` follows the hashing of the datasets (all of them: the
    counts run on from one dataset to the next).
    """
    code = snapshot(spec.root, allow_dirty=allow_dirty, exclude=tuple(d.path for d in spec.datasets.values()))
    refuse_secrets("in the experiment's code", [f.path for f in code.files], allowed_secrets)
    if spec.config is not None:
        refuse_secrets("the config file", [_relative(spec.config, spec.root)], allowed_secrets)
    lock, created = obtain_lock(spec, lock_missing_to)
    base = resolve_base(spec, lock, engine)
    config = freeze_config(spec.config) if spec.config else None
    datasets = freeze_datasets(spec, on_progress)
    for ds in datasets.values():
        prefix = _relative(ds.host_root(), spec.root)
        lead = "" if prefix == "." else prefix + "/"
        refuse_secrets(f"in the dataset '{ds.name}'", [lead + rel for rel in ds.contents.names], allowed_secrets)
    return Frozen(spec, code, lock, created, base, config, datasets)


def _relative(path: Path, root: Path) -> str:
    """``path`` as the user names it: relative to the experiment's folder when it is inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def freeze_datasets(spec: Spec, on_progress: ProgressCallback | None = None) -> dict[str, FrozenDataset]:
    """Every dataset, hashed through one stat cache (none when ``REPROPACK_NO_CACHE`` is set)."""
    if not spec.datasets:
        return {}
    from repropack.checksums.statcache import StatCache

    cache = StatCache.default()
    before = 0  # bytes hashed by the datasets already done (then also counted as bytes to hash)

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(before + done, before + total)

    datasets: dict[str, FrozenDataset] = {}
    try:
        for name, dataset in spec.datasets.items():
            datasets[name] = frozen = freeze_dataset(dataset, cache=cache, on_progress=progress)
            before += frozen.stats.hashed_bytes
    finally:
        if cache is not None:
            cache.close()
    return datasets

"""Seeds and determinism for the experiment's Python processes (repropack runtime, stdlib only).

The entrypoint puts this folder on PYTHONPATH for the experiment's command, so Python imports it at
start-up. It seeds ``random`` at once, and seeds numpy and torch right after the experiment imports
them (an import hook: importing torch up front would cost every command a second or more). What torch
reports about itself is written to $REPRO_STATE/torch.json for the run record.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def _seed() -> int | None:
    value = os.environ.get("REPRO_SEED")
    return int(value) if value and value.isdigit() else None


def _seed_numpy(module: ModuleType) -> None:
    seed = _seed()
    if seed is not None:
        module.random.seed(seed)


def _seed_torch(torch: Any) -> None:
    seed = _seed()
    mode = os.environ.get("REPRO_DETERMINISM", "strict")
    if seed is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device
    if mode in ("strict", "warn"):
        torch.use_deterministic_algorithms(True, warn_only=mode == "warn")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    _record_torch(torch, mode)


def _record_torch(torch: Any, mode: str) -> None:
    state = os.environ.get("REPRO_STATE")
    if not state:
        return
    try:
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # a broken cuDNN must not stop the experiment; the record just says so
        cudnn = None
    info = {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "cuda_available": bool(torch.cuda.is_available()),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "determinism": mode,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }
    try:
        os.makedirs(state, exist_ok=True)
        path = os.path.join(state, "torch.json")
        with open(path + ".tmp", "w") as handle:
            json.dump(info, handle, sort_keys=True)
        os.replace(path + ".tmp", path)
    except OSError:
        pass


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs an action on a module right after it is first executed."""

    def __init__(self, actions: dict[str, Callable[[Any], None]]) -> None:
        self.actions = actions
        self.busy: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.actions or fullname in self.busy:
            return None
        self.busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader: Any = spec.loader
        original = loader.exec_module
        action = self.actions.pop(fullname)

        def exec_module(module: ModuleType) -> None:
            original(module)
            action(module)

        loader.exec_module = exec_module
        return spec


def _install() -> None:
    seed = _seed()
    if seed is not None:
        random.seed(seed)
    if os.environ.get("REPRO_DETERMINISM", "strict") != "off" or seed is not None:
        sys.meta_path.insert(0, _AfterImport({"numpy": _seed_numpy, "torch": _seed_torch}))


_install()

"""Freeze the base image: a catalog name or a digest reference, resolved to what the engine holds."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from repropack.bases import catalog
from repropack.engine.client import Engine
from repropack.errors import BadInput, EnvironmentProblem
from repropack.experiment.model import Spec
from repropack.freeze.lockfile import Lock

AUTO_CUDA = "cuda"
# The parts of a base image's configuration an image built on it inherits (and verify compares).
CONFIG_FIELDS = (
    "Cmd",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "Healthcheck",
    "Labels",
    "OnBuild",
    "Shell",
    "StopSignal",
    "User",
    "Volumes",
    "WorkingDir",
)


def inherited_config(config: dict[str, Any]) -> dict[str, Any]:
    """The inherited configuration fields, with an empty value written one way (None)."""
    return {key: config.get(key) or None for key in CONFIG_FIELDS}


@dataclass(frozen=True)
class ResolvedBase:
    name: str | None  # the catalog name, None for a plain digest reference
    reference: str
    image_id: str | None  # None only when freezing without a Docker engine
    python: str
    cuda: str | None
    setup: tuple[str, ...]
    layers: tuple[str, ...] = ()  # the base's layer diff ids: an image built on it starts with them
    config: dict[str, Any] = field(default_factory=dict)  # what an image built on it inherits (CONFIG_FIELDS)

    @property
    def from_line(self) -> str:
        """What FROM names: the exact local image id when known, else the pinned reference."""
        return self.image_id or self.reference


def resolve_base(spec: Spec, lock: Lock, engine: Engine | None) -> ResolvedBase:
    base = _resolve(spec, lock, engine)
    if engine is None or base.image_id is None:
        return base
    details = engine.inspect(base.image_id)
    layers = tuple(str(layer) for layer in (details.get("RootFS") or {}).get("Layers") or [])
    return replace(base, layers=layers, config=inherited_config(details.get("Config") or {}))


def _resolve(spec: Spec, lock: Lock, engine: Engine | None) -> ResolvedBase:
    torch = lock.versions().get("torch")
    if "@sha256:" in spec.base:
        image_id = engine.image_id(spec.base) if engine else None
        if engine is not None and image_id is None:
            image_id = engine.pull(spec.base)
        return ResolvedBase(None, spec.base, image_id, spec.python, None, ())
    if spec.base == AUTO_CUDA:
        cuda = catalog.torch_cuda(torch) if torch else None
        if cuda is None:
            raise BadInput(
                "base: cuda picks the CUDA base that matches the locked torch, but the lock has "
                + (f"a CPU build of torch ({torch})." if torch else "no torch."),
                hint="Require a CUDA build of torch, or name a base (repropack base list).",
            )
        entry = catalog.choose_cuda_base(spec.python, cuda)
    else:
        entry = catalog.lookup(spec.base)
        catalog.check_base_matches(entry, spec.python, torch)
    reference = f"{entry.reference}@{entry.digest}" if entry.digest else entry.reference
    image_id = engine.image_id(reference) if engine else None
    if engine is not None and image_id is None and not entry.recipe:
        image_id = engine.pull(reference)
    if engine is not None and image_id is None and entry.recipe:
        raise EnvironmentProblem(
            f"The base image {entry.name} ({entry.reference}) is not on this Docker engine; it is made locally.",
            hint=f"Run 'repropack base build {entry.name}' first.",
        )
    return ResolvedBase(entry.name, reference, image_id, entry.python, entry.cuda, entry.setup)

"""What `verify` and `manifest` accept: a local image, a registry reference, or a paper manifest file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.engine import Engine
from repropack.errors import BadInput
from repropack.paper import parse_paper


@dataclass(frozen=True)
class Target:
    image: str  # what the engine now holds: a local reference or id
    reference: str | None  # the registry reference pinned by digest, when there is one
    paper: dict[str, Any] | None  # the paper manifest, when the target was one


def _looks_remote(name: str) -> bool:
    first = name.split("/", 1)[0]
    return "/" in name and ("." in first or ":" in first or first == "localhost")


def _ensure(engine: Engine, reference: str) -> str:
    """The reference itself when the engine has it, else pulled (by digest when pinned)."""
    if engine.image_id(reference) is None:
        engine.pull(reference)
    return reference


def read_paper_target(target: str) -> dict[str, Any] | None:
    """The paper manifest ``target`` names (checked: bad input when it is not one), or None for an image."""
    path = Path(target)
    if not (target.endswith(".json") or path.is_file()):
        return None
    if not path.is_file():
        raise BadInput(f"The paper manifest {target} does not exist.",
                       hint="Check the path, or pass the image (a tag, or REGISTRY/REPO@sha256:...).")
    return parse_paper(path.read_bytes(), path.name)


def resolve_target(engine: Engine, target: str) -> Target:
    paper = read_paper_target(target)
    if paper is not None:
        reference = paper["image"].get("reference")
        image = _ensure(engine, reference) if reference else str(paper["image"]["id"])
        return Target(image, reference, paper)
    if "@sha256:" in target:
        return Target(_ensure(engine, target), target, None)
    if engine.image_id(target) is not None:
        digests = engine.repo_digests(target)
        return Target(target, digests[0] if len(digests) == 1 else None, None)
    if _looks_remote(target):
        return Target(_ensure(engine, target), None, None)
    raise BadInput(f"There is no image '{target}' on this Docker engine, and it is not a registry reference.",
                   hint="Check the name (docker images), pass REGISTRY/REPO@sha256:..., or a paper manifest file.")

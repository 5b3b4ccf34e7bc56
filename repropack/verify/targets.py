"""What `verify` and `manifest` accept: a local image, a registry reference, or a paper manifest file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.engine.client import Engine
from repropack.errors import BadInput
from repropack.manifest.paper import parse_paper
from repropack.verify.checks import Check


@dataclass(frozen=True)
class Target:
    image: str  # what the engine now holds: a local reference or id
    reference: str | None  # the registry reference pinned by digest, when there is one
    paper: dict[str, Any] | None  # the paper manifest, when the target was one
    pinned: bool = False  # the reference came from the user or the paper (not read back from the engine)


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
        raise BadInput(
            f"The paper manifest {target} does not exist.",
            hint="Check the path, or pass the image (a tag, or REGISTRY/REPO@sha256:...).",
        )
    return parse_paper(path.read_bytes(), path.name)


def resolve_target(engine: Engine, target: str) -> Target:
    paper = read_paper_target(target)
    if paper is not None:
        reference = paper["image"].get("reference")
        image = _ensure(engine, reference) if reference else str(paper["image"]["id"])
        return Target(image, reference, paper, pinned=True)
    if "@sha256:" in target:
        return Target(_ensure(engine, target), target, None, pinned=True)
    if engine.image_id(target) is not None:
        digests = engine.repo_digests(target)
        return Target(target, digests[0] if len(digests) == 1 else None, None)
    if _looks_remote(target):
        return Target(_ensure(engine, target), None, None)
    raise BadInput(
        f"There is no image '{target}' on this Docker engine, and it is not a registry reference.",
        hint="Check the name (docker images), pass REGISTRY/REPO@sha256:..., or a paper manifest file.",
    )


def binding_checks(engine: Engine, resolved: Target, image_id: str) -> list[Check]:
    """The ``image`` check: the image verify reads is the one named from outside it, by the paper's image id
    and by the digest of a pinned reference (the registry digest names the image's bytes). No check for a
    local image named by tag or id: there is nothing outside it to compare with."""
    if not resolved.pinned:
        return []
    problems: list[str] = []
    expected_id = (resolved.paper or {}).get("image", {}).get("id")
    if expected_id and expected_id != image_id:
        problems.append(f"the paper names {expected_id}, the engine holds {image_id} for {resolved.image}")
    if resolved.reference:
        digest = resolved.reference.rpartition("@")[2]
        digests = engine.repo_digests(image_id)
        if not any(known.rpartition("@")[2] == digest for known in digests):
            carried = ", ".join(digests) or "none"
            problems.append(
                f"{resolved.reference} resolved to {image_id}, which does not carry that digest "
                f"(its registry digests: {carried})"
            )
    named = "the paper" if resolved.paper is not None else resolved.reference
    return [
        Check("image", not problems, f"the image is the one {named} names (image id, registry digest)", tuple(problems))
    ]

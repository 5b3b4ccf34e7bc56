"""Publish: push an image to a registry and return the reference pinned by the pushed digest."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from repropack.engine.client import Engine
from repropack.engine.types import PushProgress
from repropack.errors import BadInput, EnvironmentProblem
from repropack.experiment.model import NAME_COMPONENT, TAG_NAME
from repropack.image.embedded import load_image_manifest

TARGET = re.compile(
    r"^(?P<registry>(?:localhost|[a-z0-9.-]+\.[a-z0-9.-]+|[a-z0-9.-]+:\d+|\d+\.\d+\.\d+\.\d+)(?::\d+)?)"
    rf"/(?P<repository>{NAME_COMPONENT}(?:/{NAME_COMPONENT})*)"
    rf":(?P<tag>{TAG_NAME})$"
)


@dataclass(frozen=True)
class Published:
    reference: str  # REGISTRY/REPO@sha256:...
    tag: str  # REGISTRY/REPO:TAG
    digest: str
    image_id: str
    manifest_digest: str


def parse_target(target: str) -> tuple[str, str]:
    """REGISTRY/REPO:TAG -> (REGISTRY/REPO, TAG); anything else is bad input that says what is wrong."""
    match = TARGET.match(target)
    if match is None:
        raise BadInput(
            f"'{target}' is not REGISTRY/REPOSITORY:TAG ({_target_problem(target)}); for example "
            "127.0.0.1:5000/lab/digits-mlp:v1, or ghcr.io/lab/digits-mlp:paper.",
            hint="Name the registry host, a lower-case repository and a tag.",
        )
    return f"{match['registry']}/{match['repository']}", match["tag"]


def _target_problem(target: str) -> str:
    """The most likely reason a publish target does not parse, for the message."""
    if "@" in target:
        return "publish takes a tag; the digest is what the registry answers, and repropack prints it"
    if any(ch.isspace() for ch in target) or not target:
        return "it is empty or holds spaces"
    first, slash, rest = target.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        return "it names no registry host, like ghcr.io or 127.0.0.1:5000, before the repository"
    name, colon, tag = rest.rpartition(":")
    if not colon or not tag or "/" in tag:
        return "it has no ':TAG' at the end"
    if name != name.lower():
        return "repository names are lower case"
    return "the repository or the tag holds characters a registry does not accept"


def publish(engine: Engine, image: str, target: str, on_progress: Callable[[PushProgress], None]) -> Published:
    repository, tag = parse_target(target)
    loaded = load_image_manifest(engine, image)
    engine.tag(loaded.image_id, f"{repository}:{tag}")
    digest = engine.push(f"{repository}:{tag}", on_progress)
    reference = f"{repository}@{digest}"
    if engine.registry_digest(reference) != digest:
        raise EnvironmentProblem(f"The registry does not serve {reference} after the push; nothing was published.")
    return Published(reference, f"{repository}:{tag}", digest, loaded.image_id, loaded.digest)

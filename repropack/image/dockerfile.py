"""The sealed experiment as its two Dockerfiles (the image's and its environment's), through the Jinja2
templates in templates/. The templates only format; every value is computed here, the environment tag
once. Same manifest => byte-identical Dockerfiles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import cast

import jinja2

from repropack import __version__
from repropack.canonical import sha256_hex
from repropack.freeze import Frozen
from repropack.manifest.seal import Sealed
from repropack.runtime import layout
from repropack.runtime.layout import ENTRYPOINT, IMAGE_ENV
from repropack.runtime.records import Manifest

LABEL_PREFIX = "io.repropack"
ENVIRONMENT_TEMPLATE = "environment.Dockerfile.j2"
ENVIRONMENT_REPOSITORY = "repropack/env"


def manifest_labels(manifest: Manifest) -> dict[str, str]:
    """The labels fixed by a sealed manifest (the build adds org.opencontainers.image.created)."""
    labels = {
        "org.opencontainers.image.title": str(manifest["experiment"]["name"]),
        "org.opencontainers.image.revision": str(manifest["code"]["commit"]),
        "org.opencontainers.image.base.name": str(manifest["base"]["reference"]),
        f"{LABEL_PREFIX}.manifest.digest": f"sha256:{manifest['sha256']}",
        f"{LABEL_PREFIX}.schema": str(manifest["schema"]),
        f"{LABEL_PREFIX}.version": str(manifest["repropack"]),
    }
    if manifest["code"].get("source"):
        labels["org.opencontainers.image.source"] = str(manifest["code"]["source"])
    return dict(sorted(labels.items()))


def image_labels(frozen: Sealed) -> dict[str, str]:
    return manifest_labels(cast(Manifest, {**frozen.manifest, "sha256": frozen.digest}))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _template(name: str) -> jinja2.Template:
    source = resources.files("repropack.templates").joinpath(name).read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(source)


def environment_tag(frozen: Frozen) -> str:
    """The local tag of the image holding the locked environment: a digest of everything it is made of
    (lockfile, base, setup, and how it is built), so equal inputs share one environment image."""
    recipe = resources.files("repropack.templates").joinpath(ENVIRONMENT_TEMPLATE).read_bytes()
    digest = sha256_hex(
        "\n".join([frozen.lock.sha256, frozen.base.from_line, *frozen.base.setup, sha256_hex(recipe)]).encode()
    )
    return f"{ENVIRONMENT_REPOSITORY}:{digest[:32]}"


@dataclass(frozen=True)
class Dockerfiles:
    image: str  # the image's Dockerfile
    environment: str  # environment.Dockerfile: the locked packages, built once per lockfile and base
    environment_tag: str  # the local tag of the environment image, which the image's Dockerfile copies from


def render_dockerfiles(sealed: Sealed) -> Dockerfiles:
    tag = environment_tag(sealed)
    return Dockerfiles(_render_image(sealed, tag), _render_environment(sealed, tag), tag)


def _render_environment(frozen: Frozen, tag: str) -> str:
    return _template(ENVIRONMENT_TEMPLATE).render(
        version=__version__,
        layout=layout,
        lock_sha256=frozen.lock.sha256,
        base_from=frozen.base.from_line,
        setup=list(frozen.base.setup),
        tag=tag,
    )


def _render_image(frozen: Sealed, tag: str) -> str:
    return _template("Dockerfile.j2").render(
        version=__version__,
        layout=layout,
        environment=tag,
        digest=frozen.digest,
        base_from=frozen.base.from_line,
        setup=list(frozen.base.setup),
        datasets=[{"name": ds.name, "mount": ds.mount_point} for ds in frozen.datasets.values() if ds.embed],
        has_config=frozen.config is not None,
        datasets_index=bool(frozen.datasets),
        entrypoint=json.dumps(ENTRYPOINT),
        env=list(IMAGE_ENV.items()),
        labels=[(key, _quote(value)) for key, value in image_labels(frozen).items()],
    )

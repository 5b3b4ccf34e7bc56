"""Render: the frozen experiment as a Dockerfile, through the Jinja2 template in templates/.

The template only formats; every value is computed here. Same manifest => byte-identical Dockerfile.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jinja2

from repropack import __version__
from repropack.canonical import sha256_hex
from repropack.freeze import Frozen
from repropack.runtime import layout
from repropack.runtime.layout import ENTRYPOINT, IMAGE_ENV

LABEL_PREFIX = "io.repropack"
ENVIRONMENT_TEMPLATE = "environment.Dockerfile.j2"
ENVIRONMENT_REPOSITORY = "repropack/env"


def manifest_labels(manifest: dict[str, Any]) -> dict[str, str]:
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


def image_labels(frozen: Frozen) -> dict[str, str]:
    return manifest_labels({**frozen.manifest, "sha256": frozen.digest})


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


def render_environment(frozen: Frozen) -> str:
    return _template(ENVIRONMENT_TEMPLATE).render(
        version=__version__,
        layout=layout,
        lock_sha256=frozen.lock.sha256,
        base_from=frozen.base.from_line,
        setup=list(frozen.base.setup),
        tag=environment_tag(frozen),
    )


def render_dockerfile(frozen: Frozen) -> str:
    return _template("Dockerfile.j2").render(
        version=__version__,
        layout=layout,
        environment=environment_tag(frozen),
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

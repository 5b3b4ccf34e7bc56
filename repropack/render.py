"""Render: the frozen experiment as a Dockerfile, through the Jinja2 template in templates/.

The template only formats; every value is computed here. Same manifest => byte-identical Dockerfile.
"""

from __future__ import annotations

import json
from importlib import resources

import jinja2

from repropack import __version__
from repropack.freeze import Frozen
from repropack.manifest import ENTRYPOINT, SCHEMA

LABEL_PREFIX = "io.repropack"


def image_labels(frozen: Frozen) -> dict[str, str]:
    """The labels fixed by the manifest (the build adds org.opencontainers.image.created)."""
    labels = {
        "org.opencontainers.image.title": frozen.spec.name,
        "org.opencontainers.image.revision": frozen.code.commit,
        "org.opencontainers.image.base.name": frozen.base.reference,
        f"{LABEL_PREFIX}.manifest.digest": f"sha256:{frozen.digest}",
        f"{LABEL_PREFIX}.schema": SCHEMA,
        f"{LABEL_PREFIX}.version": __version__,
    }
    if frozen.code.source:
        labels["org.opencontainers.image.source"] = frozen.code.source
    return dict(sorted(labels.items()))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def render_dockerfile(frozen: Frozen) -> str:
    source = resources.files("repropack.templates").joinpath("Dockerfile.j2").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    template = env.from_string(source)
    return template.render(
        version=__version__,
        digest=frozen.digest,
        base_from=frozen.base.from_line,
        setup=list(frozen.base.setup),
        datasets=[
            {"name": ds.name, "mount": ds.mount_point} for ds in frozen.datasets.values() if ds.embed
        ],
        has_config=frozen.config is not None,
        datasets_index=bool(frozen.datasets),
        entrypoint=json.dumps(ENTRYPOINT),
        labels=[(key, _quote(value)) for key, value in image_labels(frozen).items()],
    )

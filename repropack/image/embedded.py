"""A built image as repropack sees it: its id, labels, and the manifest embedded in it."""

from __future__ import annotations

from dataclasses import dataclass

from repropack.engine.client import Engine
from repropack.errors import BadInput
from repropack.image.dockerfile import LABEL_PREFIX
from repropack.manifest.model import parse_manifest
from repropack.runtime.layout import MANIFEST
from repropack.runtime.records import Manifest

DIGEST_LABEL = f"{LABEL_PREFIX}.manifest.digest"


@dataclass(frozen=True)
class ImageManifest:
    image_id: str
    labels: dict[str, str]
    manifest: Manifest

    @property
    def digest(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def label_digest(self) -> str | None:
        value = self.labels.get(DIGEST_LABEL)
        return value.removeprefix("sha256:") if value else None


def load_image_manifest(engine: Engine, image: str) -> ImageManifest:
    image_id = engine.image_id(image)
    if image_id is None:
        raise BadInput(
            f"There is no image '{image}' on this Docker engine.",
            hint="Check the name (docker images), or build it with 'repropack build'.",
        )
    labels = engine.labels(image_id)
    if DIGEST_LABEL not in labels:
        raise BadInput(f"The image '{image}' was not built by repropack (it has no {DIGEST_LABEL} label).")
    data = engine.read_file(image_id, MANIFEST)
    # The digest is not checked here: for an image, a manifest that differs from its own digest is a
    # verification failure (exit 1, reported by repropack.verify.integrity), not bad input.
    return ImageManifest(image_id, labels, parse_manifest(data, f"{image}:{MANIFEST}", check_digest=False))

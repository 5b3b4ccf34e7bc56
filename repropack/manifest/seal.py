"""The manifest: the frozen facts of one experiment, as canonical JSON with its own sha256.

It is what a paper cites and what the image's runtime reads. It holds no absolute host paths, user
names or times of day: the same inputs give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from repropack import __version__
from repropack.canonical import canonical_json, sha256_hex
from repropack.checksums.index import FileDigest, tree_digest
from repropack.experiment.model import Spec
from repropack.freeze import Frozen
from repropack.freeze.base_image import ResolvedBase
from repropack.freeze.code import CodeSnapshot
from repropack.freeze.config import FrozenConfig
from repropack.freeze.data import FrozenDataset, datasets_digest
from repropack.freeze.lockfile import Lock
from repropack.runtime import runtime_sources
from repropack.runtime.layout import ENTRYPOINT, MANIFEST_LAYOUT

SCHEMA = "repropack.manifest.seal/v1"


def build_manifest(
    spec: Spec,
    code: CodeSnapshot,
    lock: Lock,
    base: ResolvedBase,
    config: FrozenConfig | None,
    datasets: dict[str, FrozenDataset],
    tests_at_build: bool = True,
) -> dict[str, Any]:
    code_files = {f.path: FileDigest(f.sha256, len(f.data)) for f in code.files}
    return {
        "schema": SCHEMA,
        "repropack": __version__,
        "experiment": {"name": spec.name, "python": spec.python, "seed": spec.seed, "gpu": spec.gpu},
        "code": {
            "commit": code.commit,
            "folder": code.folder,
            "source": code.source,
            "dirty": code.diff is not None,
            "diff": code.diff,
            "diff_sha256": code.diff_sha256,
            "sha256": tree_digest(code_files),
            "files": {f.path: {"sha256": f.sha256, "mode": "0755" if f.executable else "0644"} for f in code.files},
        },
        "base": {
            "name": base.name,
            "reference": base.reference,
            "image_id": base.image_id,
            "python": base.python,
            "cuda": base.cuda,
            "layers": list(base.layers),
            "setup": list(base.setup),
            "config": base.config or None,
        },
        "dependencies": {
            "lockfile": lock.path.name,
            "sha256": lock.sha256,
            "inputs_sha256": lock.inputs_sha256,
            "count": len(lock.packages),
            "packages": lock.versions(),
            "hashes": {p.name: sorted(p.hashes) for p in lock.packages},
        },
        "config": config.record() if config else None,
        "datasets": {name: _dataset_record(ds) for name, ds in datasets.items()},
        "datasets_sha256": datasets_digest(datasets),
        "commands": dict(spec.commands),
        "params": dict(sorted(spec.params.items())),
        "artifacts": list(spec.artifacts),
        # commands.test runs in the new image before it is tagged, unless `build --no-test`
        "tests": {"command": "test", "at_build": tests_at_build} if "test" in spec.commands else None,
        "metrics": {
            "file": spec.metrics.file,
            "stdout": dict(spec.metrics.stdout),
            "expected": {
                name: {"value": e.value, "abs_tol": e.abs_tol, "rel_tol": e.rel_tol}
                for name, e in spec.metrics.expected.items()
            },
        },
        "layout": MANIFEST_LAYOUT,
        "runtime": {
            "entrypoint": ENTRYPOINT,
            "files": {name: sha256_hex(data) for name, data in sorted(runtime_sources().items())},
        },
    }


def _dataset_record(ds: FrozenDataset) -> dict[str, Any]:
    """A dataset's facts. Its per-file hashes live in its index file (in the image), whose sha256 is the
    dataset's sha256: the manifest stays small however many files a dataset has."""
    return {
        "embed": ds.embed,
        "kind": ds.kind,
        "mount": ds.mount_point,
        "path": ds.target,
        "sha256": ds.sha256,
        "files": ds.contents.count,
        "bytes": ds.contents.total_bytes,
        "index": ds.index_path,
    }


def digest_of(document: dict[str, Any]) -> str:
    """The manifest's digest: sha256 of its canonical bytes without the 'sha256' field."""
    body = {k: v for k, v in document.items() if k != "sha256"}
    return sha256_hex(canonical_json(body))


def seal(document: dict[str, Any]) -> tuple[bytes, str]:
    """The canonical bytes of the manifest with its own digest added, and that digest."""
    digest = digest_of(document)
    return canonical_json({**document, "sha256": digest}), digest


@dataclass(frozen=True)
class Sealed(Frozen):
    """A frozen experiment with its manifest sealed: what the image is rendered and built from."""

    manifest: dict[str, Any]  # the document, without its own digest
    manifest_bytes: bytes  # its canonical bytes, the digest added: /repro/manifest.json
    digest: str


def seal_frozen(frozen: Frozen, *, tests_at_build: bool = True) -> Sealed:
    """The one place a build seals its manifest."""
    document = build_manifest(
        frozen.spec, frozen.code, frozen.lock, frozen.base, frozen.config, frozen.datasets, tests_at_build
    )
    data, digest = seal(document)
    facts = {f.name: getattr(frozen, f.name) for f in fields(Frozen)}
    return Sealed(**facts, manifest=document, manifest_bytes=data, digest=digest)

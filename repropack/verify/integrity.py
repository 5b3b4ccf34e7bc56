"""Integrity: is an image exactly what its manifest says? Checked from outside, before anything runs.

Nothing in the image runs: its configuration comes from the engine's inspect, its files from the engine's
export of a never-started container's filesystem set beside its local base's
(:mod:`repropack.verify.filesystem`), or from the image's own layers (``docker save``,
:mod:`repropack.verify.layers`) when no local image has the base's layers; so nothing in the image can
influence the answer. Here: the manifest's own digest, its label and paper copy, the image's configuration
and base layers, and :func:`image_checks`, which adds the checks that read the image's files
(:mod:`repropack.verify.layer_files`: each mismatch is named, e.g. ``/repro/code/train.py: sha256
differs``), remembered per image id by :mod:`repropack.verify.integrity_cache`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from repropack.engine.client import Engine
from repropack.freeze.base_image import CONFIG_FIELDS, inherited_config
from repropack.image.dockerfile import manifest_labels
from repropack.manifest.seal import digest_of
from repropack.runtime.layout import IMAGE_ENV
from repropack.runtime.records import Manifest
from repropack.verify.checks import Check
from repropack.verify.checks import make_check as _check
from repropack.verify.integrity_cache import CACHED_CHECKS, IntegrityCache
from repropack.verify.layer_files import layer_checks

CREATED_LABEL = "org.opencontainers.image.created"
CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def manifest_checks(label_digest: str | None, manifest: Manifest, paper: dict[str, Any] | None) -> list[Check]:
    """The embedded manifest against its own digest, the image label, and the paper's copy."""
    recomputed = digest_of(dict(manifest))
    checks = [
        _check(
            "manifest",
            "the embedded manifest matches its own sha256",
            [] if manifest.get("sha256") == recomputed else ["/repro/manifest.json: content differs from its sha256"],
        ),
        _check(
            "label",
            "the io.repropack.manifest.digest label names the embedded manifest",
            []
            if label_digest == recomputed
            else [f"label says sha256:{label_digest}, the embedded manifest is sha256:{recomputed}"],
        ),
    ]
    if paper is not None:
        theirs = paper.get("sha256")
        checks.append(
            _check(
                "paper",
                "the paper manifest's copy is the embedded manifest",
                []
                if theirs == recomputed
                else [f"the paper cites sha256:{theirs}, the image holds sha256:{recomputed}"],
            )
        )
    return checks


def image_config(manifest: Manifest) -> dict[str, Any]:
    """The configuration repropack's template gives an image built from ``manifest``: the base image's
    (as recorded at freeze time), with the Dockerfile's ENV, WORKDIR, ENTRYPOINT, CMD and LABELs over it."""
    base = dict(manifest["base"].get("config") or {})
    expected = {key: base.get(key) or None for key in CONFIG_FIELDS}
    env = dict(item.partition("=")[::2] for item in base.get("Env") or [])
    env.update(IMAGE_ENV)
    expected["Env"] = sorted(f"{key}={value}" for key, value in env.items())
    expected["Labels"] = {**(base.get("Labels") or {}), **manifest_labels(manifest)}
    expected["WorkingDir"] = manifest["layout"]["code"]
    expected["Entrypoint"] = list(manifest["runtime"]["entrypoint"])
    expected["Cmd"] = None  # CMD [] after the base's
    return expected


def config_check(engine: Engine, image: str, manifest: Manifest) -> Check:
    """The image's configuration is exactly what the template writes for this manifest: a changed
    entrypoint, environment variable (LD_PRELOAD, PYTHONPATH, ...), user or working folder could make it
    run something else."""
    actual = inherited_config(engine.inspect(image).get("Config") or {})
    expected = image_config(manifest)
    problems: list[str] = []
    if not manifest["base"].get("config"):
        problems.append("the manifest records no base image configuration (frozen without a Docker engine)")
    if actual["Env"] is not None:
        actual["Env"] = sorted(actual["Env"])
    labels = dict(actual["Labels"] or {})
    if CREATED.fullmatch(labels.get(CREATED_LABEL, "")):
        expected["Labels"][CREATED_LABEL] = labels[CREATED_LABEL]  # the build's time: any such timestamp
    for key in CONFIG_FIELDS:
        if key in ("Env", "Labels"):
            problems += _differences(key, _pairs(actual[key]), _pairs(expected[key]))
        elif actual[key] != expected[key]:
            problems.append(f"{key} is {json.dumps(actual[key])}, repropack writes {json.dumps(expected[key])}")
    return _check(
        "config",
        "the image's configuration (entrypoint, environment, user, labels, ...) is what "
        "repropack writes for this manifest",
        problems,
    )


def _pairs(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return dict(str(item).partition("=")[::2] for item in value or [])


def _differences(field_name: str, actual: dict[str, str], expected: dict[str, str]) -> list[str]:
    problems = [
        f"{field_name} {key}={actual[key]!r}: repropack sets no such value"
        for key in sorted(set(actual) - set(expected))
    ]
    problems += [
        f"{field_name} {key} is missing (repropack sets {expected[key]!r})"
        for key in sorted(set(expected) - set(actual))
    ]
    problems += [
        f"{field_name} {key}={actual[key]!r}, repropack sets {expected[key]!r}"
        for key in sorted(set(actual) & set(expected))
        if actual[key] != expected[key]
    ]
    return problems


def base_check(engine: Engine, image: str, manifest: Manifest) -> Check:
    recorded = list(manifest["base"].get("layers") or [])
    layers = engine.layers(image)
    if not recorded:
        problems = ["the manifest records no base layers (frozen without a Docker engine)"]
    elif layers[: len(recorded)] != recorded:
        problems = [f"the image is not built on the recorded base {manifest['base']['reference']}"]
    else:
        problems = []
    return _check("base", "the image starts with the recorded base image's layers", problems)


def image_checks(engine: Engine, image: str, manifest: Manifest, *, cache: IntegrityCache | None = None) -> list[Check]:
    """Every check of the image against ``manifest`` (whose own digest was checked already).

    ``image`` must be an image id (``sha256:...``) for ``cache`` to be used: a tag can move."""
    digest = str(manifest.get("sha256", ""))
    remembered = cache.get(image, digest) if cache is not None else {}
    checks = [config_check(engine, image, manifest), base_check(engine, image, manifest)]
    if all(name in remembered for name in CACHED_CHECKS):
        checks += [remembered[name] for name in CACHED_CHECKS]
    else:
        checks += layer_checks(engine, image, manifest)
    if cache is not None:
        cache.put(image, digest, [c for c in checks if c.name in CACHED_CHECKS and c.passed and not c.cached])
    return checks

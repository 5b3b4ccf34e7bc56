"""Verify: is the image what its manifest says, and do its metrics come back within tolerance?"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from repropack.engine import Engine
from repropack.image import load_image_manifest
from repropack.manifest import digest_of
from repropack.runner import RunRequest, default_command, run_image

# Tolerances are written as decimals (0.02) that floats only approximate: a difference equal to the
# tolerance as written must pass, so the comparison allows a few units in the last place.
ROUNDING_SLACK = 1e-9


def compare_metrics(expected: dict[str, Any], actual: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per metric: expected, actual, tolerance and whether |actual - value| <= abs_tol + rel_tol*|value|."""
    results: dict[str, dict[str, Any]] = {}
    for name, spec in sorted(expected.items()):
        value = float(spec["value"])
        tolerance = float(spec["abs_tol"]) + float(spec["rel_tol"]) * abs(value)
        got = actual.get(name)
        difference = abs(got - value) if got is not None else None
        results[name] = {
            "expected": value, "actual": got, "abs_tol": spec["abs_tol"], "rel_tol": spec["rel_tol"],
            "tolerance": tolerance, "difference": difference,
            "passed": difference is not None and difference <= tolerance * (1 + ROUNDING_SLACK) + 1e-15,
        }
    return results


def integrity_checks(image_digest_label: str | None, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    recomputed = digest_of(manifest)
    return {
        "manifest_digest": {
            "passed": manifest.get("sha256") == recomputed,
            "detail": "the embedded manifest matches its own sha256",
        },
        "manifest_label": {
            "passed": image_digest_label == recomputed,
            "detail": "the image's io.repropack.manifest.digest label names the embedded manifest",
        },
    }


def verify_image(
    engine: Engine, image: str, request: RunRequest, on_line: Callable[[str], None]
) -> dict[str, Any]:
    """Run the verification and return the report; ``report['reproduced']`` decides the exit code."""
    loaded = load_image_manifest(engine, image)
    manifest = loaded.manifest
    integrity = integrity_checks(loaded.label_digest, manifest)
    report: dict[str, Any] = {
        "image": image, "image_id": loaded.image_id, "manifest_digest": loaded.digest,
        "integrity": integrity, "metrics": {}, "reproduced": False,
    }
    if not all(check["passed"] for check in integrity.values()):
        return report
    command = request.command or default_command(manifest, ("evaluate", "train"))
    report["command"] = command
    with tempfile.TemporaryDirectory(prefix="repropack-verify-") as scratch:
        outcome = run_image(engine, loaded, replace(request, command=command), Path(scratch), on_line)
    report["metrics"] = compare_metrics(manifest["metrics"]["expected"], outcome.metrics)
    record = outcome.record
    report["run"] = {
        key: record.get(key) for key in ("device", "gpu", "host", "python", "torch", "seed", "duration_s", "settings")
    }
    report["reproduced"] = all(m["passed"] for m in report["metrics"].values())
    return report

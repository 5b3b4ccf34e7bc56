"""Verify: is the image what its manifest says, and do its metrics come back within tolerance?

Integrity comes first and runs nothing from the image; only when every check holds does the
experiment's command run (sandboxed by default), once per seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from repropack.engine.client import Engine
from repropack.engine.output_cap import DEFAULT_MAX_OUTPUT
from repropack.engine.types import STRICT, Sandbox
from repropack.image.embedded import load_image_manifest
from repropack.manifest.paper import paper_manifest_digest
from repropack.run.local import RunRequest, check_request, default_command, run_image
from repropack.run.output_folder import scratch_folder
from repropack.run.recorder import RunLabel, recorded_run
from repropack.store.store import Store
from repropack.verify.checks import Check
from repropack.verify.integrity import image_checks, manifest_checks
from repropack.verify.integrity_cache import IntegrityCache
from repropack.verify.on_cluster import OnCluster, cluster_runs
from repropack.verify.source import source_check
from repropack.verify.targets import binding_checks, resolve_target

# Tolerances are written as decimals (0.02) that floats only approximate: a difference equal to the
# tolerance as written must pass, so the comparison allows a few units in the last place.
ROUNDING_SLACK = 1e-9
RUN_FIELDS = ("device", "gpu", "host", "python", "torch", "packages", "settings")


@dataclass(frozen=True)
class VerifyOptions:
    command: str | None = None
    seeds: tuple[int, ...] = ()
    data: tuple[str, ...] = ()
    gpus: bool = False
    sandbox: Sandbox = STRICT
    cache: bool = True  # reuse passing file and package checks of an earlier verify of the same image id
    source: str | None = None  # --source: a git repository whose commit the image's code must be
    max_output: int = DEFAULT_MAX_OUTPUT  # --max-output: bytes one run may write to /output
    group: str = ""  # --group: the group its runs are recorded in
    on: OnCluster | None = None  # --on slurm: the seeds run on the cluster


def compare_metrics(expected: dict[str, Any], actual: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per metric: expected, actual, tolerance and whether |actual - value| <= abs_tol + rel_tol*|value|."""
    results: dict[str, dict[str, Any]] = {}
    for name, spec in sorted(expected.items()):
        value = float(spec["value"])
        tolerance = float(spec["abs_tol"]) + float(spec["rel_tol"]) * abs(value)
        got = actual.get(name)
        difference = abs(got - value) if got is not None else None
        results[name] = {
            "expected": value,
            "actual": got,
            "abs_tol": spec["abs_tol"],
            "rel_tol": spec["rel_tol"],
            "tolerance": tolerance,
            "difference": difference,
            "passed": difference is not None and difference <= tolerance * (1 + ROUNDING_SLACK) + 1e-15,
        }
    return results


def compare_artifacts(expected: dict[str, str], records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per artifact of the paper's original run: its sha256 and each run's; exact, in every run."""
    results = {}
    for path, digest in sorted(expected.items()):
        actual = [(record.get("artifacts") or {}).get(path) for record in records]
        results[path] = {
            "expected": digest,
            "actual": actual,
            "passed": bool(actual) and all(a == digest for a in actual),
        }
    return results


def aggregate(runs: list[dict[str, float]], names: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Means over the runs of each metric, and per metric its values and standard deviation."""
    means: dict[str, float] = {}
    spread: dict[str, Any] = {}
    for name in names:
        values = [run[name] for run in runs if name in run]
        if len(values) != len(runs):
            continue  # missing in some run: reported as not produced
        means[name] = statistics.fmean(values)
        spread[name] = {"values": values, "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return means, spread


def verify_target(
    engine: Engine,
    target: str,
    options: VerifyOptions,
    on_line: Callable[[str], None],
    store: Store | None = None,
) -> dict[str, Any]:
    """Run the verification and return the report; ``report['reproduced']`` decides the exit code. With a
    ``store``, each run is recorded there (kind ``verify``) and the report names the run ids."""
    resolved = resolve_target(engine, target)
    loaded = load_image_manifest(engine, resolved.image)
    manifest = loaded.manifest
    # --command and --data are checked against the manifest before the integrity checks read the image.
    check_request(
        manifest,
        RunRequest(command=options.command or default_command(manifest, ("evaluate", "train")), data=options.data),
    )
    paper_copy = None
    checks: list[Check] = []
    if resolved.paper is not None:
        paper_copy = {"sha256": paper_manifest_digest(resolved.paper)}
    checks += binding_checks(engine, resolved, loaded.image_id)
    checks += manifest_checks(loaded.label_digest, manifest, paper_copy)
    # --source compares the manifest's code with git only (nothing from the image runs); reported last.
    source = [source_check(options.source, manifest)] if options.source is not None else []
    if all(check.passed for check in checks):
        cache = IntegrityCache.default() if options.cache else None
        checks += image_checks(engine, loaded.image_id, manifest, cache=cache)
    checks += source
    report: dict[str, Any] = {
        # a paper manifest is named by its file name: reports hold no host paths
        "target": Path(target).name if resolved.paper is not None else target,
        "image": resolved.image,
        "reference": resolved.reference,
        "image_id": loaded.image_id,
        "manifest_digest": f"sha256:{loaded.digest}",  # as build, publish and the records write it
        "integrity": {c.name: c.as_dict() for c in checks},
        "metrics": {},
        "reproduced": False,
    }
    if not all(check.passed for check in checks):
        return report
    original = (resolved.paper or {}).get("run") or {}
    command = options.command or original.get("command") or default_command(manifest, ("evaluate", "train"))
    report["command"] = command
    seeds: list[int | None] = list(options.seeds) or [None]
    runs: list[dict[str, Any]] = []
    request = RunRequest(
        command=command, data=options.data, gpus=options.gpus, sandbox=options.sandbox, max_output=options.max_output
    )
    label = RunLabel(
        image=report["image"] if resolved.paper is not None else target,
        group=options.group,
        kind="verify",
        reference=resolved.reference,
    )
    if options.on is not None:
        if store is None:
            raise ValueError("verify --on needs the run store")
        image_ref = resolved.reference or resolved.image
        runs, report["tasks"], group = cluster_runs(
            store, loaded, image_ref, command, list(options.seeds), options.on, options.group, on_line
        )
        options = replace(options, group=group)
        seeds = []
    for seed in seeds:
        run_id = None
        with scratch_folder("repropack-verify-") as scratch:
            if store is None:
                outcome = run_image(engine, loaded, replace(request, seed=seed), scratch, on_line)
            else:
                record, recorded = recorded_run(
                    store, engine, loaded, replace(request, seed=seed), scratch, on_line, label
                )
                run_id = record["id"]
                assert recorded is not None
                if recorded.error is not None:
                    raise recorded.error
                outcome = recorded
        runs.append(
            {
                "run_id": run_id,
                "seed": outcome.record.get("seed"),
                "metrics": outcome.metrics,
                "duration_s": outcome.record.get("duration_s"),
                "record": outcome.record,
            }
        )
    expected = manifest["metrics"]["expected"]
    means, spread = aggregate([run["metrics"] for run in runs], sorted(expected))
    metrics = compare_metrics(expected, means)
    for name, extra in spread.items():
        metrics[name].update(extra)
    report["metrics"] = metrics
    # several seeds, the very same numbers: the seed never reached what the metrics measure
    report["seeds_had_no_effect"] = len(runs) > 1 and all(run["metrics"] == runs[0]["metrics"] for run in runs)
    report["runs"] = [{k: v for k, v in run.items() if k != "record"} for run in runs]
    report["run_ids"] = [run["run_id"] for run in runs if run["run_id"]]
    report["group"] = options.group
    report["run"] = {key: runs[0]["record"].get(key) for key in RUN_FIELDS}
    report["artifacts"] = compare_artifacts(original.get("artifacts") or {}, [run["record"] for run in runs])
    every_seed = all(task["state"] == "succeeded" for task in report.get("tasks", []))  # --on: all must report
    same_files = all(a["passed"] for a in report["artifacts"].values())
    report["reproduced"] = every_seed and same_files and all(m["passed"] for m in metrics.values())
    return report

"""Every run becomes a record: begun as ``running`` before the container starts, ended whole after it.

The container's output is appended to a live log as it comes (``repropack logs --follow`` reads it);
at the end the output folder and the log go into the blob store and the record is written in one
transaction. A run interrupted by Ctrl-C or SIGTERM ends as ``killed``; one whose recorder dies
(kill -9, a power cut) is found ``lost`` by the next reader on this host.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from repropack.engine.client import Engine
from repropack.errors import EnvironmentProblem, ReproError
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunOutcome, RunRequest, check_request, execute_run, parse_data, parse_sets, quiet
from repropack.runtime.records import Manifest
from repropack.store.outputs import store_folder
from repropack.store.records import DatasetUse, Requirements, RunRecord, Status
from repropack.store.store import Store

KILLED_EXIT_CODES = (137, 143)  # SIGKILL (docker kill, out of memory), SIGTERM


class Interrupted(BaseException):
    """SIGTERM reached repropack while a run was recorded: the run is ended as killed."""


@dataclass(frozen=True)
class RunLabel:
    """How a run is filed: its name (made unique in the group), group, description and kind."""

    image: str  # the reference the user gave
    name: str | None = None
    group: str = ""
    description: str = ""
    kind: str = "run"
    reference: str | None = None  # the published REGISTRY/REPO@sha256:..., when known


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def typed_overrides(sets: tuple[str, ...]) -> dict[str, Any]:
    """``--set`` pairs as the runtime applies them: JSON when the value parses, else the string."""
    found: dict[str, Any] = {}
    for key, raw in parse_sets(sets):
        try:
            found[key] = json.loads(raw)
        except ValueError:
            found[key] = raw
    return found


def default_name(command: str, seed: int | None, overrides: dict[str, Any]) -> str:
    parts = [command, *(f"{key}={value}" for key, value in sorted(overrides.items()))]
    if seed is not None:
        parts.append(f"seed={seed}")
    return "-".join(parts)


def rerun_command(record: RunRecord, manifest: Manifest) -> str:
    """The command line that runs this run again (mounted data as a PATH to fill in: no host paths)."""
    words = ["repropack", "run", record["reference"] or record["image_id"], record["command"]]
    if record["seed"] is not None:
        words += ["--seed", str(record["seed"])]
    for key, value in sorted(record["overrides"].items()):
        words += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    for name, use in sorted(record["datasets"].items()):
        if not use["embedded"]:
            words += ["--data", f"{name}=PATH"]
    return shlex.join(words)


def history(log: Path, patterns: dict[str, str]) -> dict[str, list[float]]:
    """Every value each metric pattern matched in the log, in order (a training curve)."""
    compiled = {name: re.compile(pattern) for name, pattern in patterns.items()}
    found: dict[str, list[float]] = {name: [] for name in compiled}
    if not compiled or not log.exists():
        return {}
    with log.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            for name, pattern in compiled.items():
                match = pattern.search(line)
                if match:
                    with suppress(ValueError, IndexError):
                        found[name].append(float(match.group(1)))
    return {name: values for name, values in sorted(found.items()) if values}


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a run is recorded, SIGTERM unwinds like Ctrl-C, so the record ends as killed."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupted()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def recorded_run(
    store: Store,
    engine: Engine,
    image: ImageManifest,
    request: RunRequest,
    output: Path,
    on_line: Callable[[str], None],
    label: RunLabel,
    *,
    subfolder: bool = False,
) -> tuple[RunRecord, RunOutcome | None]:
    """Run and record; returns the record and the outcome (whose ``error`` says why a run failed). With
    ``subfolder`` the results go to ``output/NAME`` (a sweep: one folder per run, named as its record)."""
    manifest = image.manifest
    command, _ = check_request(manifest, request)  # bad input never makes a record
    overrides = typed_overrides(request.sets)
    seed = request.seed if request.seed is not None else manifest["experiment"]["seed"]
    record = begun_record(
        image,
        command=command,
        seed=seed,
        overrides=overrides,
        name=label.name or default_name(command, request.seed, overrides),
        group=label.group,
        description=label.description,
        kind=label.kind,
        image_ref=label.image,
        reference=label.reference,
        datasets=_datasets(manifest, request),
        requirements={"gpus": request.gpus, "memory": request.sandbox.memory},
    )
    private = {"data": {name: str(path) for name, path in parse_data(request.data).items()}}
    store.begin(record, private)
    if subfolder:
        output = output / record["name"]
    clock = time.monotonic()
    live = store.live_log(record["id"])
    outcome: RunOutcome | None = None
    live_log = store.live_log_writer(record["id"])
    status: Status = "failed"
    error: BaseException | None = None
    try:
        with live_log, sigterm_as_interrupt():

            def tee(line: str) -> None:
                live_log.write(line)
                on_line(line)

            outcome = execute_run(engine, image, request, output, tee, shown=on_line is not quiet)
        status = _status(outcome)
    except (KeyboardInterrupt, Interrupted) as exc:
        status, error = "killed", exc
    except ReproError as exc:
        status, error = "failed", exc
    record["status"] = status
    record["ended"] = now()
    record["duration_s"] = round(time.monotonic() - clock, 3)
    if outcome is not None:
        fill_from_run(record, outcome)
    if error is not None:
        record["error"] = "Interrupted (Ctrl-C or SIGTERM)." if status == "killed" else str(error)
    record["history"] = history(live, manifest["metrics"]["stdout"])
    if live_log.problem:  # a full disk, most likely: the run went on, its record says what is missing
        kept = EnvironmentProblem(
            f"The log of run {record['id'][:10]} could not be kept whole ({live_log.problem}).",
            hint=f"Free some space in {store.blobs.root} and re-run it.",
        )
        record["status"], record["error"], error = "failed", str(kept), error or kept
    try:
        record["outputs"], _skipped = store_folder(store.blobs, output)
        if live.exists():
            with live.open("rb") as log:
                record["log_sha256"] = store.blobs.put_file(log)[0]
    except ReproError as exc:  # a full disk: the record still ends, as failed, saying why
        kept = EnvironmentProblem(
            f"Run {record['id'][:10]} ended, but its files could not be kept in the run store: {exc.message} "
            "Its record is marked failed"
            + ("." if label.kind == "verify" else f"; what it wrote is still in {output}."),
            hint=exc.hint,
        )
        record["status"], record["outputs"], record["error"] = "failed", [], str(kept)
        error = error or kept
    if record["error"]:
        record["error"] = without_host_paths(
            record["error"],
            {
                str(output.resolve()): "OUTPUT",
                str(output): "OUTPUT",
                str(store.blobs.root): "BLOBS",
            },
        )
    store.finish(record)
    live.unlink(missing_ok=True)
    if isinstance(error, Interrupted):
        raise KeyboardInterrupt from None
    if error is not None:
        raise error
    return record, outcome


def without_host_paths(text: str, named: dict[str, str]) -> str:
    """``text`` with the host's folders named by role (records are shared and exported: no host paths)."""
    for path, role in sorted({**named, str(Path.home()): "~"}.items(), key=lambda item: -len(item[0])):
        if len(path) > 1:
            text = text.replace(path, role)
    return text


def _status(outcome: RunOutcome) -> Status:
    if outcome.error is None:
        return "succeeded"
    if outcome.exit_code in KILLED_EXIT_CODES or str(outcome.record.get("status", "")).startswith(("killed", "timed")):
        return "killed"
    return "failed"


def begun_record(
    image: ImageManifest,
    *,
    command: str,
    seed: int | None,
    overrides: dict[str, Any],
    name: str,
    group: str,
    description: str,
    kind: str,
    image_ref: str,
    reference: str | None,
    datasets: dict[str, DatasetUse],
    requirements: Requirements,
) -> RunRecord:
    """A run's record as it is begun (status running, nothing ended yet), with its rerun command; the
    one shape every recorder (a local run, a cluster task) starts from."""
    manifest = image.manifest
    record: RunRecord = {
        "id": uuid.uuid4().hex,
        "name": name,
        "group": group,
        "description": description,
        "kind": kind,  # type: ignore[typeddict-item]
        "status": "running",
        "image": image_ref,
        "image_id": image.image_id,
        "manifest_digest": f"sha256:{image.digest}",
        "reference": reference,
        "experiment": manifest["experiment"]["name"],
        "command": command,
        "argv": [],
        "seed": seed,
        "overrides": overrides,
        "config_sha256": None,
        "datasets": datasets,
        "requirements": requirements,
        "started": now(),
        "ended": None,
        "duration_s": None,
        "exit_code": None,
        "error": None,
        "hardware": {},
        "software": {},
        "metrics": {},
        "expected": dict(manifest["metrics"]["expected"]),
        "history": {},
        "outputs": [],
        "log_sha256": None,
        "rerun": "",
    }
    record["rerun"] = rerun_command(record, manifest)
    return record


def fill_from_run(record: RunRecord, outcome: RunOutcome) -> None:
    run = outcome.record
    record["exit_code"] = outcome.exit_code
    record["metrics"] = outcome.metrics
    record["argv"] = [str(word) for word in run.get("argv", [])]
    if isinstance(run.get("seed"), int):
        record["seed"] = run["seed"]
    if isinstance(run.get("overrides"), dict):
        record["overrides"] = run["overrides"]
    if isinstance(run.get("config_sha256"), str):
        record["config_sha256"] = run["config_sha256"]
    uses = run.get("datasets")
    if isinstance(uses, dict):
        for name, use in uses.items():
            if name in record["datasets"] and isinstance(use, dict) and isinstance(use.get("sha256"), str):
                record["datasets"][name] = {
                    "sha256": use["sha256"],
                    "embedded": bool(use.get("embedded")),
                    "as_frozen": bool(use.get("as_frozen")),
                }
    record["hardware"] = {key: run.get(key) for key in ("device", "gpu", "host")}
    record["software"] = {key: run.get(key) for key in ("python", "torch", "packages", "settings")}
    if outcome.error is not None:
        record["error"] = str(outcome.error)


def _datasets(manifest: Manifest, request: RunRequest) -> dict[str, DatasetUse]:
    given = set(parse_data(request.data))
    return {
        name: {
            "sha256": entry["sha256"],
            "embedded": bool(entry["embed"]) and name not in given,
            "as_frozen": name not in request.new_data,
        }
        for name, entry in sorted(manifest["datasets"].items())
    }

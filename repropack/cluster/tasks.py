"""A submitted group: one task per seed and sweep combination, each with a record begun at submission and
ended from the markers and files the task leaves in its folder (``task-N/``) on the shared output folder.

A task's state comes from its markers only: no ``started`` is queued, ``started`` without ``exit_code``
is running, an ``exit_code`` of 0 succeeded, 137/143 killed, anything else failed. What a task left is
read as the local run's output folder is: regular files only, no link followed, sizes capped.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.cluster.slurm import SCRIPT, SlurmOptions, render_script, submit
from repropack.errors import BadInput, CommandFailed, EnvironmentProblem, ReproError
from repropack.files import atomic_write
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunOutcome, RunRequest, check_request
from repropack.run.output_folder import read_record
from repropack.run.recorder import default_name, fill_from_run, history, now, rerun_command, typed_overrides
from repropack.store.outputs import store_folder
from repropack.store.records import RunRecord, Status
from repropack.store.store import Store

KILLED = (137, 143)


@dataclass(frozen=True)
class Submitted:
    group: str
    folder: Path
    script: Path
    job: str | None  # None for --dry-run
    run_ids: list[str]


def task_args(command: str, request: RunRequest, seed: int) -> list[str]:
    args = [command]
    for item in request.sets:
        args += ["--set", item]
    return [*args, "--seed", str(seed)]


def submit_group(
    store: Store,
    image: ImageManifest,
    image_ref: str,
    requests: list[RunRequest],
    folder: Path,
    group: str,
    options: SlurmOptions,
    *,
    dry_run: bool,
) -> Submitted:
    manifest = image.manifest
    mounted = sorted(name for name, d in manifest["datasets"].items() if not d["embed"])
    if mounted:
        raise BadInput(
            f"The experiment's dataset {', '.join(mounted)} is mounted, not embedded; cluster tasks run on data in "
            "the image only (for now).",
            hint="Embed the data (embed: true) and rebuild, or run the seeds locally with repropack run --seeds.",
        )
    folder = folder.resolve()
    commands = [check_request(manifest, request)[0] for request in requests]
    script_text = render_script(
        folder=folder,
        tasks=len(requests),
        image=image_ref,
        image_id=image.image_id,
        experiment=manifest["experiment"]["name"],
        group=group,
        options=options,
    )
    tasks = []
    for index, (request, command) in enumerate(zip(requests, commands, strict=True)):
        seed = request.seed if request.seed is not None else manifest["experiment"]["seed"]
        atomic_write(
            folder / f"task-{index}" / "args", "".join(f"{a}\n" for a in task_args(command, request, seed)).encode()
        )
        tasks.append({"index": index, "command": command, "seed": seed, "sets": list(request.sets)})
    script = folder / SCRIPT
    atomic_write(script, script_text.encode())
    script.chmod(0o755)
    atomic_write(folder / "tasks.json", (json.dumps(tasks, indent=2, sort_keys=True) + "\n").encode())
    if dry_run:
        return Submitted(group, folder, script, None, [])
    records = []
    for task, request in zip(tasks, requests, strict=True):
        record = _new_record(image, image_ref, request, task, group, options)
        private = {
            "cluster": {
                "to": "slurm",
                "folder": str(folder),
                "index": task["index"],
                "patterns": dict(manifest["metrics"]["stdout"]),
            }
        }
        records.append(store.begin(record, private, recorder=f"slurm:{group} {uuid.uuid4().hex} submitted"))
    try:
        job = submit(script)
    except ReproError as exc:
        for record in records:
            store.mark(record["id"], "failed", f"Not submitted: {exc.message}")
        raise
    atomic_write(folder / "job", f"{job}\n".encode())
    return Submitted(group, folder, script, job, [record["id"] for record in records])


def _new_record(
    image: ImageManifest, image_ref: str, request: RunRequest, task: dict[str, Any], group: str, options: SlurmOptions
) -> RunRecord:
    manifest = image.manifest
    overrides = typed_overrides(request.sets)
    record: RunRecord = {
        "id": uuid.uuid4().hex,
        "name": default_name(task["command"], task["seed"], overrides),
        "group": group,
        "description": f"Slurm task {task['index']}",
        "kind": "run",
        "status": "running",
        "image": image_ref,
        "image_id": image.image_id,
        "manifest_digest": f"sha256:{image.digest}",
        "reference": image_ref if "@sha256:" in image_ref else None,
        "experiment": manifest["experiment"]["name"],
        "command": task["command"],
        "argv": [],
        "seed": task["seed"],
        "overrides": overrides,
        "config_sha256": None,
        "datasets": {
            name: {"sha256": d["sha256"], "embedded": True, "as_frozen": True}
            for name, d in sorted(manifest["datasets"].items())
        },
        "requirements": {"gpus": options.gpus > 0, "memory": options.memory},
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


# -- status and results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskState:
    index: int
    run_id: str
    name: str
    seed: int | None
    state: str  # queued, running, succeeded, failed, killed
    exit_code: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "run_id": self.run_id,
            "name": self.name,
            "seed": self.seed,
            "state": self.state,
            "exit_code": self.exit_code,
        }


def _marker(folder: Path, name: str) -> str | None:
    data = read_record(folder, name, shown_as=str(folder))
    return None if data is None else data.decode(errors="replace").strip()


def group_tasks(store: Store, group: str) -> tuple[Path, list[tuple[RunRecord, int, dict[str, str]]]]:
    """The group's folder and its tasks: record, index, and the metric patterns of its image."""
    found = []
    folder: Path | None = None
    for record in store.group_records(group):
        cluster = store.private(record["id"]).get("cluster")
        if cluster:
            folder = Path(cluster["folder"])
            found.append((record, int(cluster["index"]), dict(cluster.get("patterns", {}))))
    if folder is None:
        raise BadInput(f"The group '{group}' has no submitted tasks.", hint="See the groups with: repropack runs")
    return folder, sorted(found, key=lambda task: task[1])


def task_state(folder: Path, index: int) -> tuple[str, int | None]:
    task = folder / f"task-{index}"
    code_text = _marker(task, "exit_code")
    if code_text is None:
        return ("running" if _marker(task, "started") is not None else "queued"), None
    code = int(code_text) if code_text.lstrip("-").isdigit() else 1
    if code == 0:
        return "succeeded", 0
    return ("killed" if code in KILLED else "failed"), code


def status(store: Store, group: str) -> tuple[str | None, list[TaskState]]:
    """Every task's state; the records of ended tasks are completed on the way (idempotently)."""
    folder, tasks = group_tasks(store, group)
    states = []
    for record, index, patterns in tasks:
        state, code = task_state(folder, index)
        if state in ("succeeded", "failed", "killed") and record["status"] == "running":
            collect(store, record, folder / f"task-{index}", state, code, patterns)
        states.append(TaskState(index, record["id"], record["name"], record["seed"], state, code))
    job = _marker(folder, "job")
    return job, states


def collect(
    store: Store, record: RunRecord, task: Path, state: str, code: int | None, patterns: dict[str, str]
) -> None:
    output = task / "output"
    error: ReproError | None = None
    try:
        run = json.loads(read_record(output, "run.json") or b"{}")
        metrics = json.loads(read_record(output, "metrics.json") or b"{}") if code == 0 else {}
    except (ReproError, ValueError) as exc:
        run, metrics = {}, {}
        error = exc if isinstance(exc, ReproError) else CommandFailed(f"The task's results are not JSON ({exc}).")
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if code != 0 and error is None:
        last = (_marker(task, "log") or "").splitlines()[-3:]
        error = CommandFailed(f"The task ended with exit code {code}: {' | '.join(last) or '(no output)'}")
    outcome = RunOutcome(record["command"], output, numbers, run if isinstance(run, dict) else {}, code or 0, error)
    fill_from_run(record, outcome)
    record["exit_code"] = code
    ended: Status = "killed" if state == "killed" else "failed"
    record["status"] = "succeeded" if state == "succeeded" and error is None else ended
    started, finished = _marker(task, "started"), _marker(task, "ended")
    if started:
        record["started"] = started
    record["ended"] = finished or now()
    seconds = outcome.record.get("duration_s")
    record["duration_s"] = float(seconds) if isinstance(seconds, (int, float)) else None
    record["history"] = history(task / "log", patterns)
    record["outputs"], _ = store_folder(store.blobs, output)
    if (task / "log").exists():
        with (task / "log").open("rb") as handle:
            record["log_sha256"] = store.blobs.put_file(handle)[0]
    store.finish(record)


def wait(store: Store, group: str, timeout: float | None, poll: float = 1.0) -> tuple[str | None, list[TaskState]]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job, states = status(store, group)
        if all(s.state in ("succeeded", "failed", "killed") for s in states):
            return job, states
        if deadline is not None and time.monotonic() > deadline:
            left = sum(s.state in ("queued", "running") for s in states)
            raise EnvironmentProblem(
                f"{left} of {len(states)} task(s) of the group '{group}' had not ended after {timeout:g} s.",
                hint=f"Wait again (repropack wait {group}) or cancel them (repropack cancel {group}).",
            )
        time.sleep(poll)

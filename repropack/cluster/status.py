"""A submitted group's state, task by task, and the records completed from what each task left.

On Slurm a task's state comes from its markers on the shared folder: no ``started`` is queued,
``started`` without ``exit_code`` is running, an ``exit_code`` of 0 succeeded, 137/143 killed, anything else
failed; a task that never ended and that Slurm no longer holds (``squeue``, asked before the markers are
read) is lost: its node disappeared or its job was killed outright. What a task left is read as the local
run's output folder is: regular files only, no link followed, sizes capped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repropack.cluster import slurm
from repropack.errors import BadInput, CommandFailed, ReproError
from repropack.run.local import RunOutcome
from repropack.run.output_folder import read_record
from repropack.run.recorder import fill_from_run, history, now
from repropack.store.outputs import store_folder
from repropack.store.records import RunRecord, Status
from repropack.store.store import Store

KILLED = (137, 143)
ENDED = ("succeeded", "failed", "killed", "lost")


@dataclass(frozen=True)
class Task:
    """One task of a group: its latest record and what was written at submission (``private["cluster"]``)."""

    record: RunRecord
    index: int
    cluster: dict[str, Any]

    @property
    def folder(self) -> Path:
        return Path(self.cluster["folder"]) / f"task-{self.index}"


@dataclass(frozen=True)
class Observed:
    state: str  # queued, running, succeeded, failed, killed, lost
    exit_code: int | None = None
    output: Path | None = None  # the task's output folder, when it can be read from here
    log: Path | None = None  # a file this process wrote, or the task's script did (never the image)
    started: str | None = None
    ended: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # what a termination message carried
    why: str | None = None


@dataclass(frozen=True)
class TaskState:
    index: int
    run_id: str
    name: str
    seed: int | None
    state: str
    exit_code: int | None
    attempt: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "run_id": self.run_id,
            "name": self.name,
            "seed": self.seed,
            "state": self.state,
            "exit_code": self.exit_code,
            "attempt": self.attempt,
        }


def marker(folder: Path, name: str) -> str | None:
    data = read_record(folder, name, shown_as=str(folder))
    return None if data is None else data.decode(errors="replace").strip()


def group_tasks(store: Store, group: str) -> list[Task]:
    """The group's tasks, the latest attempt of each index."""
    latest: dict[int, Task] = {}
    for record in store.group_records(group):
        cluster = store.private(record["id"]).get("cluster")
        if cluster:
            task = Task(record, int(cluster["index"]), cluster)
            prior = latest.get(task.index)
            if prior is None or int(cluster.get("attempt", 1)) > int(prior.cluster.get("attempt", 1)):
                latest[task.index] = task
    if not latest:
        raise BadInput(f"The group '{group}' has no submitted tasks.", hint="See the groups with: repropack runs")
    return [latest[index] for index in sorted(latest)]


def observe_slurm(tasks: list[Task]) -> list[Observed]:
    open_jobs = [job for t in tasks if t.record["status"] == "running" and (job := marker(t.folder, "job"))]
    held = slurm.queued(open_jobs) if open_jobs else set()  # before the markers: see the module's docstring
    seen = []
    for task in tasks:
        folder = task.folder
        started, code_text = marker(folder, "started"), marker(folder, "exit_code")
        log = folder / "log" if (folder / "log").is_file() else None
        if code_text is None:
            job = marker(folder, "job")
            if held is not None and job and f"{job}_{task.index}" not in held and task.record["status"] == "running":
                why = f"Slurm no longer holds task {job}_{task.index} and it never ended (its node went away?)."
                seen.append(Observed("lost", None, folder / "output", log, started, why=why))
            else:
                seen.append(Observed("running" if started is not None else "queued", started=started))
            continue
        code = int(code_text) if code_text.lstrip("-").isdigit() else 1
        state = "succeeded" if code == 0 else "killed" if code in KILLED else "failed"
        seen.append(Observed(state, code, folder / "output", log, started, marker(folder, "ended")))
    return seen


def collect(store: Store, record: RunRecord, seen: Observed, patterns: dict[str, str]) -> None:
    """End the record from what the task left: its run.json, metrics, log and output files."""
    error: ReproError | None = None
    run: Any = {}
    metrics: Any = dict(seen.metrics)
    try:
        if seen.output is not None:
            run = json.loads(read_record(seen.output, "run.json") or b"{}")
            if seen.exit_code == 0:
                metrics = json.loads(read_record(seen.output, "metrics.json") or b"{}") or metrics
    except (ReproError, ValueError) as exc:
        run, metrics = {}, {}
        error = exc if isinstance(exc, ReproError) else CommandFailed(f"The task's results are not JSON ({exc}).")
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if seen.state != "succeeded" and error is None:
        last = _tail(seen.log)
        said = seen.why or f"The task ended with exit code {seen.exit_code}"
        error = CommandFailed(f"{said}: {' | '.join(last) or '(no output)'}")
    folder = seen.output if seen.output is not None else Path("/nonexistent")
    outcome = RunOutcome(record["command"], folder, numbers, run if isinstance(run, dict) else {}, 0, error)
    fill_from_run(record, outcome)
    record["exit_code"] = seen.exit_code
    ended: Status = "killed" if seen.state == "killed" else "lost" if seen.state == "lost" else "failed"
    record["status"] = "succeeded" if seen.state == "succeeded" and error is None else ended
    record["started"] = seen.started or record["started"]
    record["ended"] = seen.ended or now()
    seconds = outcome.record.get("duration_s")
    record["duration_s"] = float(seconds) if isinstance(seconds, (int, float)) else None
    if seen.log is not None:
        with seen.log.open("rb") as handle:
            record["log_sha256"] = store.blobs.put_file(handle)[0]
        record["history"] = history(seen.log, patterns)
    if seen.output is not None and seen.output.is_dir():
        record["outputs"], _ = store_folder(store.blobs, seen.output)
    store.finish(record)


def _tail(log: Path | None, lines: int = 3) -> list[str]:
    if log is None:
        return []
    with log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - 4096))
        return [line for line in handle.read().decode(errors="replace").splitlines() if line.strip()][-lines:]


def task_state(task: Task, seen: Observed) -> TaskState:
    """The record's status once it ended (a cancel marks it killed however its markers read), else the
    observed one."""
    record = task.record
    ended = record["status"] != "running"
    return TaskState(
        task.index,
        record["id"],
        record["name"],
        record["seed"],
        record["status"] if ended else seen.state,
        record["exit_code"] if ended else seen.exit_code,
        int(task.cluster.get("attempt", 1)),
    )

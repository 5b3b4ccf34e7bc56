"""A submitted group: one task per seed and sweep combination, each with a record begun at submission and
ended (see :mod:`repropack.cluster.status`) from what the task leaves in its folder (``task-N/``) on the
shared output folder. A task submitted again (lost with retries left, or ``repropack resubmit``) gets a new
record, its attempt counted; the earlier attempt's record and files are kept."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from repropack.cluster import kube_tasks, slurm
from repropack.cluster.slurm import SCRIPT, SlurmOptions, render_script
from repropack.cluster.status import ENDED, Task, TaskState, collect, group_tasks, marker, observe_slurm, task_state
from repropack.cluster.task_records import again, check_cluster_data, new_record, plan_tasks
from repropack.errors import EnvironmentProblem, ReproError
from repropack.files import atomic_write
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunRequest
from repropack.store.records import RunRecord
from repropack.store.store import Store


@dataclass(frozen=True)
class Submitted:
    group: str
    folder: Path
    script: Path
    job: str | None  # None for --dry-run
    run_ids: list[str]


def submit_group(
    store: Store,
    image: ImageManifest,
    image_ref: str,
    requests: list[RunRequest],
    folder: Path,
    group: str,
    options: SlurmOptions,
    *,
    runtime: str = "docker",
    retries: int = 0,
    dry_run: bool,
    kind: str = "run",
) -> Submitted:
    manifest = image.manifest
    check_cluster_data(manifest)
    folder = folder.resolve()
    planned = plan_tasks(manifest, requests)
    script_text = render_script(
        folder=folder,
        tasks=len(requests),
        image=image_ref,
        image_id=image.image_id,
        experiment=manifest["experiment"]["name"],
        group=group,
        options=options,
        runtime=runtime,
    )
    tasks = []
    for task in planned:
        args = task.pop("args")
        atomic_write(folder / f"task-{task['index']}" / "args", "".join(f"{a}\n" for a in args).encode())
        tasks.append(task)
    script = folder / SCRIPT
    atomic_write(script, script_text.encode())
    script.chmod(0o755)
    atomic_write(folder / "tasks.json", (json.dumps(tasks, indent=2, sort_keys=True) + "\n").encode())
    if dry_run:
        return Submitted(group, folder, script, None, [])
    # submitted first, recorded after: a job sbatch refuses (an unknown partition) leaves no record behind
    job = _sbatch(store, folder, [], list(range(len(tasks))), whole=True)
    try:
        records = _begin(store, image, image_ref, requests, tasks, group, options, folder, retries, runtime, kind)
    except BaseException:
        slurm.cancel([job])  # nothing would record what it ran
        raise
    return Submitted(group, folder, script, job, [record["id"] for record in records])


def _begin(
    store: Store,
    image: ImageManifest,
    image_ref: str,
    requests: list[RunRequest],
    tasks: list[dict[str, Any]],
    group: str,
    options: SlurmOptions,
    folder: Path,
    retries: int,
    runtime: str,
    kind: str,
) -> list[RunRecord]:
    manifest = image.manifest
    records = []
    for task, request in zip(tasks, requests, strict=True):
        record = new_record(
            image,
            image_ref,
            request,
            task,
            group,
            gpus=options.gpus,
            memory=options.memory,
            kind=kind,
            description=f"Slurm task {task['index']}",
        )
        private = {
            "cluster": {
                "to": "slurm",
                "folder": str(folder),
                "index": task["index"],
                "patterns": dict(manifest["metrics"]["stdout"]),
                "attempt": 1,
                "retries": retries,
                "runtime": runtime,
            }
        }
        records.append(store.begin(record, private, recorder=f"slurm:{group} {uuid.uuid4().hex} submitted"))
    return records


def _sbatch(store: Store, folder: Path, records: list[RunRecord], indexes: list[int], *, whole: bool) -> str:
    """Submit the script for ``indexes`` (all of its array when ``whole``); each task's folder names its job."""
    try:
        job = slurm.submit(folder / SCRIPT, None if whole else indexes)
    except ReproError as exc:
        for record in records:
            store.mark(record["id"], "failed", f"Not submitted: {exc.message}")
        raise
    for index in indexes:
        atomic_write(folder / f"task-{index}" / "job", f"{job}\n".encode())
    jobs = (marker(folder, "jobs") or "").split()
    atomic_write(folder / "jobs", "".join(f"{j}\n" for j in [*jobs, job]).encode())
    return job


def requeue(store: Store, tasks: list[Task]) -> str:
    """Submit these ended tasks again, each as a new attempt (see :func:`again`); the job's id."""
    if tasks[0].cluster.get("to") == "kubernetes":
        return kube_tasks.requeue(store, tasks)
    records = [again(store, task, {}) for task in tasks]
    return _sbatch(store, Path(tasks[0].cluster["folder"]), records, [task.index for task in tasks], whole=False)


def resubmit(store: Store, group: str) -> tuple[str | None, list[int]]:
    """Submit the group's failed, killed and lost tasks again (their latest attempts); the job and indexes."""
    status(store, group)  # what ended since the last look is recorded first
    ended = [task for task in group_tasks(store, group) if task.record["status"] in ("failed", "killed", "lost")]
    if not ended:
        return None, []
    return requeue(store, ended), [task.index for task in ended]


def cancel(store: Store, group: str) -> list[str]:
    """scancel every job of the group; the tasks that had not ended are recorded as killed."""
    status(store, group)  # what ended before the cancel is recorded as it ended
    tasks = group_tasks(store, group)
    if tasks[0].cluster.get("to") == "kubernetes":
        jobs = kube_tasks.cancel([task for task in tasks if task.record["status"] == "running"])
    else:
        jobs = sorted(
            {job for task in tasks if task.record["status"] == "running" and (job := marker(task.folder, "job"))}
        )
        slurm.cancel(jobs) if jobs else None
        _file_cancelled(store, [task for task in tasks if task.record["status"] == "running"])
    for task in tasks:  # marked here, not read back from markers: a killed task is not "lost" and not retried
        if task.record["status"] == "running":
            store.mark(task.record["id"], "killed", f"Cancelled (repropack cancel {group}).")
    return jobs


def _file_cancelled(store: Store, tasks: list[Task], grace: float = 10.0) -> None:
    """A cancelled Slurm task's trap writes its exit code (143) on the way out: give the running ones a few
    seconds to, and file those that did with their log and outputs (the others are marked killed)."""
    deadline = time.monotonic() + grace
    while tasks and time.monotonic() < deadline:
        left = []
        for task, seen in zip(tasks, observe_slurm(tasks), strict=True):
            if seen.exit_code is not None:
                collect(store, task.record, replace(seen, state="killed"), dict(task.cluster.get("patterns", {})))
            elif seen.state != "queued":  # a queued task never started: nothing will come
                left.append(task)
        tasks = left
        time.sleep(0.5) if tasks else None


# -- status ------------------------------------------------------------------------------------------------
def status(store: Store, group: str) -> list[TaskState]:
    """Every task's state; the records of ended tasks are completed on the way (idempotently), and a lost
    task with retries left is submitted again."""
    tasks = group_tasks(store, group)
    on_kubernetes = tasks[0].cluster.get("to") == "kubernetes"
    # Kubernetes retries a lost pod itself (podFailurePolicy: uncounted) and a failed one (backoffLimitPerIndex)
    observed = kube_tasks.observe(tasks) if on_kubernetes else observe_slurm(tasks)
    retry = []
    for task, seen in zip(tasks, observed, strict=True):
        if seen.state in ENDED and task.record["status"] == "running":
            collect(store, task.record, seen, dict(task.cluster.get("patterns", {})))
            attempts_left = int(task.cluster.get("retries", 0)) >= int(task.cluster.get("attempt", 1))
            if seen.state == "lost" and attempts_left and not on_kubernetes:
                retry.append(task)
    if retry:
        requeue(store, retry)
        return status(store, group)
    return [task_state(task, seen) for task, seen in zip(tasks, observed, strict=True)]


def wait(store: Store, group: str, timeout: float | None, poll: float = 1.0) -> list[TaskState]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        states = status(store, group)
        if all(s.state in ENDED for s in states):
            return states
        if deadline is not None and time.monotonic() > deadline:
            left = sum(s.state in ("queued", "running") for s in states)
            raise EnvironmentProblem(
                f"{left} of {len(states)} task(s) of the group '{group}' had not ended after {timeout:g} s.",
                hint=f"Wait again (repropack wait {group}) or cancel them (repropack cancel {group}).",
            )
        time.sleep(poll)

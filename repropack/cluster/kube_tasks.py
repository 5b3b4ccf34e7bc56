"""A group on Kubernetes: one Indexed Job (its manifest kept in the group's folder as ``job.yaml``), one
record per index begun at submission, each index's state read from the API, and its results from the
shared volume (``--volume CLAIM``, seen here at ``--output DIR``, one ``task-N`` folder per index) or,
without one, from the container's termination message (metrics only) and its log."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

from repropack.cluster.kube_api import KubeApi, connect
from repropack.cluster.kubernetes import (
    KubeOptions,
    job_name,
    parse_termination_message,
    render_job,
    task_output,
    write_manifests,
)
from repropack.cluster.status import Observed, Task
from repropack.cluster.task_records import again, check_cluster_data, new_record, plan_tasks
from repropack.errors import ReproError
from repropack.files import atomic_write
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunRequest
from repropack.store.records import RunRecord
from repropack.store.store import Store


def submit_job(
    store: Store,
    image: ImageManifest,
    image_ref: str,
    requests: list[RunRequest],
    folder: Path,
    group: str,
    options: KubeOptions,
    *,
    dry_run: bool,
    kind: str,
) -> tuple[Path, list[str]]:
    """Write the Job's manifest and, unless ``dry_run``, begin the records and create the Job; the
    manifest's path and the run ids."""
    manifest = image.manifest
    check_cluster_data(manifest)
    folder = folder.resolve()
    volume = options.volume is not None
    tasks = plan_tasks(manifest, requests)
    arguments = [[*task.pop("args"), "--output", task_output(task["index"], volume)] for task in tasks]
    name = job_name(group)
    job = render_job(
        name=name,
        image=image_ref,
        tasks=arguments,
        group=group,
        experiment=manifest["experiment"]["name"],
        options=options,
    )
    path = write_manifests(folder, job)
    atomic_write(folder / "arguments.json", (json.dumps(arguments, indent=2) + "\n").encode())
    atomic_write(folder / "tasks.json", (json.dumps(tasks, indent=2, sort_keys=True) + "\n").encode())
    if dry_run:
        return path, []
    api = connect()  # an unreadable kubeconfig stops here, before anything is submitted
    api.create_job(job)  # created first, recorded after: a Job the cluster refuses leaves no record behind
    records: list[RunRecord] = []
    try:
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
                description=f"Kubernetes index {task['index']}",
            )
            private = {
                "cluster": {
                    "to": "kubernetes",
                    "folder": str(folder),
                    "index": task["index"],
                    "patterns": dict(manifest["metrics"]["stdout"]),
                    "attempt": 1,
                    "retries": options.retries,
                    "namespace": options.namespace,
                    "job": name,
                    "volume": volume,
                    "slot": task["index"],
                    "slots": len(tasks),
                    "options": dataclasses.asdict(options),
                }
            }
            recorder = f"kubernetes:{group} {uuid.uuid4().hex} submitted"
            records.append(store.begin(record, private, recorder=recorder))
    except BaseException:
        api.delete_job(options.namespace, name)  # nothing would record what it ran
        raise
    atomic_write(folder / "job", f"{options.namespace}/{name}\n".encode())
    return path, [record["id"] for record in records]


def observe(tasks: list[Task], api: KubeApi | None = None) -> list[Observed]:
    """Each task's state from the API (a task submitted again is a slot of a later Job); an ended task's log
    is fetched (while its pod is still there) into its folder here, and its metrics taken from the volume
    or the termination message."""
    api = api or connect()
    by_job: dict[tuple[str, str], list[Task]] = {}
    for task in tasks:
        by_job.setdefault((task.cluster["namespace"], task.cluster["job"]), []).append(task)
    states = {}
    for (namespace, job), members in by_job.items():
        slots = int(members[0].cluster.get("slots", len(tasks)))
        found = api.task_states(namespace, job, slots)
        for task in members:
            states[task.index] = found[int(task.cluster.get("slot", task.index))]
    seen = []
    for task in tasks:
        state = states[task.index]
        if state.state in ("queued", "running") or task.record["status"] != "running":
            seen.append(Observed(state.state, state.exit_code))
            continue
        log = task.folder / "log"
        text = api.log(task.cluster["namespace"], state.pod) if state.pod else ""
        atomic_write(log, text.encode())
        message: dict[str, Any] = parse_termination_message(state.message)
        why = "The job or its pod is gone before the task ended" if state.state == "lost" else None
        output = task.folder if task.cluster.get("volume") else None  # the volume's task-N, seen here
        seen.append(Observed(state.state, state.exit_code, output, log, metrics=message.get("metrics", {}), why=why))
    return seen


def requeue(store: Store, tasks: list[Task]) -> str:
    """A new Indexed Job for these ended tasks only (slot K runs task N's own arguments); its name."""
    first = tasks[0]
    folder = Path(first.cluster["folder"])
    arguments = json.loads((folder / "arguments.json").read_text())
    attempt = 1 + max(int(task.cluster.get("attempt", 1)) for task in tasks)
    group = str(first.record["group"])
    name = job_name(f"{group}-attempt-{attempt}")
    options = KubeOptions(**first.cluster["options"])
    job = render_job(
        name=name,
        image=str(first.record["image"]),
        tasks=[arguments[task.index] for task in tasks],
        group=group,
        experiment=str(first.record["experiment"]),
        options=options,
    )
    write_manifests(folder / f"attempt-{attempt}", job)
    api = connect()
    records = [again(store, task, {"job": name, "slot": slot, "slots": len(tasks)}) for slot, task in enumerate(tasks)]
    try:
        api.create_job(job)
    except ReproError as exc:
        for record in records:
            store.mark(record["id"], "failed", f"Not submitted: {exc.message}")
        raise
    return f"{options.namespace}/{name}"


def cancel(tasks: list[Task]) -> list[str]:
    """Delete the Jobs these tasks run in (their pods go with them)."""
    jobs = sorted({(task.cluster["namespace"], task.cluster["job"]) for task in tasks})
    if jobs:
        api = connect()
        for namespace, name in jobs:
            api.delete_job(namespace, name)
    return [f"{namespace}/{name}" for namespace, name in jobs]

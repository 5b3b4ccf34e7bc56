"""The records of a group's tasks: what a task runs (its arguments), its record begun at submission, and
the next attempt of a task submitted again. Shared by the Slurm and the Kubernetes side."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from repropack.cluster.status import Task
from repropack.errors import BadInput
from repropack.files import atomic_write
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunRequest, check_request
from repropack.run.recorder import begun_record, default_name, now, typed_overrides
from repropack.runtime.records import Manifest
from repropack.store.records import RunRecord
from repropack.store.store import Store


def task_args(command: str, request: RunRequest, seed: int) -> list[str]:
    args = [command]
    for item in request.sets:
        args += ["--set", item]
    return [*args, "--seed", str(seed)]


def check_cluster_data(manifest: Manifest) -> None:
    mounted = sorted(name for name, d in manifest["datasets"].items() if not d["embed"])
    if mounted:
        raise BadInput(
            f"The experiment's dataset {', '.join(mounted)} is mounted, not embedded; cluster tasks run on data in "
            "the image only (for now).",
            hint="Embed the data (embed: true) and rebuild, or run the seeds locally with repropack run --seeds.",
        )


def plan_tasks(manifest: Manifest, requests: list[RunRequest]) -> list[dict[str, Any]]:
    """One task per request, checked against the image: its index, command, seed, --set items and the
    image's arguments (every request is checked before anything is written)."""
    tasks = []
    for index, request in enumerate(requests):
        command = check_request(manifest, request)[0]
        seed = request.seed if request.seed is not None else manifest["experiment"]["seed"]
        args = task_args(command, request, seed)
        tasks.append({"index": index, "command": command, "seed": seed, "sets": list(request.sets), "args": args})
    return tasks


def new_record(
    image: ImageManifest,
    image_ref: str,
    request: RunRequest,
    task: dict[str, Any],
    group: str,
    *,
    gpus: int,
    memory: str | None,
    kind: str,
    description: str,
) -> RunRecord:
    overrides = typed_overrides(request.sets)
    return begun_record(
        image,
        command=task["command"],
        seed=task["seed"],
        overrides=overrides,
        name=default_name(task["command"], task["seed"], overrides),
        group=group,
        description=description,
        kind="verify" if kind == "verify" else "run",
        image_ref=image_ref,
        reference=image_ref if "@sha256:" in image_ref else None,
        datasets={
            name: {"sha256": d["sha256"], "embedded": True, "as_frozen": True}
            for name, d in sorted(image.manifest["datasets"].items())
        },
        requirements={"gpus": gpus > 0, "memory": memory},
    )


def again(store: Store, task: Task, private: dict[str, Any]) -> RunRecord:
    """Begin the next attempt of an ended task: a new record in its group (the earlier one is kept), its
    folder moved aside as ``task-N.attempt-K`` (that record already holds its log and files)."""
    attempt = int(task.cluster.get("attempt", 1))
    args = (task.folder / "args").read_bytes() if (task.folder / "args").exists() else None
    if task.folder.exists():
        os.replace(task.folder, task.folder.with_name(f"task-{task.index}.attempt-{attempt}"))
    if args is not None:
        atomic_write(task.folder / "args", args)
    record: RunRecord = json.loads(json.dumps(task.record))
    record["id"] = uuid.uuid4().hex
    record["name"] = f"{task.record['name'].split('.attempt-')[0]}.attempt-{attempt + 1}"
    record["status"], record["started"], record["ended"] = "running", now(), None
    record["duration_s"], record["exit_code"], record["error"] = None, None, None
    record["metrics"], record["history"], record["outputs"], record["log_sha256"] = {}, {}, [], None
    cluster = {**task.cluster, **private, "attempt": attempt + 1}
    recorder = f"{cluster['to']}:{task.record['group']} {uuid.uuid4().hex} submitted"
    return store.begin(record, {"cluster": cluster}, recorder=recorder)

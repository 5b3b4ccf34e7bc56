"""Commands that hand runs to a cluster: ``submit`` (a Slurm job array or a Kubernetes Indexed Job),
``status``, ``wait``, ``resubmit``, ``cancel``."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repropack.cli.app import GroupOpt, JsonOpt, SeedsOpt, SetOpt, app, print_json, say, seeds_option, sweep_option
from repropack.errors import BadInput

if TYPE_CHECKING:
    from repropack.cluster.status import TaskState

GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="The group the submission made.")]


@app.command(short_help="Run seeds and sweeps on Slurm or Kubernetes, as one group.")
def submit(
    image: Annotated[
        str, typer.Argument(metavar="IMAGE_OR_REF", help="The image (tag, id or REGISTRY/REPO@sha256:...).")
    ],
    command: Annotated[str | None, typer.Argument(metavar="[COMMAND]", help="The command (default: train).")] = None,
    to: Annotated[str, typer.Option("--to", metavar="slurm|kubernetes", help="The cluster's scheduler.")] = "slurm",
    seeds: SeedsOpt = None,
    sweeps: Annotated[
        list[str] | None, typer.Option("--sweep", metavar="KEY=V1,V2", help="One task per value (every combination).")
    ] = None,
    sets: SetOpt = None,
    group: GroupOpt = None,
    gpus: Annotated[int, typer.Option("--gpus", metavar="N", min=0, help="GPUs per task.")] = 0,
    memory: Annotated[str | None, typer.Option("--memory", metavar="SIZE", help="Memory per task (8G).")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", metavar="LIMIT", help="Time limit per task.")] = None,
    partition: Annotated[str | None, typer.Option("--partition", metavar="P", help="Slurm: the partition.")] = None,
    account: Annotated[str | None, typer.Option("--account", metavar="A", help="Slurm: the account.")] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime", metavar="docker|apptainer|pyxis", help="Slurm: how a node runs the image (apptainer if there)."
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option("--retries", metavar="N", min=0, help="Run a lost (Kubernetes: or failed) task again, N times."),
    ] = 0,
    namespace: Annotated[
        str | None, typer.Option("--namespace", metavar="NS", help="Kubernetes: the namespace (default: default).")
    ] = None,
    volume: Annotated[
        str | None,
        typer.Option("--volume", metavar="CLAIM", help="Kubernetes: a shared PersistentVolumeClaim for the results."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", metavar="DIR", help="Shared folder for the tasks (one subfolder each).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the sbatch script or the Job's manifest; submit nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit one task per seed and sweep combination to the cluster, as one group of records."""
    from repropack.cluster.kubernetes import KubeOptions
    from repropack.cluster.slurm import SlurmOptions, check_runtime, default_runtime
    from repropack.run.local import RunRequest
    from repropack.run.sweep import plan_runs

    if to not in ("slurm", "kubernetes"):
        raise BadInput(f"--to takes slurm or kubernetes, not '{to}'.")
    only = {"slurm": (("--namespace", namespace), ("--volume", volume)),
            "kubernetes": (("--partition", partition), ("--account", account), ("--runtime", runtime))}  # fmt: skip
    other = "kubernetes" if to == "slurm" else "slurm"
    misplaced = [flag for flag, value in only[to] if value is not None]
    if misplaced:
        raise BadInput(f"{', '.join(misplaced)} apply to --to {other} only, not to --to {to}.")
    check_runtime(runtime)
    slurm = SlurmOptions(partition=partition, account=account, time=time_limit, memory=memory, gpus=gpus)
    kube = (
        KubeOptions(namespace=namespace or "default", gpus=gpus, memory=memory, time=time_limit, retries=retries,
                    volume=volume)
        if to == "kubernetes"
        else None
    )  # fmt: skip
    planned = plan_runs(seeds_option(seeds), sweep_option(sweeps), tuple(sets or ()), None)
    requests = [RunRequest(command=command, seed=plan.seed, sets=plan.sets) for plan in planned]
    from repropack.cluster.tasks import submit_group
    from repropack.engine.client import Engine
    from repropack.image.embedded import load_image_manifest
    from repropack.store.store import Store

    loaded = load_image_manifest(Engine.connect(), image)
    name = group or f"{loaded.manifest['experiment']['name']}-{uuid.uuid4().hex[:8]}"
    store = Store.open()
    folder = output if output is not None else store.blobs.root / "clusters" / name
    tasks = f"{len(requests)} task{'s' if len(requests) != 1 else ''}"
    if kube is not None:
        from repropack.cluster.kube_tasks import submit_job

        path, run_ids = submit_job(store, loaded, image, requests, folder, name, kube, dry_run=dry_run, kind="run")
        job = None if dry_run else f"{kube.namespace}/{_job(name)}"
        result = {"group": name, "job": job, "manifest": str(path), "run_ids": run_ids}
        written = path
    else:
        done = submit_group(
            store,
            loaded,
            image,
            [replace(r) for r in requests],
            folder,
            name,
            slurm,
            runtime=runtime or default_runtime(),
            retries=retries,
            dry_run=dry_run,
        )
        job, written = done.job, done.script
        result = {"group": name, "job": job, "script": str(done.script), "run_ids": done.run_ids}
    if as_json:
        print_json(result)
    elif dry_run:
        say(f"wrote {written} ({tasks}); nothing submitted")
    else:
        say(f"submitted job {job}: {tasks} in group {name}")
        say(f"follow them with: repropack status {name}")


def _job(group: str) -> str:
    from repropack.cluster.kubernetes import job_name

    return job_name(group)


@app.command(short_help="Each task of a submitted group: state and exit code.")
def status(group: GroupArg, as_json: JsonOpt = False) -> None:
    """Each task of a submitted group: queued, running, succeeded, failed, killed or lost, with its exit code."""
    from repropack.cluster.tasks import status as group_status
    from repropack.store.store import Store

    _print(group, group_status(Store.open(), group), as_json)


@app.command(short_help="Wait until every task of a group has ended.")
def wait(
    group: GroupArg,
    timeout: Annotated[
        float | None, typer.Option("--timeout", metavar="S", min=1, help="Give up after S seconds.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait until every task of the group ended; then the group's records are complete."""
    from repropack.cluster.tasks import wait as wait_group
    from repropack.store.store import Store

    states = wait_group(Store.open(), group, timeout)
    _print(group, states, as_json)
    if any(s.state != "succeeded" for s in states):
        raise typer.Exit(4)


@app.command(short_help="Run a group's failed, killed and lost tasks again.")
def resubmit(group: GroupArg, as_json: JsonOpt = False) -> None:
    """Submit the group's failed, killed and lost tasks again (new records; the earlier ones are kept)."""
    from repropack.cluster.tasks import resubmit as resubmit_group
    from repropack.store.store import Store

    job, indexes = resubmit_group(Store.open(), group)
    if as_json:
        print_json({"group": group, "job": job, "tasks": indexes})
    elif job is None:
        say(f"nothing to resubmit: no task of group {group} failed")
    else:
        say(f"submitted job {job}: task(s) {', '.join(map(str, indexes))} of group {group} again")


@app.command(short_help="Cancel a group's tasks that have not ended.")
def cancel(group: GroupArg) -> None:
    """Cancel the group's Slurm jobs (delete its Kubernetes Jobs); the tasks not ended are recorded killed."""
    from repropack.cluster.tasks import cancel as cancel_group
    from repropack.store.store import Store

    jobs = cancel_group(Store.open(), group)
    say(f"cancelled job {', '.join(jobs)} of group {group}")


def _print(group: str, states: list[TaskState], as_json: bool) -> None:
    if as_json:
        print_json({"group": group, "tasks": [s.as_dict() for s in states]})
        return
    for s in states:
        code = "" if s.exit_code is None else f" (exit code {s.exit_code})"
        again = f" (attempt {s.attempt})" if s.attempt > 1 else ""
        print(f"task {s.index}  {s.run_id[:10]}  {s.name}  {s.state}{code}{again}")

"""Commands that hand runs to a cluster: ``submit`` (a Slurm job array), ``status``, ``wait``, ``cancel``."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repropack.cli.app import GroupOpt, JsonOpt, SeedsOpt, SetOpt, app, print_json, say, seeds_option, sweep_option
from repropack.errors import BadInput

if TYPE_CHECKING:
    from repropack.cluster.tasks import TaskState

GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="The group the submission made.")]


@app.command()
def submit(
    image: Annotated[
        str, typer.Argument(metavar="IMAGE_OR_REF", help="The image (tag, id or REGISTRY/REPO@sha256:...).")
    ],
    command: Annotated[str | None, typer.Argument(metavar="[COMMAND]", help="The command (default: train).")] = None,
    to: Annotated[str, typer.Option("--to", metavar="slurm", help="The cluster's scheduler.")] = "slurm",
    seeds: SeedsOpt = None,
    sweeps: Annotated[
        list[str] | None, typer.Option("--sweep", metavar="KEY=V1,V2", help="One task per value (every combination).")
    ] = None,
    sets: SetOpt = None,
    group: GroupOpt = None,
    gpus: Annotated[int, typer.Option("--gpus", metavar="N", min=0, help="GPUs per task.")] = 0,
    memory: Annotated[str | None, typer.Option("--memory", metavar="SIZE", help="Memory per task (8G).")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", metavar="LIMIT", help="Time limit per task.")] = None,
    partition: Annotated[str | None, typer.Option("--partition", metavar="P", help="The Slurm partition.")] = None,
    account: Annotated[str | None, typer.Option("--account", metavar="A", help="The Slurm account.")] = None,
    runtime: Annotated[str, typer.Option("--runtime", metavar="docker", help="How a node runs the image.")] = "docker",
    output: Annotated[
        Path | None, typer.Option("--output", metavar="DIR", help="Shared folder for the tasks (one subfolder each).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the sbatch script; submit nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit one task per seed and sweep combination to the cluster, as one group of records."""
    from repropack.cluster.slurm import SlurmOptions
    from repropack.run.local import RunRequest
    from repropack.run.sweep import plan_runs

    if to != "slurm":
        raise BadInput(f"--to takes slurm (Kubernetes is not supported yet), not '{to}'.")
    if runtime != "docker":
        raise BadInput(f"--runtime takes docker (apptainer and pyxis are not supported yet), not '{runtime}'.")
    options = SlurmOptions(partition=partition, account=account, time=time_limit, memory=memory, gpus=gpus)
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
    done = submit_group(store, loaded, image, [replace(r) for r in requests], folder, name, options, dry_run=dry_run)
    result = {"group": done.group, "job": done.job, "script": str(done.script), "run_ids": done.run_ids}
    if as_json:
        print_json(result)
    elif dry_run:
        say(f"wrote {done.script} ({len(requests)} task{'s' if len(requests) != 1 else ''}); nothing submitted")
    else:
        say(f"submitted job {done.job}: {len(requests)} task(s) in group {done.group}")
        say(f"follow them with: repropack status {done.group}")


@app.command()
def status(group: GroupArg, as_json: JsonOpt = False) -> None:
    """Each task of a submitted group: queued, running, succeeded, failed or killed, with its exit code."""
    from repropack.cluster.tasks import status as group_status
    from repropack.store.store import Store

    job, states = group_status(Store.open(), group)
    _print(group, job, states, as_json)


@app.command()
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

    job, states = wait_group(Store.open(), group, timeout)
    _print(group, job, states, as_json)
    if any(s.state != "succeeded" for s in states):
        raise typer.Exit(4)


@app.command()
def cancel(group: GroupArg) -> None:
    """Cancel the group's Slurm job; its tasks that had not ended are recorded as killed."""
    from repropack.cluster.slurm import cancel as scancel
    from repropack.cluster.tasks import status as group_status
    from repropack.store.store import Store

    store = Store.open()
    job, states = group_status(store, group)
    if job is None:
        raise BadInput(f"The group '{group}' was never submitted (a --dry-run).")
    scancel(job)
    for state in states:
        if state.state in ("queued", "running"):
            store.mark(state.run_id, "killed", f"Cancelled (repropack cancel {group}).")
    say(f"cancelled job {job} of group {group}")


def _print(group: str, job: str | None, states: list[TaskState], as_json: bool) -> None:
    if as_json:
        print_json({"group": group, "job": job, "tasks": [s.as_dict() for s in states]})
        return
    for s in states:
        code = "" if s.exit_code is None else f" (exit code {s.exit_code})"
        print(f"task {s.index}  {s.run_id[:10]}  {s.name}  {s.state}{code}")

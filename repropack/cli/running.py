"""Commands that run an image: ``run`` (recorded, also seeds and sweeps), ``rerun`` and ``verify``."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from repropack.cli.app import (
    DataOpt,
    GpusOpt,
    GroupOpt,
    JsonOpt,
    MaxOutputOpt,
    NameOpt,
    SeedsOpt,
    SetOpt,
    app,
    gpus_flag,
    max_output_option,
    print_json,
    sandbox_option,
    say,
    seeds_option,
    sweep_option,
)
from repropack.errors import BadInput, ReproError

if TYPE_CHECKING:
    from repropack.run.local import RunRequest
    from repropack.store.records import RunRecord
    from repropack.verify.on_cluster import OnCluster


@app.command(short_help="Run an image's command (seeds, sweeps) and record it.")
def run(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (tag, id or REGISTRY/REPO@sha256:...).")],
    command: Annotated[
        str | None, typer.Argument(metavar="[COMMAND]", help="The experiment's command (default: train).")
    ] = None,
    data: DataOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Folder for the results.")] = Path(
        "out"
    ),
    gpus: GpusOpt = None,
    sets: SetOpt = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", min=0, max=2**32 - 1, help="Override the seed.")
    ] = None,
    seeds: SeedsOpt = None,
    sweeps: Annotated[
        list[str] | None,
        typer.Option("--sweep", metavar="KEY=V1,V2", help="One run per value (repeatable: every combination)."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", metavar="SECONDS", min=1, help="Stop the command after N seconds.")
    ] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run as verify does: no network, no capabilities, limits.")
    ] = False,
    max_output: MaxOutputOpt = None,
    name: NameOpt = None,
    group: GroupOpt = None,
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="A note kept with the record.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one of the image's commands and record it; results land in OUTPUT (one subfolder per run of a sweep)."""
    from repropack.run.local import RunRequest
    from repropack.run.sweep import plan_runs

    planned = plan_runs(seeds_option(seeds), sweep_option(sweeps), tuple(sets or ()), seed)
    if name is not None and len(planned) > 1:
        raise BadInput("--name names one run, and this is a sweep of several.", hint="Name the group with --group.")
    base = RunRequest(
        command=command,
        data=tuple(data or ()),
        timeout=timeout,
        gpus=gpus_flag(gpus),
        sandbox=sandbox_option(off=not sandbox),
        max_output=max_output_option(max_output),
    )
    requests = [replace(base, seed=plan.seed, sets=plan.sets) for plan in planned]
    for request in requests:
        request.__post_init__()  # every combination's syntax, before anything runs
    records = record_runs(
        image, requests, output, name=name, group=group, description=description, quiet=as_json, sweep=len(planned) > 1
    )
    if as_json:
        print_json(runs_result(records, output))


def record_runs(
    image: str,
    requests: list[RunRequest],
    output: Path,
    *,
    name: str | None,
    group: str | None,
    description: str | None,
    quiet: bool,
    sweep: bool,
    kind: str = "run",
) -> list[RunRecord]:
    """Run each request on the local engine and record it; a failed run of a sweep does not stop the others,
    and the first failure's error is raised at the end."""
    from repropack.engine.client import Engine
    from repropack.image.embedded import load_image_manifest
    from repropack.run.local import check_request
    from repropack.run.recorder import RunLabel, recorded_run
    from repropack.store.store import Store

    engine = Engine.connect()
    loaded = load_image_manifest(engine, image)
    for request in requests:
        check_request(loaded.manifest, request)  # every run's arguments, against the image, before the first
    if sweep and group is None:
        group = f"{loaded.manifest['experiment']['name']}-{uuid.uuid4().hex[:8]}"
    store = Store.open()
    label = RunLabel(
        image=image,
        name=name,
        group=group or "",
        description=description or "",
        kind=kind,
        reference=image if "@sha256:" in image else None,
    )
    records: list[RunRecord] = []
    failures: list[ReproError] = []
    from repropack.run.local import quiet as quiet_lines

    on_line = quiet_lines if quiet else print
    for request in requests:
        record, outcome = recorded_run(store, engine, loaded, request, output, on_line, label, subfolder=sweep)
        records.append(record)
        if outcome is not None and outcome.error is not None:
            failures.append(outcome.error)
        if not quiet:
            say(run_line(record))
    if len(failures) == 1 and len(requests) == 1:
        raise failures[0]
    if failures:
        first = failures[0]
        error = ReproError(f"{len(failures)} of {len(requests)} runs failed; the first: {first.message}")
        error.exit_code = first.exit_code
        raise error
    return records


def run_line(record: RunRecord) -> str:
    metrics = ", ".join(f"{k}={v:.6g}" for k, v in sorted(record["metrics"].items())) or "no metrics"
    where = f"{record['group']}/{record['name']}" if record["group"] else record["name"]
    return f"run {record['id'][:10]} ({where}): {record['status']}, {metrics}"


def runs_result(records: list[RunRecord], output: Path | None) -> dict[str, Any]:
    from repropack.store.records import summary

    result: dict[str, Any] = {
        "group": records[0]["group"] if records else "",
        "run_ids": [record["id"] for record in records],
        "runs": [summary(record) for record in records],
    }
    if len(records) == 1:
        result["id"] = records[0]["id"]
    if output is not None:
        result["output"] = str(output)
    return result


@app.command(short_help="Run a recorded run again (also with new data).")
def rerun(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run id (or unique prefix), or GROUP/NAME.")],
    data: Annotated[
        list[str] | None,
        typer.Option("--data", metavar="NAME=PATH", help="NAME=PATH: run on other data (its digest is recorded)."),
    ] = None,
    sets: SetOpt = None,
    group: GroupOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="DIR", help="Also keep the results here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a recorded run again: the same image, command, seed and overrides (data and values may change)."""
    import tempfile

    from repropack.engine.types import OPEN, STRICT
    from repropack.run.local import RunRequest, parse_data, parse_sets
    from repropack.store.store import Store

    new_data = parse_data(tuple(data or ()))
    new_sets = parse_sets(tuple(sets or ()))
    store = Store.open()
    original = store.resolve(run_ref)
    paths = dict(store.private(original["id"]).get("data", {}))
    paths.update({name: str(path) for name, path in new_data.items()})
    overrides = {key: _as_set_value(value) for key, value in original["overrides"].items()}
    overrides.update(dict(new_sets))
    request = RunRequest(
        command=original["command"],
        data=tuple(f"{name}={path}" for name, path in sorted(paths.items())),
        sets=tuple(f"{key}={value}" for key, value in overrides.items()),
        seed=original["seed"],
        gpus=original["requirements"]["gpus"],
        sandbox=STRICT if original["requirements"]["memory"] else OPEN,
        new_data=tuple(sorted(new_data)),
    )
    image = original["image_id"]
    with tempfile.TemporaryDirectory(prefix="repropack-rerun-") as scratch:
        records = record_runs(
            image if _local(image) else original["reference"] or image,
            [request],
            output or Path(scratch),
            name=f"{original['name']}-rerun",
            group=original["group"] if group is None else group,
            description=f"rerun of {original['id']}",
            quiet=as_json,
            sweep=False,
            kind="rerun",
        )
    if as_json:
        print_json(runs_result(records, output))


def _as_set_value(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _local(image_id: str) -> bool:
    from repropack.engine.client import Engine

    return Engine.connect().image_id(image_id) is not None


@app.command(short_help="Check an image and re-run it: does it reproduce?")
def verify(
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="A local image, REGISTRY/REPO@sha256:..., or a paper manifest file.")
    ],
    as_json: JsonOpt = False,
    command: Annotated[
        str | None, typer.Option("--command", metavar="NAME", help="Command to run (default: evaluate, else train).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", metavar="0,1,2", help="Run once per seed; compare the mean.")
    ] = None,
    data: DataOpt = None,
    gpus: GpusOpt = None,
    network: Annotated[bool, typer.Option("--network", help="Give the container network access.")] = False,
    memory: Annotated[str | None, typer.Option("--memory", metavar="SIZE", help="Memory limit (default 8g).")] = None,
    pids: Annotated[int | None, typer.Option("--pids-limit", metavar="N", min=16, help="Process limit.")] = None,
    no_sandbox: Annotated[bool, typer.Option("--no-sandbox", help="Run without any of the sandbox's limits.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Check the image afresh; ignore remembered integrity results.")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option("--source", metavar="GIT_REPO", help="Also check the code against its commit in this git repo."),
    ] = None,
    max_output: MaxOutputOpt = None,
    group: GroupOpt = None,
    on: Annotated[
        str | None,
        typer.Option("--on", metavar="slurm|kubernetes", help="Run the seeds on this cluster (as one group)."),
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", metavar="P", help="With --on: the partition.")] = None,
    account: Annotated[str | None, typer.Option("--account", metavar="A", help="With --on: the account.")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", metavar="LIMIT", help="With --on: per task.")] = None,
    runtime: Annotated[
        str | None, typer.Option("--runtime", metavar="docker|apptainer|pyxis", help="With --on: how nodes run it.")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", metavar="N", min=0, help="With --on: lost tasks again.")] = 0,
    output: Annotated[
        Path | None, typer.Option("--output", metavar="DIR", help="With --on: the tasks' shared folder.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", metavar="NS", help="With --on kubernetes: the namespace.")
    ] = None,
    volume: Annotated[
        str | None, typer.Option("--volume", metavar="CLAIM", help="With --on kubernetes: a shared volume claim.")
    ] = None,
) -> None:
    """Check the image against its manifest, re-run it, and compare metrics (exit 1 when anything differs)."""
    from repropack.cli.text import render_verify_report
    from repropack.engine.client import Engine
    from repropack.verify.reproduce import VerifyOptions, verify_target

    options = VerifyOptions(
        command=command,
        seeds=seeds_option(seeds),
        data=tuple(data or ()),
        gpus=gpus_flag(gpus),
        sandbox=sandbox_option(off=no_sandbox, network=network, memory=memory, pids=pids),
        cache=not no_cache,
        source=source,
        max_output=max_output_option(max_output),
        group=group or "",
        on=on_cluster(
            on, partition, account, time_limit, memory, gpus_flag(gpus), runtime, retries, output, namespace, volume
        ),
    )
    from repropack.run.local import parse_data
    from repropack.run.local import quiet as quiet_lines
    from repropack.store.store import Store
    from repropack.verify.targets import read_paper_target

    parse_data(options.data)  # arguments first: bad input is 2 even when no engine runs
    read_paper_target(target)
    if source is not None:
        from repropack.verify.source import check_source

        check_source(source)
    engine = Engine.connect()
    report = verify_target(engine, target, options, quiet_lines if as_json else say, Store.open())
    if as_json:
        print_json(report)
    else:
        print(render_verify_report(report))
    if not report["reproduced"]:
        raise typer.Exit(1)


def on_cluster(
    to: str | None,
    partition: str | None,
    account: str | None,
    time_limit: str | None,
    memory: str | None,
    gpus: bool,
    runtime: str | None,
    retries: int,
    output: Path | None,
    namespace: str | None,
    volume: str | None,
) -> OnCluster | None:
    """verify's --on and its cluster options (given without --on, or for the other scheduler: bad input)."""
    from repropack.cluster.kubernetes import KubeOptions
    from repropack.cluster.slurm import SlurmOptions, check_runtime
    from repropack.verify.on_cluster import OnCluster

    flags = {"--partition": partition, "--account": account, "--time": time_limit, "--runtime": runtime,
             "--output": output, "--namespace": namespace, "--volume": volume}  # fmt: skip
    if to is None:
        given = [flag for flag, value in flags.items() if value is not None] + (["--retries"] if retries else [])
        if given:
            raise BadInput(f"{', '.join(given)} only apply with --on slurm or --on kubernetes.")
        return None
    if to not in ("slurm", "kubernetes"):
        raise BadInput(f"--on takes slurm or kubernetes, not '{to}'.")
    other = ("--namespace", "--volume") if to == "slurm" else ("--partition", "--account", "--runtime")
    misplaced = [flag for flag in other if flags[flag] is not None]
    if misplaced:
        raise BadInput(f"{', '.join(misplaced)} do not apply to --on {to}.")
    check_runtime(runtime)
    slurm = SlurmOptions(partition=partition, account=account, time=time_limit, memory=memory, gpus=int(gpus))
    kube = (
        KubeOptions(namespace=namespace or "default", gpus=int(gpus), memory=memory, time=time_limit, retries=retries,
                    volume=volume)
        if to == "kubernetes"
        else None
    )  # fmt: skip
    return OnCluster(to=to, slurm=slurm, runtime=runtime, retries=retries, output=output, kube=kube)

"""Commands that run an image: ``run`` (one command, results in a folder) and ``verify`` (check, re-run, compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repropack.cli.app import (
    DataOpt,
    GpusOpt,
    JsonOpt,
    MaxOutputOpt,
    app,
    gpus_flag,
    max_output_option,
    print_json,
    sandbox_option,
    say,
    seeds_option,
)


@app.command()
def run(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (tag or id).")],
    command: Annotated[
        str | None, typer.Argument(metavar="[COMMAND]", help="The experiment's command (default: train).")
    ] = None,
    data: DataOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Folder for the results.")] = Path(
        "out"
    ),
    gpus: GpusOpt = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="KEY=VALUE: override a config value.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", min=0, max=2**32 - 1, help="Override the seed.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", metavar="SECONDS", min=1, help="Stop the command after N seconds.")
    ] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run as verify does: no network, no capabilities, limits.")
    ] = False,
    max_output: MaxOutputOpt = None,
) -> None:
    """Run one of the image's commands; results land in OUTPUT (metrics.json, run.json)."""
    from repropack.engine.client import Engine
    from repropack.image.embedded import load_image_manifest
    from repropack.run.local import RunRequest, run_image

    request = RunRequest(
        command=command,
        data=tuple(data or ()),
        sets=tuple(sets or ()),
        seed=seed,
        timeout=timeout,
        gpus=gpus_flag(gpus),
        sandbox=sandbox_option(off=not sandbox),
        max_output=max_output_option(max_output),
    )
    engine = Engine.connect()
    outcome = run_image(engine, load_image_manifest(engine, image), request, output, print)
    say(f"'{outcome.command}' finished; results in {output}/ (metrics.json, run.json)")


@app.command()
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
    )
    from repropack.run.local import parse_data
    from repropack.verify.targets import read_paper_target

    parse_data(options.data)  # arguments first: bad input is 2 even when no engine runs
    read_paper_target(target)
    if source is not None:
        from repropack.verify.source import check_source

        check_source(source)
    engine = Engine.connect()
    report = verify_target(engine, target, options, (lambda line: None) if as_json else say)
    if as_json:
        print_json(report)
    else:
        print(render_verify_report(report))
    if not report["reproduced"]:
        raise typer.Exit(1)

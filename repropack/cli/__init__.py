"""The command line: parse options, call one pipeline function, print, map errors to exit codes.

Nothing below this module prints for the user or exits; errors are ReproError subclasses whose
``exit_code`` is the contract in README.md (0 ok, 1 not reproduced, 2 bad input, 3 environment,
4 the experiment's command failed).
"""

from __future__ import annotations

import json
import re
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from repropack import __version__
from repropack.errors import BadInput, ReproError

if TYPE_CHECKING:
    from repropack.engine import Sandbox

app = typer.Typer(
    name="repropack",
    help="Freeze one ML experiment into one Docker image plus one manifest, and check that it reproduces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
base_app = typer.Typer(help="Base images: list the catalog, make a local base.", no_args_is_help=True)
app.add_typer(base_app, name="base")

_state = {"debug": False}

SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment's experiment.yaml.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
DirtyOpt = Annotated[bool, typer.Option("--allow-dirty", help="Ship uncommitted changes; the diff is recorded.")]
DataOpt = Annotated[
    list[str] | None, typer.Option("--data", metavar="NAME=PATH", help="NAME=PATH: mount a dataset (read-only).")
]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-secret", metavar="PATH", help="Let this secret-looking file into the image (repeatable)."),
]
MaxOutputOpt = Annotated[
    str | None,
    typer.Option("--max-output", metavar="SIZE", help="Stop the run past SIZE written to /output (default 1G)."),
]
GpusOpt = Annotated[
    str | None, typer.Option("--gpus", metavar="all", help="'all' gives the container every GPU (like docker run).")
]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _gpus(value: str | None) -> bool:
    if value is None:
        return False
    if value != "all":
        raise BadInput(f"--gpus takes 'all', not '{value}'.")
    return True


def _version(value: bool) -> None:
    if value:
        print(f"repropack {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


@base_app.command("list")
def base_list(as_json: JsonOpt = False) -> None:
    """List the base image catalog."""
    from repropack.bases.catalog import load_catalog

    catalog = load_catalog()
    if as_json:
        _print_json(
            {
                name: {"reference": b.reference, "python": b.python, "cuda": b.cuda, "local": bool(b.recipe)}
                for name, b in catalog.items()
            }
        )
        return
    for name, b in sorted(catalog.items()):
        where = "made locally: repropack base build " + name if b.recipe else b.reference
        print(f"{name:<32} python {b.python:<5} cuda {b.cuda or '-':<5} {where}")


@base_app.command("build")
def base_build(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A catalog name, e.g. debian-bookworm.")],
) -> None:
    """Make a local base image from Debian's packages (no registry needed)."""
    from repropack.bases.build import build_base

    image_id = build_base(name, on_line=_say)
    print(image_id)


@app.command()
def lock(
    spec: SpecArg,
    upgrade: Annotated[bool, typer.Option("--upgrade", help="Resolve afresh instead of keeping current pins.")] = False,
) -> None:
    """Write the hash-pinned lockfile (pip-compile --generate-hashes) beside experiment.yaml."""
    from repropack.freeze.lockfile import lock_experiment

    result = lock_experiment(spec, upgrade=upgrade)
    print(f"{result.path.name}: {result.message}")


@app.command(name="freeze")
def freeze_command(
    spec: SpecArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="Folder for the Dockerfiles and manifest.json.")
    ],
    allow_dirty: DirtyOpt = False,
    allow_secret: SecretOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dry run: write OUTPUT/Dockerfile and OUTPUT/manifest.json; needs no Docker engine."""
    from repropack.cli.progress import HashMeter
    from repropack.image.build import freeze_to

    meter = HashMeter(enabled=not as_json and sys.stderr.isatty(), write=_say)
    result = freeze_to(
        spec, output, allow_dirty=allow_dirty, on_progress=meter.update, allowed_secrets=frozenset(allow_secret or ())
    )
    meter.done()
    if as_json:
        _print_json(
            {
                "output": str(output),
                "files": list(result.files),
                "manifest_digest": result.manifest_digest,
                "hashed": asdict(result.hashed),
            }
        )
        return
    if not result.base_resolved:
        _say("note: no Docker engine reachable; the base image is recorded by reference, not by image id")
    print(f"wrote {', '.join(result.files)} to {output} (manifest sha256:{result.manifest_digest})")


def _ignore_interrupts() -> None:
    """From here on the command finishes what it started: Ctrl-C (SIGINT) no longer stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@app.command()
def build(
    spec: SpecArg,
    as_json: JsonOpt = False,
    allow_dirty: DirtyOpt = False,
    tag: Annotated[str | None, typer.Option("--tag", "-t", metavar="NAME:TAG", help="NAME:TAG for the image.")] = None,
    allow_secret: SecretOpt = None,
) -> None:
    """Freeze the experiment and build its image on the Docker engine."""
    from repropack.cli.progress import HashMeter
    from repropack.image.build import build_image

    quiet = as_json or not sys.stderr.isatty()
    meter = HashMeter(enabled=not quiet, write=_say)

    def on_line(text: str) -> None:
        meter.done()  # the hashing summary, once, before the first build step
        if not quiet:
            _say(text)

    result = build_image(
        spec,
        allow_dirty=allow_dirty,
        tag=tag,
        on_line=on_line,
        on_note=(lambda line: None) if as_json else _say,
        on_progress=meter.update,
        allowed_secrets=frozenset(allow_secret or ()),
        before_tag=_ignore_interrupts,
    )
    meter.done()
    if as_json:
        _print_json(
            {
                "image": result.image_id,
                "tag": result.tag,
                "manifest_digest": f"sha256:{result.manifest_digest}",
                "lockfile": result.lockfile,
                "lock_created": result.lock_created,
                "hashed": asdict(result.hashed),
            }
        )
        return
    print(f"built {result.tag} ({result.image_id[:19]}), manifest sha256:{result.manifest_digest}")


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
    from repropack.engine import Engine
    from repropack.image.embedded import load_image_manifest
    from repropack.run.local import RunRequest, run_image

    request = RunRequest(
        command=command,
        data=tuple(data or ()),
        sets=tuple(sets or ()),
        seed=seed,
        timeout=timeout,
        gpus=_gpus(gpus),
        sandbox=_sandbox(not sandbox, False, None, None),
        max_output=_max_output(max_output),
    )
    engine = Engine.connect()
    outcome = run_image(engine, load_image_manifest(engine, image), request, output, print)
    _say(f"'{outcome.command}' finished; results in {output}/ (metrics.json, run.json)")


def _seeds(value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    parts = [part.strip() for part in value.split(",")]
    if not parts or not all(part.isascii() and part.isdigit() and int(part) < 2**32 for part in parts):
        raise BadInput(f"--seeds takes whole numbers separated by commas (for example 0,1,2), not '{value}'.")
    return tuple(int(part) for part in parts)


def _max_output(value: str | None) -> int:
    from repropack.engine.output_cap import DEFAULT_MAX_OUTPUT, parse_size

    return DEFAULT_MAX_OUTPUT if value is None else parse_size(value)


def _sandbox(off: bool, network: bool, memory: str | None, pids: int | None) -> Sandbox:
    from repropack.engine import OPEN, STRICT

    if memory is not None and not re.fullmatch(r"[1-9][0-9]*[bkmgBKMG]?", memory):
        raise BadInput(f"--memory takes a size like 8g or 512m, not '{memory}'.")
    if off:
        return OPEN
    return replace(STRICT, network=network, memory=memory or STRICT.memory, pids=pids or STRICT.pids)


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
    from repropack.engine import Engine
    from repropack.verify.reproduce import VerifyOptions, verify_target

    options = VerifyOptions(
        command=command,
        seeds=_seeds(seeds),
        data=tuple(data or ()),
        gpus=_gpus(gpus),
        sandbox=_sandbox(no_sandbox, network, memory, pids),
        cache=not no_cache,
        source=source,
        max_output=_max_output(max_output),
    )
    from repropack.run.local import parse_data
    from repropack.verify.targets import read_paper_target

    parse_data(options.data)  # arguments first: bad input is 2 even when no engine runs
    read_paper_target(target)
    if source is not None:
        from repropack.verify.source import check_source

        check_source(source)
    engine = Engine.connect()
    report = verify_target(engine, target, options, (lambda line: None) if as_json else _say)
    if as_json:
        _print_json(report)
    else:
        print(render_verify_report(report))
    if not report["reproduced"]:
        raise typer.Exit(1)


@app.command()
def publish(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (tag or id) to push.")],
    target: Annotated[str, typer.Argument(metavar="REGISTRY/REPO:TAG", help="Where to push it.")],
    as_json: JsonOpt = False,
) -> None:
    """Push an image to a registry; prints the reference pinned by the pushed digest."""
    from repropack.cli.progress import PushMeter
    from repropack.engine import Engine
    from repropack.publish.registry import parse_target
    from repropack.publish.registry import publish as publish_image

    parse_target(target)  # a bad target is bad input (2), also when no engine runs (3)
    meter = PushMeter(enabled=not as_json and sys.stderr.isatty(), write=_say)
    published = publish_image(Engine.connect(), image, target, meter.update)
    meter.done()
    if as_json:
        _print_json(
            {
                "reference": published.reference,
                "tag": published.tag,
                "digest": published.digest,
                "image": published.image_id,
                "manifest_digest": f"sha256:{published.manifest_digest}",
            }
        )
        return
    print(published.reference)


@app.command(name="manifest")
def manifest_command(
    target: Annotated[str, typer.Argument(metavar="IMAGE_OR_REF", help="A local image or a registry reference.")],
    fmt: Annotated[str, typer.Option("--format", metavar="json|markdown|latex", help="Output format.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE.")] = None,
) -> None:
    """The paper manifest: the published reference, what was frozen, and the command that verifies it."""
    from repropack.engine import Engine
    from repropack.files import atomic_write
    from repropack.image.embedded import load_image_manifest
    from repropack.manifest.paper import FORMATS, build_paper, render
    from repropack.verify.targets import resolve_target

    if fmt not in FORMATS:
        raise BadInput(f"--format is one of {', '.join(FORMATS)}, not '{fmt}'.")
    engine = Engine.connect()
    resolved = resolve_target(engine, target)
    loaded = load_image_manifest(engine, resolved.image)
    data = render(build_paper(loaded.manifest, loaded.image_id, resolved.reference), fmt)
    if output is None:
        sys.stdout.buffer.write(data)
        return
    atomic_write(output, data)
    _say(f"wrote {output}" + ("" if resolved.reference else " (the image is not published: run repropack publish)"))


@app.command()
def inspect(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (tag or id).")],
    as_json: JsonOpt = False,
) -> None:
    """Show the manifest embedded in an image."""
    from repropack.cli.text import render_manifest_summary
    from repropack.engine import Engine
    from repropack.image.embedded import load_image_manifest

    loaded = load_image_manifest(Engine.connect(), image)
    if as_json:
        _print_json(loaded.manifest)
    else:
        print(render_manifest_summary(loaded.manifest, loaded.image_id))


def main() -> None:
    """Entry point: run the app and turn every error into its one-paragraph message and exit code."""
    try:
        app()  # standalone mode: usage errors print their message and exit 2, --help exits 0
    except ReproError as error:
        if _state["debug"]:
            raise
        _say(f"error: {error.paragraph()}")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(130)
    except Exception as error:  # a bug of ours: still one paragraph, and the way to see more
        if _state["debug"]:
            raise
        _say(
            f"error: repropack failed unexpectedly ({type(error).__name__}: {error}). "
            "Run again with --debug for the traceback, and please report it."
        )
        sys.exit(3)


def console() -> None:
    """The ``repropack`` console script (and ``python -m repropack``)."""
    main()

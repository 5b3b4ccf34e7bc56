"""Commands that make things: ``base list``, ``base build``, ``lock``, ``freeze`` and ``build``."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from repropack.cli.app import DirtyOpt, JsonOpt, SecretOpt, SpecArg, app, base_app, print_json, say


@base_app.command("list", short_help="List the base image catalog.")
def base_list(as_json: JsonOpt = False) -> None:
    """List the base image catalog."""
    from repropack.bases.catalog import load_catalog

    catalog = load_catalog()
    if as_json:
        print_json(
            {
                name: {"reference": b.reference, "python": b.python, "cuda": b.cuda, "local": bool(b.recipe)}
                for name, b in catalog.items()
            }
        )
        return
    for name, b in sorted(catalog.items()):
        where = "made locally: repropack base build " + name if b.recipe else b.reference
        print(f"{name:<32} python {b.python:<5} cuda {b.cuda or '-':<5} {where}")


@base_app.command("build", short_help="Make a local base image from Debian's packages.")
def base_build(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A catalog name, e.g. debian-bookworm.")],
    force: Annotated[bool, typer.Option("--force", help="Make it again even when it exists.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show debootstrap's output as it runs.")] = False,
    log: Annotated[
        Path | None, typer.Option("--log", metavar="FILE", help="Keep debootstrap's output in FILE.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a local base image from Debian's packages (no registry needed); an existing one is kept."""
    from repropack.bases.build import build_base

    done = build_base(name, on_line=(lambda line: None) if as_json else say, force=force, log=log, verbose=verbose)
    if as_json:
        print_json(
            {
                "image": done.image_id,
                "reference": done.reference,
                "built": done.built,
                "seconds": round(done.seconds, 1),
            }
        )
    elif done.built:
        say(f"made {done.reference} in {done.seconds:.0f} s")
        print(done.image_id)
    else:
        say(f"{done.reference} is there already ({done.image_id[:19]}); --force makes it again")
        print(done.image_id)


@app.command(short_help="Write the hash-pinned lockfile.")
def lock(
    spec: SpecArg,
    upgrade: Annotated[bool, typer.Option("--upgrade", help="Resolve afresh instead of keeping current pins.")] = False,
) -> None:
    """Write the hash-pinned lockfile (pip-compile --generate-hashes) beside experiment.yaml."""
    from repropack.freeze.lockfile import lock_experiment

    result = lock_experiment(spec, upgrade=upgrade)
    print(f"{result.path.name}: {result.message}")


@app.command(name="freeze", short_help="Dry run: the Dockerfiles and the manifest, no Docker.")
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

    meter = HashMeter(enabled=not as_json and sys.stderr.isatty(), write=say)
    result = freeze_to(
        spec, output, allow_dirty=allow_dirty, on_progress=meter.update, allowed_secrets=frozenset(allow_secret or ())
    )
    meter.done()
    if as_json:
        print_json(
            {
                "output": str(output),
                "files": list(result.files),
                "manifest_digest": f"sha256:{result.manifest_digest}",
                "hashed": asdict(result.hashed),
            }
        )
        return
    if not result.base_resolved:
        say("note: no Docker engine reachable; the base image is recorded by reference, not by image id")
    print(f"wrote {', '.join(result.files)} to {output} (manifest sha256:{result.manifest_digest})")


def _test_runner(quiet: bool) -> Callable[[str], None]:
    """Runs the new image's ``test`` command as ``repropack run`` would (sandboxed, a scratch output)."""

    def run_tests(image_id: str) -> None:
        from repropack.engine.client import Engine
        from repropack.image.embedded import load_image_manifest
        from repropack.run.local import RunRequest, run_image
        from repropack.run.local import quiet as quiet_lines
        from repropack.run.output_folder import scratch_folder

        engine = Engine.connect()
        with scratch_folder("repropack-test-") as scratch:
            run_image(engine, load_image_manifest(engine, image_id), RunRequest(command="test"), scratch,
                      quiet_lines if quiet else say)  # fmt: skip

    return run_tests


def _ignore_interrupts() -> None:
    """From here on the command finishes what it started: Ctrl-C (SIGINT) no longer stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@app.command(short_help="Freeze the experiment and build its image.")
def build(
    spec: SpecArg,
    as_json: JsonOpt = False,
    allow_dirty: DirtyOpt = False,
    tag: Annotated[str | None, typer.Option("--tag", "-t", metavar="NAME:TAG", help="NAME:TAG for the image.")] = None,
    allow_secret: SecretOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the Docker engine's own output as it comes.")
    ] = False,
    no_test: Annotated[
        bool, typer.Option("--no-test", help="Do not run commands.test in the new image (the manifest says so).")
    ] = False,
) -> None:
    """Freeze the experiment and build its image on the Docker engine."""
    from repropack.cache import cache_root
    from repropack.cli.build_display import BuildDisplay
    from repropack.cli.progress import HashMeter
    from repropack.errors import ReproError
    from repropack.image.build import build_image

    quiet = as_json or not sys.stderr.isatty()
    meter = HashMeter(enabled=not quiet, write=say)
    log = cache_root() / "logs" / f"build-{re.sub(r'[^A-Za-z0-9_.-]', '_', spec.resolve().parent.name)}.log"
    display = BuildDisplay(enabled=not quiet, verbose=verbose, write=say, log=log)

    def on_line(text: str) -> None:
        meter.done()  # the hashing summary, once, before the first build step
        display.on_line(text)

    def on_phase(name: str) -> None:
        meter.done()
        display.on_phase(name)

    try:
        result = build_image(
            spec,
            allow_dirty=allow_dirty,
            tag=tag,
            on_line=on_line,
            on_note=(lambda line: None) if as_json else say,
            on_progress=meter.update,
            allowed_secrets=frozenset(allow_secret or ()),
            before_tag=_ignore_interrupts,
            on_phase=on_phase,
            on_wheels=display.on_wheels,
            test_image=None if no_test else _test_runner(quiet),
        )
    except ReproError as exc:
        display.close()
        if log.exists() and display.steps:
            exc.hint = f"{exc.hint or ''} The build's whole log: {log}".strip()
        raise
    meter.done()
    display.close()
    if as_json:
        print_json(
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
    display.summary()
    print(f"built {result.tag} ({result.image_id[:19]}), manifest sha256:{result.manifest_digest}")

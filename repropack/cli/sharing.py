"""Commands that share an image: ``publish`` (push, pinned by digest), ``manifest`` (the paper
manifest) and ``inspect``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repropack.cli.app import JsonOpt, app, print_json, say
from repropack.errors import BadInput


@app.command(short_help="Push an image; print its reference by digest.")
def publish(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (tag or id) to push.")],
    target: Annotated[str, typer.Argument(metavar="REGISTRY/REPO:TAG", help="Where to push it.")],
    as_json: JsonOpt = False,
) -> None:
    """Push an image to a registry; prints the reference pinned by the pushed digest."""
    from repropack.cli.progress import PushMeter
    from repropack.engine.client import Engine
    from repropack.publish.registry import parse_target
    from repropack.publish.registry import publish as publish_image

    parse_target(target)  # a bad target is bad input (2), also when no engine runs (3)
    meter = PushMeter(enabled=not as_json and sys.stderr.isatty(), write=say)
    published = publish_image(Engine.connect(), image, target, meter.update)
    meter.done()
    if as_json:
        print_json(
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


@app.command(name="manifest", short_help="The paper manifest (json, markdown or latex).")
def manifest_command(
    target: Annotated[str, typer.Argument(metavar="IMAGE_OR_REF", help="A local image or a registry reference.")],
    fmt: Annotated[str, typer.Option("--format", metavar="json|markdown|latex", help="Output format.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE.")] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", metavar="RUN_JSON", help="Also carry this original run's artifact digests (run.json)."),
    ] = None,
) -> None:
    """The paper manifest: the published reference, what was frozen, and the command that verifies it."""
    from repropack.engine.client import Engine
    from repropack.files import atomic_write
    from repropack.image.embedded import load_image_manifest
    from repropack.manifest.paper import FORMATS, build_paper, render
    from repropack.verify.targets import resolve_target

    if fmt not in FORMATS:
        raise BadInput(f"--format is one of {', '.join(FORMATS)}, not '{fmt}'.")
    original = _run_json(run) if run is not None else None
    engine = Engine.connect()
    resolved = resolve_target(engine, target)
    loaded = load_image_manifest(engine, resolved.image)
    data = render(build_paper(loaded.manifest, loaded.image_id, resolved.reference, original), fmt)
    if output is None:
        sys.stdout.buffer.write(data)
        return
    atomic_write(output, data)
    say(f"wrote {output}" + ("" if resolved.reference else " (the image is not published: run repropack publish)"))


@app.command(short_help="Show the manifest embedded in an image.")
def inspect(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image (tag or id).")],
    as_json: JsonOpt = False,
) -> None:
    """Show the manifest embedded in an image."""
    from repropack.cli.text import render_manifest_summary
    from repropack.engine.client import Engine
    from repropack.image.embedded import load_image_manifest

    loaded = load_image_manifest(Engine.connect(), image)
    if as_json:
        print_json(loaded.manifest)
    else:
        print(render_manifest_summary(loaded.manifest, loaded.image_id))


def _run_json(path: Path) -> dict[str, object]:
    import json

    try:
        found = json.loads(path.read_bytes())
    except OSError as exc:
        raise BadInput(f"--run {path}: cannot be read ({exc.strerror}).") from None
    except ValueError as exc:
        raise BadInput(f"--run {path}: not JSON ({exc}).", hint="Give the run.json a run wrote.") from None
    if not isinstance(found, dict) or found.get("schema") != "repropack.run/v1":
        raise BadInput(
            f"--run {path} is not a run.json (schema repropack.run/v1).", hint="Give the run.json a run wrote."
        )
    return found

"""The Typer application, the options its commands share, and the small parsers and printers they use."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from repropack import __version__
from repropack.errors import BadInput

if TYPE_CHECKING:
    from repropack.engine.types import Sandbox

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

state = {"debug": False}

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


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def gpus_flag(value: str | None) -> bool:
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
    state["debug"] = debug


def seeds_option(value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    parts = [part.strip() for part in value.split(",")]
    if not parts or not all(part.isascii() and part.isdigit() and int(part) < 2**32 for part in parts):
        raise BadInput(f"--seeds takes whole numbers separated by commas (for example 0,1,2), not '{value}'.")
    return tuple(int(part) for part in parts)


def max_output_option(value: str | None) -> int:
    from repropack.engine.output_cap import DEFAULT_MAX_OUTPUT, parse_size

    return DEFAULT_MAX_OUTPUT if value is None else parse_size(value)


def sandbox_option(*, off: bool, network: bool = False, memory: str | None = None, pids: int | None = None) -> Sandbox:
    """The sandbox that ``--no-sandbox``/``--sandbox``, ``--network``, ``--memory`` and ``--pids-limit`` ask for."""
    from repropack.engine.types import OPEN, STRICT

    if memory is not None and not re.fullmatch(r"[1-9][0-9]*[bkmgBKMG]?", memory):
        raise BadInput(f"--memory takes a size like 8g or 512m, not '{memory}'.")
    if off:
        return OPEN
    return replace(STRICT, network=network, memory=memory or STRICT.memory, pids=pids or STRICT.pids)

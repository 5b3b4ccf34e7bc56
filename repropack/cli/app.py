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
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="KEY=VALUE: override a config value.")
]
SeedsOpt = Annotated[
    str | None, typer.Option("--seeds", metavar="0-4", help="One run per seed: a list (0,1,2) or a range (0-4).")
]
NameOpt = Annotated[str | None, typer.Option("--name", metavar="TEXT", help="The run's name in its group.")]
GroupOpt = Annotated[str | None, typer.Option("--group", metavar="NAME", help="File the runs in this group.")]
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
    """``--seeds``: a list (``0,1,2``), a range (``0-4``, both ends included) or both (``0-2,7``)."""
    if value is None:
        return ()
    usage = "--seeds takes whole numbers and ranges separated by commas (for example 0,1,2 or 0-4)"
    seeds: list[int] = []
    for part in (part.strip() for part in value.split(",")):
        low, dash, high = part.partition("-")
        ends = [low, high] if dash else [low]
        if not all(end.isascii() and end.isdigit() and int(end) < 2**32 for end in ends):
            raise BadInput(f"{usage}, not '{value}'.")
        first, last = int(ends[0]), int(ends[-1])
        if last < first:
            raise BadInput(f"--seeds {part}: a range runs upwards (for example {last}-{first}), not '{part}'.")
        if last - first >= 10_000:
            raise BadInput(f"--seeds {part} is {last - first + 1} seeds; at most 10000 at once.")
        seeds += [seed for seed in range(first, last + 1) if seed not in seeds]
    return tuple(seeds)


def sweep_option(values: list[str] | None) -> list[tuple[str, list[str]]]:
    """``--sweep KEY=V1,V2,...`` (repeatable) -> (key, values) pairs, checked for their syntax."""
    found: list[tuple[str, list[str]]] = []
    for item in values or ():
        key, sep, rest = item.partition("=")
        key = key.strip()
        choices = [choice.strip() for choice in rest.split(",")]
        if not sep or not key or not all(choices):
            raise BadInput(f"--sweep takes KEY=V1,V2,... (for example --sweep lr=0.01,0.1), not '{item}'.")
        if any(key == other for other, _ in found):
            raise BadInput(f"--sweep {key} is given twice.", hint="List all its values in one --sweep.")
        found.append((key, choices))
    return found


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

"""README.md stays true: the demo runs exactly the quick-start commands it shows, CI runs exactly the test
command it shows, and every command and flag in its command reference is one the CLI has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from repropack.cli import app

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' torch==2.13.0 && .venv/bin/python -m pytest"
)


def fenced_after(marker: str) -> list[str]:
    """The lines of the first fenced block after ``marker`` in README.md."""
    rest = README[README.index(marker) :]
    block = rest.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_the_demo_runs_exactly_the_commands_the_readme_shows() -> None:
    shown = fenced_after("runs exactly these")
    script = (REPO / "recipes" / "demo.sh").read_text().split("set -x\n", 1)[1]
    ran = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert ran == shown


def test_the_two_newcomer_commands_are_the_ones_that_run() -> None:
    assert fenced_after("**Run the main job end to end**") == ["bash recipes/demo.sh"]
    assert fenced_after("**Set up and pass the tests**") == [TEST_COMMAND]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in ci  # .ci/run calls exactly the README's test command
    assert "sudo " not in README  # the machines it is run on are root without sudo


def _commands() -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found[path] = command
        if hasattr(command, "commands"):  # a group (typer's own click)
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def reference() -> list[tuple[tuple[str, ...], list[str]]]:
    """Each command of README's command reference (a ``repropack ...`` line with its indented
    continuations, and each ``| SUBCOMMAND ...`` alternative) and the flags written for it."""
    commands = _commands()
    entries: list[tuple[tuple[str, ...], str]] = []
    for line in fenced_after("## Commands"):
        text = line.split("  # ", 1)[0]
        if text.startswith("repropack "):
            text = text.removeprefix("repropack ")
            for part in text.split(" | "):
                words = part.split()
                path = tuple(words[:2]) if tuple(words[:2]) in commands else tuple(words[:1])
                if path in commands and path != ():
                    entries.append((path, part))
                else:  # "compare RUN... | --group NAME": the same command's other form
                    entries[-1] = (entries[-1][0], entries[-1][1] + " " + part)
        elif line.startswith(" ") and entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + text)
    return [(path, re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)) for path, text in entries]


def test_the_command_reference_is_parsed() -> None:
    paths = {path for path, _ in reference()}
    assert {("build",), ("verify",), ("submit",), ("base", "build"), ("runs", "export"), ("cancel",)} <= paths


@pytest.mark.parametrize(("path", "flags"), reference(), ids=lambda value: " ".join(value) if value else "-")
def test_every_flag_the_readme_names_is_the_commands_own(path: tuple[str, ...], flags: list[str]) -> None:
    command = _commands()[path]
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    missing = [flag for flag in flags if flag not in known]
    assert not missing, f"README's `repropack {' '.join(path)}` names {missing}, which it does not take"


def test_no_commands_summary_is_cut_in_help_at_80_columns() -> None:
    for path, command in _commands().items():
        if not path:
            continue
        siblings = [p for p in _commands() if len(p) == len(path) and p[:-1] == path[:-1]]
        limit = 78 - 6 - max(len(p[-1]) for p in siblings)  # click: the width, its indent and the names' column
        summary = command.get_short_help_str(limit=limit)
        assert not summary.endswith("..."), f"`repropack {' '.join(path)} --help` summary is cut: {summary}"

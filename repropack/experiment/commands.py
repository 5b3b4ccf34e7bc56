"""Checking a spec's commands (their placeholders) and metrics (the file, stdout patterns, expected values)."""

from __future__ import annotations

import difflib
import re
import string
from pathlib import PurePosixPath
from typing import Any

from repropack.experiment.checker import Checker
from repropack.experiment.model import EXPECTED_KEYS, IDENTIFIER, METRICS_KEYS, PLACEHOLDERS, Dataset, Expected, Metrics


def command_fields(command: str) -> list[str]:
    """The placeholder names in a command (``{{`` and ``}}`` stand for literal braces)."""
    return [fname for _, fname, _, _ in string.Formatter().parse(command) if fname is not None]


SHELL_OPERATORS = ("&&", "||", "|", ";", ">", "<", "`", "$(")


def shell_operator(command: str) -> str | None:
    """The first shell operator outside quotes (a command is not run by a shell), or None."""
    quote: str | None = None
    index = 0
    while index < len(command):
        char = command[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "\\":
            index += 2
            continue
        else:
            for operator in SHELL_OPERATORS:
                if command.startswith(operator, index):
                    return operator
        index += 1
    return None


def check_commands(
    check: Checker,
    raw: dict[str, Any],
    datasets: dict[str, Dataset],
    *,
    has_config: bool,
    declared: frozenset[str] = frozenset(),
) -> dict[str, str | list[str]] | None:
    if "commands" not in raw:
        return None
    mapping = check.mapping(raw["commands"], ("commands",), "train: python train.py")
    if mapping is None:
        return None
    if not mapping:
        check.problem(("commands",), "declare at least one command, for example train")
    result: dict[str, str | list[str]] = {}
    for name, command in mapping.items():
        where = ("commands", name)
        if not IDENTIFIER.match(name):
            check.problem(where, "command names use lower-case letters, digits, '_' and '-', starting with a letter")
            continue
        if isinstance(command, list):  # steps, run in order in the same working folder
            if not command:
                check.problem(where, "a list of steps needs at least one step")
                continue
            steps = [
                _check_step(check, step, (*where, str(n)), datasets, has_config, declared)
                for n, step in enumerate(command)
            ]
            if all(step is not None for step in steps):
                result[name] = [step for step in steps if step is not None]
            continue
        text = _check_step(check, command, where, datasets, has_config, declared)
        if text is not None:
            result[name] = text
    return dict(sorted(result.items()))


def _check_step(
    check: Checker,
    command: Any,
    where: tuple[str, ...],
    datasets: dict[str, Dataset],
    has_config: bool,
    declared: frozenset[str],
) -> str | None:
    text = check.text(command, where)
    if text is None:
        return None
    operator = shell_operator(text)
    if operator is not None:
        check.problem(
            where,
            f"'{operator}' is a shell operator, and a command is one process run without a shell; "
            "write the steps as a list (commands: {NAME: [step one, step two]}) or run a shell explicitly "
            "(bash -c '...')",
        )
        return None
    try:
        fields = command_fields(text)
    except ValueError as exc:
        check.problem(where, f"bad placeholder syntax ({exc}); write literal braces as {{{{ and }}}}")
        return None
    for fname in fields:
        problem = _placeholder_problem(fname, datasets, has_config=has_config, declared=declared)
        if problem:
            check.problem(where, problem)
    return text


def _placeholder_problem(
    fname: str, datasets: dict[str, Dataset], *, has_config: bool, declared: frozenset[str] = frozenset()
) -> str | None:
    if fname == "config" and not has_config:
        return "uses {config} but the spec has no 'config' file"
    if fname in PLACEHOLDERS or fname in declared:
        return None
    if fname.startswith("params."):
        return f"placeholder {{{fname}}} names a parameter the spec does not declare under params"
    if fname.startswith("datasets."):
        dataset = fname.removeprefix("datasets.")
        if dataset in datasets or dataset in declared:
            return None
        near = difflib.get_close_matches(dataset, list(datasets), n=1)
        hint = f"did you mean {{datasets.{near[0]}}}?" if near else f"declared: {', '.join(datasets) or 'none'}"
        return f"placeholder {{{fname}}} names an unknown dataset; {hint}"
    known = ", ".join("{" + p + "}" for p in (*PLACEHOLDERS, "datasets.NAME"))
    near = difflib.get_close_matches(fname, list(PLACEHOLDERS), n=1)
    return f"unknown placeholder {{{fname}}}; " + (f"did you mean {{{near[0]}}}?" if near else f"known: {known}")


def check_params(check: Checker, raw: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """``params: {NAME: DEFAULT}``: the values a flag-driven script is varied by ({params.NAME} in commands,
    --set NAME=VALUE, sweeps); each default a string, number or true/false, its type the one --set must give."""
    if raw.get("params") is None:
        return {}
    body = check.mapping(raw["params"], ("params",), "params: {lr: 0.001, batch_size: 64}")
    found: dict[str, str | int | float | bool] = {}
    for name, value in (body or {}).items():
        where = ("params", str(name))
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            check.problem(where, "parameter names use lower-case letters, digits and '_', starting with a letter")
        elif isinstance(value, (bool, int, float, str)):
            found[name] = value
        else:
            check.problem(where, "a parameter's default is a string, a number or true/false")
    return dict(sorted(found.items()))


def check_artifacts(check: Checker, raw: dict[str, Any]) -> tuple[str, ...]:
    """``artifacts: [PATH, ...]``: files a command makes, relative to its working folder (the copy of the
    code) or to the output folder, globs allowed; each is hashed after the run and recorded in run.json."""
    if raw.get("artifacts") is None:
        return ()
    if not isinstance(raw["artifacts"], list):
        check.problem(("artifacts",), "a list of paths, for example artifacts: [data/train.bin, model.pt]")
        return ()
    found = []
    for number, item in enumerate(raw["artifacts"]):
        where = ("artifacts", str(number))
        text = check.text(item, where)
        if text is None:
            continue
        pure = PurePosixPath(text)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in text:
            check.problem(where, f"'{text}' must be a path inside the working or output folder, like data/train.bin")
            continue
        found.append(text)
    return tuple(sorted(set(found)))


def check_metrics(check: Checker, raw: dict[str, Any]) -> Metrics:
    if "metrics" not in raw or raw["metrics"] is None:
        return Metrics(file=None)
    body = check.mapping(raw["metrics"], ("metrics",), "file: metrics.json")
    if body is None:
        return Metrics(file=None)
    check.unknown_keys(body, METRICS_KEYS, ("metrics",))
    file = _check_metrics_file(check, body)
    stdout = _check_stdout_patterns(check, body)
    expected: dict[str, Expected] = {}
    entries = (
        check.mapping(body.get("expected") or {}, ("metrics", "expected"), "accuracy: {value: 0.9, abs_tol: 0.01}")
        or {}
    )
    for name, entry in entries.items():
        parsed = _check_expected(check, ("metrics", "expected", name), entry)
        if parsed is not None:
            expected[name] = parsed
        if file is None and name not in stdout:
            check.problem(
                ("metrics", "expected", name),
                "no source for this metric: set metrics.file, or a metrics.stdout pattern with this name",
            )
    return Metrics(file=file, stdout=dict(sorted(stdout.items())), expected=dict(sorted(expected.items())))


def _check_metrics_file(check: Checker, body: dict[str, Any]) -> str | None:
    if "file" not in body:
        return None
    text = check.text(body["file"], ("metrics", "file"))
    if text is None:
        return None
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in text:
        check.problem(("metrics", "file"), f"'{text}' must be a path inside the output folder, like metrics.json")
        return None
    return str(pure)


def _check_stdout_patterns(check: Checker, body: dict[str, Any]) -> dict[str, str]:
    patterns = check.mapping(body.get("stdout") or {}, ("metrics", "stdout"), "loss: 'loss: ([0-9.]+)'") or {}
    result: dict[str, str] = {}
    for name, pattern in patterns.items():
        where = ("metrics", "stdout", name)
        text = check.text(pattern, where)
        if text is None:
            continue
        try:
            compiled = re.compile(text)
        except re.error as exc:
            check.problem(where, f"is not a valid regular expression ({exc})")
            continue
        if compiled.groups < 1:
            check.problem(where, "needs one capturing group around the number, like 'loss: ([0-9.]+)'")
            continue
        result[name] = text
    return result


def _check_expected(check: Checker, where: tuple[str, ...], entry: Any) -> Expected | None:
    body = check.mapping(entry, where, "{value: 0.9, abs_tol: 0.01}")
    if body is None:
        return None
    check.unknown_keys(body, EXPECTED_KEYS, where)
    if "value" not in body:
        check.problem(where, "missing required key 'value'")
        return None
    if "abs_tol" not in body and "rel_tol" not in body:
        check.problem(where, "give a tolerance: abs_tol, rel_tol or both (0 for an exact match)")
        return None
    value = check.number(body["value"], (*where, "value"))
    abs_tol = check.number(body.get("abs_tol", 0), (*where, "abs_tol"), minimum=0)
    rel_tol = check.number(body.get("rel_tol", 0), (*where, "rel_tol"), minimum=0)
    if value is None or abs_tol is None or rel_tol is None:
        return None
    return Expected(value=value, abs_tol=abs_tol, rel_tol=rel_tol)

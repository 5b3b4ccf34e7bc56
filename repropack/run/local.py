"""Run an image's command on the local engine: mounts, output folder, GPU, overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.engine.client import Engine
from repropack.engine.output_cap import DEFAULT_MAX_OUTPUT, OutputTooLarge
from repropack.engine.types import OPEN, Mount, OutputCap, Sandbox
from repropack.errors import BadInput, CommandFailed, EnvironmentProblem, NotReproduced, ReproError
from repropack.image.embedded import ImageManifest
from repropack.run.output_folder import read_record
from repropack.runtime.command import config_values, typed_value
from repropack.runtime.records import Manifest

RUNTIME_ERRORS: dict[int, type[ReproError]] = {
    1: NotReproduced,
    2: BadInput,
    3: EnvironmentProblem,
    4: CommandFailed,
}


@dataclass(frozen=True)
class RunRequest:
    """What to run. Made before any engine is contacted, so it checks what it can on its own."""

    command: str | None = None
    data: tuple[str, ...] = ()  # NAME=PATH
    sets: tuple[str, ...] = ()  # KEY=VALUE
    seed: int | None = None
    timeout: float | None = None
    gpus: bool = False
    sandbox: Sandbox = OPEN
    max_output: int = DEFAULT_MAX_OUTPUT  # bytes the run may add to the output folder
    new_data: tuple[str, ...] = ()  # dataset names whose --data is other data on purpose (a rerun with new data)

    def __post_init__(self) -> None:
        parse_data(self.data)
        parse_sets(self.sets)


def parse_data(pairs: tuple[str, ...]) -> dict[str, Path]:
    """``--data NAME=PATH`` options -> name -> absolute host path; the syntax and the path are checked here,
    the name against the image's manifest later (:func:`data_mounts`)."""
    given: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise BadInput(f"--data takes NAME=PATH (for example --data points=./data/points.csv), not '{pair}'.")
        if name in given:
            raise BadInput(f"--data {name} is given twice.", hint="Give each dataset once.")
        host = Path(path).expanduser().resolve()
        if not host.exists():
            raise BadInput(
                f"--data {name}: {path} does not exist.", hint="Check the path (it is relative to the current folder)."
            )
        given[name] = host
    return given


def parse_sets(items: tuple[str, ...]) -> list[tuple[str, str]]:
    """``--set KEY=VALUE`` options -> (key, value) pairs; a key is a dotted path like model.hidden."""
    result = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or any(not part.strip() for part in key.split(".")):
            raise BadInput(
                f"--set takes KEY=VALUE (for example --set epochs=5 or --set model.hidden=32), not '{item}'."
            )
        result.append((key, value))
    return result


@dataclass(frozen=True)
class RunOutcome:
    command: str
    output: Path
    metrics: dict[str, float]
    record: dict[str, Any]  # the run's run.json ({} when it left none)
    exit_code: int = 0
    error: ReproError | None = None  # why the run failed; None when it succeeded


def default_command(manifest: Manifest, preferred: tuple[str, ...]) -> str:
    commands = manifest["commands"]
    for name in preferred:
        if name in commands:
            return name
    return str(sorted(commands)[0])


def data_mounts(manifest: Manifest, pairs: tuple[str, ...]) -> list[Mount]:
    """Read-only mounts for ``--data NAME=PATH``; every not-embedded dataset needs one."""
    datasets = manifest["datasets"]
    given = parse_data(pairs)
    for name in given:
        if name not in datasets:
            raise BadInput(
                f"--data {name}: the experiment has no dataset '{name}' "
                f"(it has: {', '.join(sorted(datasets)) or 'none'}).",
                hint="Use one of those names.",
            )
    mounts = []
    for name, record in sorted(datasets.items()):
        if name not in given:
            if not record["embed"]:
                raise BadInput(f"The dataset '{name}' is not in the image; say where it is with --data {name}=PATH.")
            continue
        host = given[name]
        if record["kind"] == "file":
            if host.is_dir():
                host = host / Path(record["path"]).name
                if not host.is_file():  # Docker would mount an empty folder made in its place
                    raise BadInput(
                        f"--data {name}: {given[name]} holds no {host.name}, the file the dataset is.",
                        hint=f"Name the file itself: --data {name}=PATH/{host.name}.",
                    )
            mounts.append(Mount(str(host), record["path"]))
        else:
            if not host.is_dir():
                raise BadInput(
                    f"--data {name}: {host} is a file, but the dataset is a folder.",
                    hint=f"Name the folder that holds its files: --data {name}=FOLDER.",
                )
            mounts.append(Mount(str(host), record["mount"]))
    return mounts


def check_request(manifest: Manifest, request: RunRequest) -> tuple[str, list[Mount]]:
    """The command to run and the data mounts, checked against the image's manifest; nothing is touched."""
    command = request.command or default_command(manifest, ("train",))
    if command not in manifest["commands"]:
        raise BadInput(
            f"The image has no command '{command}' (it has: {', '.join(sorted(manifest['commands']))}).",
            hint="Name one of those.",
        )
    check_sets(manifest, request.sets)
    return command, data_mounts(manifest, request.data)


def check_sets(manifest: Manifest, items: tuple[str, ...]) -> None:
    """Each ``--set`` key names a value of the image's JSON config (the runtime checks again, inside)."""
    pairs = parse_sets(items)
    defaults = manifest.get("params") or {}
    for key, raw in pairs:
        if key in defaults:
            try:
                typed_value(key, raw, defaults[key], "the spec's params")
            except ValueError as exc:
                raise BadInput(str(exc), hint="Give a value of the parameter's type.") from None
    pairs = [(key, raw) for key, raw in pairs if key not in defaults]
    if not pairs:
        return
    config = manifest.get("config")
    if config_values(config) is None:
        raise BadInput(
            f"--set {pairs[0][0]}: the experiment has no parameter of that name"
            + (f" (it has: {', '.join(sorted(defaults))})" if defaults else "")
            + ", and no JSON or YAML config to change.",
            hint="Drop --set, or give the experiment a config (JSON, or YAML holding a mapping).",
        )
    data = config_values(config)
    assert config is not None
    for key, raw in pairs:
        node: Any = data
        *sections, last = key.split(".")
        for part in sections:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                raise BadInput(
                    f"--set {key}: '{part}' is not a section of {config['file']}.",
                    hint="Name a key that is in the config (see repropack inspect IMAGE).",
                )
            node = node[part]
        if not isinstance(node, dict) or last not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            raise BadInput(
                f"--set {key}: {config['file']} has no key '{last}' (it has: {known}).",
                hint="--set changes existing values; it does not add keys.",
            )
        try:
            typed_value(key, raw, node[last], config["file"])
        except ValueError as exc:
            raise BadInput(str(exc), hint='Give a value of that type (JSON: 5, 0.1, true, "text").') from None


def run_image(
    engine: Engine,
    image: ImageManifest,
    request: RunRequest,
    output: Path,
    on_line: Callable[[str], None],
) -> RunOutcome:
    """Run the command; raises the run's error when it failed (see :func:`execute_run`)."""
    outcome = execute_run(engine, image, request, output, on_line)
    if outcome.error is not None:
        raise outcome.error
    return outcome


def execute_run(
    engine: Engine,
    image: ImageManifest,
    request: RunRequest,
    output: Path,
    on_line: Callable[[str], None],
    shown: bool | None = None,
) -> RunOutcome:
    """Run the command and report how it went. Bad arguments raise before anything runs; a run that
    started and failed returns its outcome with ``error`` set, so it can be recorded. ``shown``: whether
    ``on_line`` shows the output to the user (default: unless it is :func:`quiet`)."""
    manifest = image.manifest
    command, mounts = check_request(manifest, request)  # every argument is checked before anything is written
    if output.exists() and not output.is_dir():
        raise BadInput(f"--output {output} is a file, not a folder.", hint="Name a folder (it is created if missing).")
    output.mkdir(parents=True, exist_ok=True)
    folder = output.resolve()
    mounts.append(Mount(str(folder), manifest["layout"]["output"], read_only=False))
    args = [command]
    for item in request.sets:
        args += ["--set", item]
    if request.seed is not None:
        args += ["--seed", str(request.seed)]
    if request.timeout is not None:
        args += ["--timeout", str(request.timeout)]
    for name in request.new_data:
        args += ["--new-data", name]
    result = engine.run(
        image.image_id,
        args,
        mounts=mounts,
        environment={},
        user=f"{os.getuid()}:{os.getgid()}",
        gpus=request.gpus,
        on_line=on_line,
        sandbox=request.sandbox,
        output_cap=OutputCap(folder, request.max_output),
    )
    if result.output_exceeded:
        return RunOutcome(command, output, {}, {}, result.exit_code, OutputTooLarge(request.max_output))
    try:
        record = _read_json(folder, "run.json")
    except ReproError as exc:
        return RunOutcome(command, output, {}, {}, result.exit_code, exc)
    if result.exit_code != 0:
        shown = on_line is not quiet if shown is None else shown
        failure = _failure(command, image, result.exit_code, result.output_tail, record, result.oom_killed, shown)
        return RunOutcome(command, output, {}, record, result.exit_code, failure)
    try:
        metrics = _read_json(folder, "metrics.json")
    except ReproError as exc:
        return RunOutcome(command, output, {}, record, result.exit_code, exc)
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return RunOutcome(command, output, numbers, record, 0, None)


def quiet(line: str) -> None:
    """An ``on_line`` that shows nothing (``--json``): a failed command's error then carries its last lines."""


def _failure(
    command: str,
    image: ImageManifest,
    code: int,
    tail: list[str],
    record: dict[str, Any],
    oom_killed: bool,
    shown: bool,
) -> ReproError:
    """One sentence, one exit code: the experiment's own failure names its status and, unless its output
    was just shown, its last lines; the runtime's refusals (exit 1-3) are its own last line."""
    if oom_killed:
        return CommandFailed(f"The command '{command}' was killed for using too much memory.")
    missing = record.get("missing_metrics")
    if code == 4 and isinstance(missing, list) and missing:
        names = ", ".join(map(str, missing))
        return CommandFailed(
            f"The command '{command}' ran but did not produce the metric {names} that the experiment expects.",
            hint="Write it to the metrics file (or print it as the spec's metrics.stdout pattern says).",
        )
    if code == 4 and isinstance(record.get("status"), str):
        said = [line for line in record.get("output_tail", []) if isinstance(line, str) and line.strip()][-3:]
        where = "its output is above" if shown else f"its last output: {' | '.join(said) or '(none)'}"
        step, steps = record.get("failed_step"), record.get("steps") or []
        at = ""
        if isinstance(step, int) and 0 < step <= len(steps) and isinstance(steps[step - 1], dict):
            at = f" at step {step} of {len(steps)} ({' '.join(map(str, steps[step - 1].get('argv', [])))})"
        return CommandFailed(f"The command '{command}' {record['status'].replace('_', ' ')}{at}; {where}.")
    last = next((line for line in reversed(tail) if line.strip()), "")
    error = RUNTIME_ERRORS.get(code, CommandFailed)
    return error(f"The run of '{command}' in {image.image_id[:19]} ended with exit code {code}: {last}")


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    """A JSON object the run left in /output: {} when missing or not an object; refused (exit 4) when it
    is not a regular file of sane size (:func:`repropack.run.output_folder.read_record`)."""
    data = read_record(folder, name)
    if data is None:
        return {}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return {}
    return value if isinstance(value, dict) else {}

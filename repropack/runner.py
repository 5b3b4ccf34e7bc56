"""Run an image's command on the local engine: mounts, output folder, GPU, overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.engine import OPEN, Engine, Mount, Sandbox
from repropack.errors import BadInput, CommandFailed, EnvironmentProblem, NotReproduced, ReproError
from repropack.image import ImageManifest

RUNTIME_ERRORS: dict[int, type[ReproError]] = {
    1: NotReproduced, 2: BadInput, 3: EnvironmentProblem, 4: CommandFailed,
}


@dataclass(frozen=True)
class RunRequest:
    command: str | None = None
    data: tuple[str, ...] = ()  # NAME=PATH
    sets: tuple[str, ...] = ()  # KEY=VALUE
    seed: int | None = None
    timeout: float | None = None
    gpus: bool = False
    sandbox: Sandbox = OPEN


@dataclass(frozen=True)
class RunOutcome:
    command: str
    output: Path
    metrics: dict[str, float]
    record: dict[str, Any]


def default_command(manifest: dict[str, Any], preferred: tuple[str, ...]) -> str:
    commands = manifest["commands"]
    for name in preferred:
        if name in commands:
            return name
    return str(sorted(commands)[0])


def data_mounts(manifest: dict[str, Any], pairs: tuple[str, ...]) -> list[Mount]:
    """Read-only mounts for ``--data NAME=PATH``; every not-embedded dataset needs one."""
    datasets = manifest["datasets"]
    given: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise BadInput(f"--data takes NAME=PATH (for example --data points=./data), not '{pair}'.")
        if name not in datasets:
            raise BadInput(f"--data {name}: the experiment has no dataset '{name}' "
                           f"(it has: {', '.join(sorted(datasets)) or 'none'}).")
        host = Path(path).expanduser().resolve()
        if not host.exists():
            raise BadInput(f"--data {name}: {path} does not exist.")
        given[name] = host
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
            mounts.append(Mount(str(host), record["path"]))
        else:
            mounts.append(Mount(str(host), record["mount"]))
    return mounts


def run_image(
    engine: Engine,
    image: ImageManifest,
    request: RunRequest,
    output: Path,
    on_line: Callable[[str], None],
) -> RunOutcome:
    manifest = image.manifest
    command = request.command or default_command(manifest, ("train",))
    if command not in manifest["commands"]:
        raise BadInput(f"The image has no command '{command}' (it has: {', '.join(sorted(manifest['commands']))}).")
    mounts = data_mounts(manifest, request.data)
    output.mkdir(parents=True, exist_ok=True)
    mounts.append(Mount(str(output.resolve()), manifest["layout"]["output"], read_only=False))
    args = [command]
    for item in request.sets:
        if "=" not in item or not item.split("=", 1)[0]:
            raise BadInput(f"--set takes KEY=VALUE (for example --set epochs=5), not '{item}'.")
        args += ["--set", item]
    if request.seed is not None:
        args += ["--seed", str(request.seed)]
    if request.timeout is not None:
        args += ["--timeout", str(request.timeout)]
    result = engine.run(
        image.image_id, args, mounts=mounts, environment={}, user=f"{os.getuid()}:{os.getgid()}",
        gpus=request.gpus, on_line=on_line, sandbox=request.sandbox,
    )
    record = _read_json(output / "run.json")
    if result.exit_code != 0:
        error = RUNTIME_ERRORS.get(result.exit_code, CommandFailed)
        last = next((line for line in reversed(result.output_tail) if line.strip()), "")
        reason = "it was killed for using too much memory" if result.oom_killed else last
        raise error(f"The run of '{command}' in {image.image_id[:19]} ended with exit code {result.exit_code}: "
                    f"{reason}")
    metrics = _read_json(output / "metrics.json")
    return RunOutcome(command, output, {k: float(v) for k, v in metrics.items()}, record)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

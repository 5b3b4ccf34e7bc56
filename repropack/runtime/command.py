"""The runtime's command: the config overrides it sees, its argv, its environment, its user, and its run.

Standard library only and Python 3.8-compatible, a sibling of the entrypoint in ``/repro/runtime``. The
command's environment is built here, not inherited (nothing that could make it load other code gets
through), and the command runs in its own session, as the owner of the output folder when the runtime is
root, with its output echoed and the metric patterns matched line by line.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

if __package__:  # imported as a module of repropack.runtime (on the host)
    from repropack.runtime import layout
    from repropack.runtime.exits import Stop
    from repropack.runtime.outputs import write_json
else:  # a sibling file of /repro/runtime/entrypoint.py, which puts this folder on sys.path
    import layout  # type: ignore[no-redef, import-not-found]
    from exits import Stop  # type: ignore[no-redef, import-not-found]
    from outputs import write_json  # type: ignore[no-redef, import-not-found]
if TYPE_CHECKING:
    from repropack.runtime.records import Manifest

HOOKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hooks")  # /repro/runtime/hooks
CUBLAS_WORKSPACE = ":4096:8"
TAIL_LINES = 20
# Inherited variables the command never sees: each can make a process load or run other code (the
# dynamic loader's, Python's, the shells' start-up files, glibc's converters and tunables) or is ours to set.
DROPPED_PREFIXES = ("PYTHON", "LD_", "REPRO_")
DROPPED = ("PATH", "BASH_ENV", "ENV", "GCONV_PATH", "GLIBC_TUNABLES", "PERL5OPT", "PERL5LIB", "NODE_OPTIONS")


KINDS = ((bool, "true or false"), (int, "a whole number"), (float, "a number"), (str, "a string"),
         (list, "a JSON list"), (dict, "a JSON object"))  # fmt: skip


def kind_of(value: Any) -> str:
    return next((name for kind, name in KINDS if isinstance(value, kind)), "null")


def typed_value(key: str, raw: str, old: Any, file: str) -> Any:
    """The ``--set KEY=RAW`` value as the config will hold it: JSON when it parses (for a string, a JSON
    string or the text as written), of the type of the value it replaces; ValueError (a message
    naming the key, the value given and the type expected) when it is not."""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(old, str):
        return value if isinstance(value, str) else raw  # "gelu" or gelu; 123 stays the text "123"
    if old is None or value is None:
        return value
    expected = kind_of(old)
    fits = {
        "true or false": isinstance(value, bool),
        "a whole number": isinstance(value, int) and not isinstance(value, bool),
        "a number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "a JSON list": isinstance(value, list),
        "a JSON object": isinstance(value, dict),
    }[expected]
    if not fits:
        given = "text" if value == raw else kind_of(value)
        raise ValueError(f"--set {key}={raw}: {key} in {file} is {expected} ({json.dumps(old)}), not {given}.")
    return value


def config_values(config: Any) -> Any:
    """The config's values --set may change: a JSON config's, or a YAML config's mapping (frozen as JSON
    values, since the runtime has no YAML parser); None when there are none. The changed config is written
    as JSON, which YAML reads too."""
    if not config:
        return None
    if config["file"].endswith(".json"):
        return json.loads(config["content"])
    values = config.get("values")
    return json.loads(json.dumps(values)) if isinstance(values, dict) else None


def split_sets(manifest: Manifest, sets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``--set`` items that name a parameter (its value typed like its default), and the rest (config keys)."""
    defaults = manifest.get("params") or {}
    params: dict[str, Any] = dict(defaults)
    rest = []
    for item in sets:
        key, raw = item.split("=", 1)
        if key in defaults:
            try:
                params[key] = typed_value(key, raw, defaults[key], "the spec's params")
            except ValueError as exc:
                raise Stop(2, str(exc)) from None
        else:
            rest.append(item)
    return params, rest


def apply_overrides(manifest: Manifest, sets: list[str], output: str) -> tuple[str | None, dict[str, Any]]:
    """The config path the command sees, and the config overrides applied (written to OUTPUT/config.json);
    ``sets`` naming parameters are not for the config (see :func:`split_sets`)."""
    config = manifest.get("config")
    sets = split_sets(manifest, sets)[1]
    if not sets:
        return (config["path"] if config else None), {}
    data = config_values(config)
    if data is None or config is None:
        raise Stop(2, "--set changes values in the experiment's JSON or YAML config, and this experiment has none.")
    applied: dict[str, Any] = {}
    for item in sets:
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):  # the config may be a list
                raise Stop(2, f"--set {key}: '{part}' is not a section of {config['file']}.")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            raise Stop(2, f"--set {key}: {config['file']} has no key '{parts[-1]}' (it has: {known}).")
        try:
            value = typed_value(key, raw, node[parts[-1]], config["file"])
        except ValueError as exc:
            raise Stop(2, str(exc)) from None
        node[parts[-1]] = value
        applied[key] = value
    path = os.path.join(output, config["file"])
    write_json(path, data)
    return path, applied


class _Lookup(dict):  # type: ignore[type-arg]
    """Lets '{datasets.NAME}' resolve through str.format with dataset names that contain '-'."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def command_steps(
    manifest: Manifest,
    name: str,
    config: str | None,
    seed: int,
    output: str,
    params: dict[str, Any] | None = None,
) -> list[list[str]]:
    """The command's steps, each one process's argv: a string command is one step, a list is its steps.
    ``params``: the parameters' values (default: the spec's defaults), for ``{params.NAME}``."""
    datasets = _Lookup({n: r["path"] for n, r in manifest["datasets"].items()})
    given_params = (manifest.get("params") or {}) if params is None else params
    shown = _Lookup({n: json.dumps(v) if isinstance(v, bool) else str(v) for n, v in given_params.items()})
    values = {"config": config or "", "output": output, "seed": str(seed), "datasets": datasets, "params": shown}
    given = manifest["commands"][name]
    steps = given if isinstance(given, list) else [given]
    return [[token.format(**values) for token in shlex.split(step)] for step in steps]


def command_argv(manifest: Manifest, name: str, config: str | None, seed: int, output: str) -> list[str]:
    """The argv of a one-step command (the first step of a list)."""
    return command_steps(manifest, name, config, seed, output)[0]


def working_copy(code: str, user: tuple[int, int] | None) -> str:
    """A scratch copy of the image's code that the command may write to, the same for every user (the
    user the command runs as owns it); /repro/code itself stays read-only and as the manifest says."""
    import shutil
    import tempfile

    work = os.path.join(tempfile.mkdtemp(prefix="repro-work-"), "code")
    shutil.copytree(code, work, symlinks=True)
    if user is not None:
        for folder, dirs, files in os.walk(os.path.dirname(work)):
            for name in [folder, *(os.path.join(folder, entry) for entry in dirs + files)]:
                os.lchown(name, *user)
    for folder, dirs, files in os.walk(work):
        for entry in [folder, *(os.path.join(folder, d) for d in dirs)]:
            os.chmod(entry, 0o755)
        for entry in files:
            path = os.path.join(folder, entry)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o600)
    return work


def run_steps(
    steps: list[list[str]],
    env: dict[str, str],
    cwd: str,
    timeout: float | None,
    patterns: dict[str, str],
    user: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run the steps in order in ``cwd``, stopping at the first that fails; ``timeout`` is for all of them.
    The result is :func:`run_command`'s for the steps together, with each step's own under "steps" and the
    failed step's number (1-based) under "failed_step"."""
    import time

    deadline = None if not timeout else time.monotonic() + timeout
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    found: dict[str, str] = {}
    done: list[dict[str, Any]] = []
    result: dict[str, Any] = {"exit_code": 0, "status": "succeeded"}
    for number, argv in enumerate(steps, start=1):
        if len(steps) > 1:
            print(f"repropack: step {number} of {len(steps)}: {shlex.join(argv)}", flush=True)
        left = None if deadline is None else max(0.001, deadline - time.monotonic())
        clock = time.monotonic()
        result = run_command(argv, env, cwd, left, patterns, user)
        tail.extend(result["tail"])
        found.update(result["stdout_metrics"])
        done.append(
            {"argv": argv, "exit_code": result["exit_code"], "status": result["status"],
             "duration_s": round(time.monotonic() - clock, 3)}
        )  # fmt: skip
        if result["exit_code"] != 0:
            failed = number if len(steps) > 1 else None
            return {**result, "tail": list(tail), "stdout_metrics": found, "steps": done, "failed_step": failed}
    return {**result, "tail": list(tail), "stdout_metrics": found, "steps": done, "failed_step": None}


def command_environment(
    manifest: Manifest, options: dict[str, Any], config: str | None, device: str, state: str
) -> dict[str, str]:
    """The command's environment, built here: what it inherits loses every variable that could make it
    load other code (``DROPPED_PREFIXES``, ``DROPPED``), then gets repropack's own settings."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(DROPPED_PREFIXES) and key not in DROPPED
    }
    seed = str(options["seed"])
    settings = {
        "PATH": layout.COMMAND_PATH,
        "PYTHONUNBUFFERED": "1",
        "PYTHONHASHSEED": seed,
        # byte-code goes to a folder of this run's: none is read from, or written to, the image
        "PYTHONPYCACHEPREFIX": os.path.join(state, "pycache"),
        "PYTHONPATH": HOOKS_DIR,
        "REPRO_SEED": seed,
        "REPRO_DETERMINISM": options["determinism"],
        "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE,
        "REPRO_DEVICE": device,
        "REPRO_OUTPUT": options["output"],
        "REPRO_STATE": state,
    }
    if config:
        settings["REPRO_CONFIG"] = config
    for name, record in manifest["datasets"].items():
        settings["REPRO_DATA_" + re.sub(r"[^A-Z0-9]", "_", name.upper())] = record["path"]
    if device == "cpu" and manifest["experiment"]["gpu"] == "none":
        settings["CUDA_VISIBLE_DEVICES"] = ""
    env.update(settings)
    return env


def command_user(output: str) -> tuple[int, int] | None:
    """Who the command runs as when the runtime is root: the owner of the output folder.

    `docker run -v "$PWD/out:/output" IMAGE train` starts the runtime as root; the folder's owner is the
    user who asked for the run, so the experiment runs as that user (not as root), its results come
    out owned by them, and the image's code and data (root's, read-only to others) stay untouched.
    When the folder belongs to root, the invoking user is root and nothing changes.
    """
    if os.geteuid() != 0:
        return None
    stat = os.stat(output)
    return (stat.st_uid, stat.st_gid) if stat.st_uid != 0 else None


def oom_kills() -> int | None:
    """The container's count of out-of-memory kills (cgroup v2 memory.events, or v1 memory.oom_control)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _demote(user: tuple[int, int] | None) -> Any:
    if user is None:
        return None

    def demote() -> None:  # runs in the child between fork and exec
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])

    return demote


def run_command(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    timeout: float | None,
    patterns: dict[str, str],
    user: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run the command, echo its output, keep the last lines and the last match of each metric pattern."""
    compiled = {name: re.compile(p) for name, p in patterns.items()}
    found: dict[str, str] = {}
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    kills_before = oom_kills()
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_demote(user),
        )
    except OSError as exc:
        return {
            "exit_code": 127,
            "status": "failed",
            "tail": [f"cannot start {argv[0]}: {exc.strerror}"],
            "stdout_metrics": {},
        }
    timed_out = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        os.killpg(process.pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    timer = None
    if timeout:

        def expire() -> None:
            timed_out.set()
            os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, expire)
        timer.start()
    assert process.stdout is not None
    for raw in iter(process.stdout.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        tail.append(line)
        for name, pattern in compiled.items():
            match = pattern.search(line)
            if match:
                found[name] = match.group(1)
    code = process.wait()
    if timer:
        timer.cancel()
    status = "succeeded" if code == 0 else "failed"
    kills_after = oom_kills()
    if timed_out.is_set():
        status = "timed_out"
    elif code < 0 and kills_before is not None and kills_after is not None and kills_after > kills_before:
        status = "killed for using too much memory"
    elif code < 0:
        status = f"killed by signal {-code}"
    return {"exit_code": code, "status": status, "tail": list(tail), "stdout_metrics": found}

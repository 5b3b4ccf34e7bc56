"""repropack's runtime: the image's entrypoint. Standard library only, so it can never conflict with the
experiment's packages, and Python 3.8-compatible, since a base image brings its own Python.

    docker run --rm -v "$PWD/out:/output" IMAGE train [--seed N] [--set KEY=VALUE]... [--timeout S]

Before the command starts it checks every dataset against the manifest (mounted ones too), decides
CPU or GPU, and sets seeds and determinism for the command's processes. After it, it collects the
metrics and writes /output/metrics.json and /output/run.json. Its exit codes follow repropack's
contract: 0 ok, 1 the image's own files differ from its manifest, 2 bad input (arguments, mounted
data), 3 environment (GPU required but absent, output folder not writable), 4 the command failed.
"""

from __future__ import annotations

import collections
import datetime
import errno
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
if __package__:  # imported as repropack.runtime.entrypoint (the host's tests)
    from repropack.runtime import layout
else:  # run as /repro/runtime/entrypoint.py under python -I, which leaves its own folder off sys.path
    sys.path.insert(0, RUNTIME_DIR)
    import layout  # type: ignore[no-redef, import-not-found]

HOOKS_DIR = os.path.join(RUNTIME_DIR, "hooks")
CUBLAS_WORKSPACE = ":4096:8"
TAIL_LINES = 20
METRICS_CAP = 16 << 20
DETERMINISM_MODES = ("strict", "warn", "off")
SETTINGS = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "REPRO_DETERMINISM", "REPRO_DEVICE")
# Inherited variables the command never sees: each can make a process load or run other code (the
# dynamic loader's, Python's, the shells' start-up files, glibc's converters and tunables) or is ours to set.
DROPPED_PREFIXES = ("PYTHON", "LD_", "REPRO_")
DROPPED = ("PATH", "BASH_ENV", "ENV", "GCONV_PATH", "GLIBC_TUNABLES", "PERL5OPT", "PERL5LIB", "NODE_OPTIONS")


class Stop(Exception):
    """Ends the run with an exit code and a one-paragraph message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- arguments ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str], manifest: dict[str, Any]) -> dict[str, Any]:
    commands = sorted(manifest["commands"])
    usage = "usage: IMAGE COMMAND [--seed N] [--set KEY=VALUE]... [--timeout SECONDS] [--determinism MODE]"
    if not argv or argv[0] in ("-h", "--help", "help"):
        raise Stop(0 if argv else 2, f"{usage}\ncommands: {', '.join(commands)}")
    options: dict[str, Any] = {
        "command": argv[0],
        "seed": manifest["experiment"]["seed"],
        "sets": [],
        "timeout": None,
        "determinism": "strict",
        "output": manifest["layout"]["output"],
    }
    if options["command"] not in manifest["commands"]:
        raise Stop(2, f"Unknown command '{argv[0]}'. This image has: {', '.join(commands)}.")
    rest = argv[1:]
    while rest:
        flag = rest.pop(0)
        if flag not in ("--seed", "--set", "--timeout", "--determinism", "--output") or not rest:
            raise Stop(2, f"Unexpected argument '{flag}'. {usage}")
        value = rest.pop(0)
        if flag == "--seed":
            if not (value.isascii() and value.isdigit()) or int(value) >= 2**32:  # '²'.isdigit() is true
                raise Stop(2, f"--seed takes a whole number between 0 and 4294967295, not '{value}'.")
            options["seed"] = int(value)
        elif flag == "--set":
            if "=" not in value or not value.split("=", 1)[0]:
                raise Stop(2, f"--set takes KEY=VALUE (for example --set lr=0.01), not '{value}'.")
            options["sets"].append(value)
        elif flag == "--timeout":
            try:
                options["timeout"] = float(value)
            except ValueError:
                raise Stop(2, f"--timeout takes seconds, not '{value}'.") from None
        elif flag == "--determinism":
            if value not in DETERMINISM_MODES:
                raise Stop(2, f"--determinism is one of {', '.join(DETERMINISM_MODES)}, not '{value}'.")
            options["determinism"] = value
        else:
            options["output"] = value
    return options


# -- datasets ----------------------------------------------------------------------------------------------
def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_files(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in files:
            full = os.path.join(folder, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def read_index(name: str, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The dataset's index (relative path -> sha256 and size), checked against the manifest's digest."""
    try:
        with open(record["index"], "rb") as handle:
            data = handle.read()
    except OSError:
        raise Stop(
            1,
            f"The image's index of dataset '{name}' ({record['index']}) is missing: the image was "
            "modified; do not trust its results.",
        ) from None
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise Stop(
            1,
            f"The image's index of dataset '{name}' ({record['index']}) does not match its manifest: "
            "the image was modified; do not trust its results.",
        )
    files: dict[str, dict[str, Any]] = {}
    for line in layout.index_lines(data):
        digest, size, path = layout.index_entry(line)
        files[path] = {"sha256": digest, "size": size}
    return files


def check_dataset(name: str, record: dict[str, Any]) -> str | None:
    """None when the dataset's files are exactly the manifest's; else what differs."""
    mount = record["mount"]
    expected = read_index(name, record)
    if not os.path.isdir(mount):
        return f"'{name}' is not there ({mount} is missing)"
    present = set(list_files(mount))
    if record["kind"] == "file":  # a mounted single file may sit beside unrelated files
        present &= set(expected)
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    changed = sorted(
        rel for rel in set(expected) & present if sha256_file(os.path.join(mount, rel)) != expected[rel]["sha256"]
    )
    if not (missing or extra or changed):
        return None
    parts = []
    for label, names in (("changed", changed), ("missing", missing), ("extra", extra)):
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            parts.append(f"{label}: {shown}")
    return f"'{name}' differs from the manifest ({'; '.join(parts)})"


def check_datasets(manifest: dict[str, Any]) -> None:
    embedded: list[tuple[str, str, str]] = []
    mounted: list[tuple[str, str, str]] = []
    for name, record in sorted(manifest["datasets"].items()):
        problem = check_dataset(name, record)
        if problem:
            (embedded if record["embed"] else mounted).append((name, problem, record["mount"]))
    if embedded:
        raise Stop(
            1,
            "The image's embedded data does not match its manifest: "
            + "; ".join(p for _, p, _ in embedded)
            + ". The image was modified; do not trust its results.",
        )
    if mounted:
        how = " ".join(f"-v HOST_PATH:{mount}:ro" for _, _, mount in mounted)
        raise Stop(
            2,
            "Refusing to run: the mounted data is not the data this experiment was frozen with: "
            + "; ".join(p for _, p, _ in mounted)
            + f". Mount the right data ({how}, or 'repropack run --data NAME=PATH').",
        )


# -- GPU and host ------------------------------------------------------------------------------------------
def gpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {"visible": False, "devices": [], "driver": None, "cuda_driver": None}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            ).stdout
            rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
            info["devices"] = [row[0] for row in rows]
            info["driver"] = rows[0][1] if rows and len(rows[0]) > 1 else None
            banner = subprocess.run([smi], capture_output=True, text=True, timeout=20, check=False).stdout
            match = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
            info["cuda_driver"] = match.group(1) if match else None
        except (OSError, subprocess.SubprocessError):
            pass
    info["visible"] = bool(info["devices"]) or os.path.exists("/dev/nvidia0")
    return info


def host_info() -> dict[str, Any]:
    model = None
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as handle:
            first = handle.readline().split()
            memory = int(first[1]) * 1024 if len(first) >= 2 else None
    except (OSError, ValueError):
        pass
    return {
        "cpu": model or platform.processor() or None,
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "machine": platform.machine(),
        "kernel": platform.release(),
    }


# -- config overrides --------------------------------------------------------------------------------------
def apply_overrides(manifest: dict[str, Any], sets: list[str], output: str) -> tuple[str | None, dict[str, Any]]:
    """The config path the command sees, and the overrides applied (written to OUTPUT/config.json)."""
    config = manifest.get("config")
    if not sets:
        return (config["path"] if config else None), {}
    if not config or not config["file"].endswith(".json"):
        raise Stop(2, "--set changes values in the experiment's JSON config, and this experiment has none.")
    data = json.loads(config["content"])
    applied: dict[str, Any] = {}
    for item in sets:
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):  # the config may be a list
                raise Stop(2, f"--set {key}: '{part}' is not a section of {config['file']}.")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            raise Stop(2, f"--set {key}: {config['file']} has no key '{parts[-1]}' (it has: {known}).")
        node[parts[-1]] = value
        applied[key] = value
    path = os.path.join(output, config["file"])
    write_json(path, data)
    return path, applied


# -- the command -------------------------------------------------------------------------------------------
class _Lookup(dict):  # type: ignore[type-arg]
    """Lets '{datasets.NAME}' resolve through str.format with dataset names that contain '-'."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def command_argv(manifest: dict[str, Any], name: str, config: str | None, seed: int, output: str) -> list[str]:
    datasets = _Lookup({n: r["path"] for n, r in manifest["datasets"].items()})
    values = {"config": config or "", "output": output, "seed": str(seed), "datasets": datasets}
    return [token.format(**values) for token in shlex.split(manifest["commands"][name])]


def command_environment(
    manifest: dict[str, Any], options: dict[str, Any], config: str | None, device: str, state: str
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


def collect_metrics(
    manifest: dict[str, Any], output: str, from_stdout: dict[str, str]
) -> tuple[dict[str, float], list[str]]:
    metrics: dict[str, float] = {}
    problems: list[str] = []
    spec = manifest["metrics"]
    if spec.get("file"):
        path = os.path.join(output, spec["file"])
        try:
            data = json.loads(read_regular_file(path, METRICS_CAP))
            for key, value in flatten(data).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics[key] = float(value)
        except UnsafeFile as exc:  # the command's doing, as a crash would be
            raise Stop(
                4,
                f"The metrics file {path} {exc}; repropack reads only regular files the command "
                "wrote, so this run's results are not trustworthy. Write metrics as a plain file.",
            ) from None
        except (OSError, ValueError, RecursionError) as exc:
            problems.append(f"metrics file {spec['file']} could not be read ({exc})")
    for name, text in from_stdout.items():
        try:
            metrics[name] = float(text)
        except ValueError:
            problems.append(f"metric {name}: '{text}' is not a number")
    for name in spec["expected"]:
        if name not in metrics:
            problems.append(f"expected metric '{name}' was not produced")
    return dict(sorted(metrics.items())), problems


class UnsafeFile(ValueError):
    """A file the command left is a link, FIFO, socket, device or folder, or larger than the cap."""


def read_regular_file(path: str, cap: int) -> bytes:
    """At most ``cap`` bytes of ``path``, a regular file: a link is not followed, a FIFO never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile("is a symbolic link") from None
        if exc.errno == errno.ENXIO:
            raise UnsafeFile("is a socket") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kinds = {
                stat.S_IFIFO: "a FIFO (named pipe)",
                stat.S_IFDIR: "a folder",
                stat.S_IFCHR: "a device",
                stat.S_IFBLK: "a device",
                stat.S_IFSOCK: "a socket",
            }
            raise UnsafeFile(f"is {kinds.get(stat.S_IFMT(mode), 'not a regular file')}")
        data = b""
        while len(data) <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - len(data)))
            if not chunk:
                return data
            data += chunk
        raise UnsafeFile(f"is larger than {cap >> 20} MiB")
    finally:
        os.close(fd)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".repro.", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def give_to_output_owner(output: str) -> None:
    """Running as root into a folder a user owns: hand the results to that user, not to root."""
    if os.geteuid() != 0:
        return
    stat = os.stat(output)
    if stat.st_uid == 0:
        return
    for folder, dirs, files in os.walk(output):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(folder, name), stat.st_uid, stat.st_gid)
            except OSError:
                pass


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def python_packages() -> dict[str, str]:
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return {}
    return {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions()}


def main(argv: list[str]) -> int:
    try:
        with open(layout.MANIFEST, "rb") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"repropack runtime: cannot read the manifest {layout.MANIFEST} ({exc}).", file=sys.stderr)
        return 1
    try:
        return execute(manifest, argv)
    except Stop as stop:
        print(stop.message, file=sys.stderr if stop.code else sys.stdout)
        return stop.code


def execute(manifest: dict[str, Any], argv: list[str]) -> int:
    options = parse_args(argv, manifest)
    output = options["output"]
    gpu = gpu_info()
    mode = manifest["experiment"]["gpu"]
    if mode == "required" and not gpu["visible"]:
        raise Stop(
            3,
            "This experiment requires a GPU and none is visible in the container. "
            "Run it with 'docker run --gpus all' on a host with the NVIDIA Container Toolkit.",
        )
    device = "cuda" if gpu["visible"] and mode != "none" else "cpu"
    check_datasets(manifest)
    try:
        os.makedirs(output, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=output)
        probe.close()
    except OSError as exc:
        raise Stop(
            3,
            f"The output folder {output} is not writable ({exc.strerror}). Mount a folder you own, "
            'for example -v "$PWD/out:/output".',
        ) from None
    config, overrides = apply_overrides(manifest, options["sets"], output)
    argv_run = command_argv(manifest, options["command"], config, options["seed"], output)
    state = tempfile.mkdtemp(prefix="repro-state-")
    user = command_user(output)
    if user is not None:
        os.chown(state, *user)
    env = command_environment(manifest, options, config, device, state)
    print(f"repropack: running '{options['command']}' on {device} with seed {options['seed']}", flush=True)
    started, clock = now(), time.monotonic()
    result = run_command(
        argv_run, env, manifest["layout"]["code"], options["timeout"], manifest["metrics"]["stdout"], user
    )
    duration = round(time.monotonic() - clock, 3)
    metrics, problems = (
        collect_metrics(manifest, output, result["stdout_metrics"]) if result["exit_code"] == 0 else ({}, [])
    )
    torch_state = read_state(os.path.join(state, "torch.json"))
    shutil.rmtree(state, ignore_errors=True)
    record = {
        "schema": "repropack.run/v1",
        "command": options["command"],
        "argv": argv_run,
        "exit_code": result["exit_code"],
        "status": result["status"],
        "started": started,
        "finished": now(),
        "duration_s": duration,
        "seed": options["seed"],
        "overrides": overrides,
        "timeout_s": options["timeout"],
        "user": {"uid": user[0] if user else os.geteuid(), "gid": user[1] if user else os.getegid()},
        "settings": {k: env[k] for k in SETTINGS},
        "device": device,
        "gpu": gpu,
        "host": host_info(),
        "python": platform.python_version(),
        "torch": torch_state,
        "packages": python_packages(),
        "manifest_sha256": manifest.get("sha256"),
        "experiment": manifest["experiment"]["name"],
        "code_commit": manifest["code"]["commit"],
        "metrics": metrics,
        "metric_problems": problems,
        "output_tail": result["tail"],
    }
    write_json(os.path.join(output, "metrics.json"), metrics) if result["exit_code"] == 0 else None
    write_json(os.path.join(output, "run.json"), record)
    give_to_output_owner(output)
    if result["exit_code"] != 0:
        last = " | ".join(line for line in result["tail"][-5:] if line.strip())
        raise Stop(
            4,
            f"The command '{options['command']}' {result['status'].replace('_', ' ')} "
            f"(exit status {result['exit_code']}). Last output: {last or '(none)'}",
        )
    for problem in problems:
        print(f"repropack: warning: {problem}", file=sys.stderr)
    print("repropack: metrics " + json.dumps(metrics, sort_keys=True), flush=True)
    return 0


def read_state(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

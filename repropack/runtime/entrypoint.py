"""repropack's runtime: the image's entrypoint. Standard library only, so it can never conflict with the
experiment's packages, and Python 3.8-compatible, since a base image brings its own Python.

    docker run --rm -v "$PWD/out:/output" IMAGE train [--seed N] [--set KEY=VALUE]... [--timeout S]

Before the command starts it checks every dataset against the manifest (mounted ones too), decides
CPU or GPU, and sets seeds and determinism for the command's processes. After it, it collects the
metrics and writes /output/metrics.json and /output/run.json. Its exit codes follow repropack's
contract: 0 ok, 1 the image's own files differ from its manifest, 2 bad input (arguments, mounted
data), 3 environment (GPU required but absent, output folder not writable), 4 the command failed.

Its parts are sibling files in /repro/runtime (all shipped and pinned by the manifest): the manifest's
records and parser (records.py), the dataset check (datasets.py), the command (command.py), the metrics
and output files (outputs.py), and the exit (exits.py).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
if __package__:  # imported as repropack.runtime.entrypoint (on the host)
    from repropack.runtime import command, datasets, exits, layout, outputs, records
else:  # run as /repro/runtime/entrypoint.py under python -I, which leaves its own folder off sys.path
    sys.path.insert(0, RUNTIME_DIR)
    import command  # type: ignore[no-redef, import-not-found]
    import datasets  # type: ignore[no-redef, import-not-found]
    import exits  # type: ignore[no-redef, import-not-found]
    import layout  # type: ignore[no-redef, import-not-found]
    import outputs  # type: ignore[no-redef, import-not-found]
    import records  # type: ignore[no-redef, import-not-found]

Stop = exits.Stop
DETERMINISM_MODES = ("strict", "warn", "off")
SETTINGS = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "REPRO_DETERMINISM", "REPRO_DEVICE")


# -- arguments ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str], manifest: records.Manifest) -> dict[str, Any]:
    commands = sorted(manifest["commands"])
    usage = (
        "usage: IMAGE COMMAND [--seed N] [--set KEY=VALUE]... [--timeout SECONDS] [--determinism MODE] "
        "[--new-data NAME]..."
    )
    if not argv or argv[0] in ("-h", "--help", "help"):
        raise Stop(0 if argv else 2, f"{usage}\ncommands: {', '.join(commands)}")
    options: dict[str, Any] = {
        "command": argv[0],
        "seed": manifest["experiment"]["seed"],
        "sets": [],
        "timeout": None,
        "determinism": "strict",
        "output": manifest["layout"]["output"],
        "new_data": [],
    }
    if options["command"] not in manifest["commands"]:
        raise Stop(2, f"Unknown command '{argv[0]}'. This image has: {', '.join(commands)}.")
    rest = argv[1:]
    while rest:
        flag = rest.pop(0)
        if flag not in ("--seed", "--set", "--timeout", "--determinism", "--output", "--new-data") or not rest:
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
        elif flag == "--new-data":
            if value not in manifest["datasets"]:
                known = ", ".join(sorted(manifest["datasets"])) or "none"
                raise Stop(2, f"--new-data {value}: the experiment has no dataset '{value}' (it has: {known}).")
            options["new_data"].append(value)
        else:
            options["output"] = value
    return options


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


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def config_digest(path: str | None) -> str | None:
    """The sha256 of the config the command saw (after any --set), or None without one."""
    if not path:
        return None
    try:
        return datasets.sha256_file(path)
    except OSError:
        return None


def python_packages() -> dict[str, str]:
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return {}
    return {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions()}


def indexed_argv(argv: list[str]) -> list[str]:
    """``indexed``: one task of a Kubernetes Indexed Job, its arguments picked from ``REPRO_TASKS`` (a JSON
    list of argument lists) by ``JOB_COMPLETION_INDEX``; any other argv is returned as it is."""
    if argv != ["indexed"]:
        return argv
    index = os.environ.get("JOB_COMPLETION_INDEX", "")
    try:
        tasks = json.loads(os.environ.get("REPRO_TASKS", ""))
        chosen = tasks[int(index)]
    except (ValueError, TypeError, IndexError, KeyError):
        raise Stop(2, f"indexed: REPRO_TASKS holds no argument list for JOB_COMPLETION_INDEX '{index}'.") from None
    if not isinstance(chosen, list) or not all(isinstance(a, str) for a in chosen):
        raise Stop(2, f"indexed: task {index} of REPRO_TASKS is not a list of strings.")
    return chosen


def main(argv: list[str]) -> int:
    try:
        with open(layout.MANIFEST, "rb") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"repropack runtime: cannot read the manifest {layout.MANIFEST} ({exc}).", file=sys.stderr)
        return 1
    try:
        manifest = records.parse_manifest_document(document, layout.MANIFEST)
    except records.ManifestError as exc:
        print(f"repropack runtime: cannot read the manifest {layout.MANIFEST} ({exc.problem}).", file=sys.stderr)
        return 1
    try:
        return execute(manifest, indexed_argv(argv))
    except Stop as stop:
        print(stop.message, file=sys.stderr if stop.code else sys.stdout)
        if stop.code:
            outputs.write_termination(stop.code, "failed", None, {}, stop.message[-300:])
        return stop.code


def execute(manifest: records.Manifest, argv: list[str]) -> int:
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
    data_uses = datasets.check_datasets(manifest, options["new_data"])
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
    params, _config_sets = command.split_sets(manifest, options["sets"])
    config, overrides = command.apply_overrides(manifest, options["sets"], output)
    for item in options["sets"]:  # a parameter set on the command line is an override, as a config key is
        if item.split("=", 1)[0] in params:
            overrides[item.split("=", 1)[0]] = params[item.split("=", 1)[0]]
    steps = command.command_steps(manifest, options["command"], config, options["seed"], output, params)
    state = tempfile.mkdtemp(prefix="repro-state-")
    user = command.command_user(output)
    work = command.working_copy(manifest["layout"]["code"], user)
    if user is not None:
        os.chown(state, *user)
    env = command.command_environment(manifest, options, config, device, state)
    print(f"repropack: running '{options['command']}' on {device} with seed {options['seed']}", flush=True)
    started, clock = now(), time.monotonic()
    result = command.run_steps(steps, env, work, options["timeout"], manifest["metrics"]["stdout"], user)
    artifacts, unmatched = outputs.hash_artifacts(manifest["artifacts"], work, output)
    shutil.rmtree(os.path.dirname(work), ignore_errors=True)
    duration = round(time.monotonic() - clock, 3)
    testing = options["command"] == "test"  # the experiment's own tests: no metrics are asked of them
    metrics, problems = (
        outputs.collect_metrics(manifest, output, result["stdout_metrics"])
        if result["exit_code"] == 0 and not testing
        else ({}, [])
    )
    torch_state = outputs.read_state(os.path.join(state, "torch.json"))
    shutil.rmtree(state, ignore_errors=True)
    record = {
        "schema": "repropack.run/v1",
        "command": options["command"],
        "argv": result["steps"][-1]["argv"],  # the step that ran last: the only one of a one-step command
        "steps": result["steps"],
        "failed_step": result["failed_step"],
        "exit_code": result["exit_code"],
        "status": result["status"],
        "started": started,
        "finished": now(),
        "duration_s": duration,
        "seed": options["seed"],
        "overrides": overrides,
        "params": params,
        "config_sha256": config_digest(config),
        "datasets": data_uses,
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
        "artifacts": artifacts,
        "output_tail": result["tail"],
    }
    promised = manifest["metrics"]["expected"] if not testing else {}
    missing = [name for name in promised if result["exit_code"] == 0 and name not in metrics]
    if missing:  # it ran, but did not produce what the spec promises: not a success
        record["status"], record["missing_metrics"] = "missing_metrics", missing
    outputs.write_json(os.path.join(output, "metrics.json"), metrics) if result["exit_code"] == 0 else None
    outputs.write_json(os.path.join(output, "run.json"), record)
    outputs.give_to_output_owner(output)
    if result["exit_code"] != 0:  # its output was streamed above: not repeated here
        status = result["status"].replace("_", " ")
        step = result["failed_step"]
        at = f" at step {step} of {len(steps)} ({shlex.join(steps[step - 1])})" if step else ""
        raise Stop(4, f"repropack: the command '{options['command']}' {status}{at}; its output is above.")
    for problem in problems + unmatched:
        print(f"repropack: warning: {problem}", file=sys.stderr)
    if missing:
        source = manifest["metrics"].get("file") or "a metrics.stdout pattern"
        raise Stop(
            4,
            f"repropack: the command '{options['command']}' did not produce the metric "
            f"{', '.join(missing)} the experiment expects (from {source}).",
        )
    if not testing:
        print("repropack: metrics " + json.dumps(metrics, sort_keys=True), flush=True)
    outputs.write_termination(0, "succeeded", options["seed"], metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

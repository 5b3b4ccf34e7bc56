"""The runtime's GPU path on a real NVIDIA GPU: device choice, determinism settings, bit-for-bit repeatable
training, and the recipe's published (CPU) numbers reproduced on the GPU within their tolerance.

These run the image's own entrypoint, outside Docker, on a machine with a GPU and a CUDA build of torch:

    python -m tests.gpu.stage IMAGE repro.tar      # here, from the digits-mlp recipe's image
    tar -xf repro.tar -C /                         # on the GPU machine: /repro as in the image, minus its venv
    python -m pytest tests/gpu                     # with that machine's torch

Anywhere else (CI has no GPU) each test is skipped and says why. ``REPROPACK_GPU_RESULTS=FILE`` writes what
the runs measured (metrics, durations, what torch reported) to FILE as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

MANIFEST = Path("/repro/manifest.json")
ENTRYPOINT = Path("/repro/runtime/entrypoint.py")
RESULTS: dict[str, Any] = {}


@cache
def why_not() -> str | None:
    """Why these checks cannot run here, or None when they can."""
    if not MANIFEST.is_file() or not ENTRYPOINT.is_file():
        return "no staged /repro tree (see this module's docstring)"
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi: no NVIDIA GPU on this machine"
    try:
        import torch
    except ImportError:
        return "no torch in this Python"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return dict(json.loads(MANIFEST.read_text()))


@pytest.fixture(scope="module", autouse=True)
def write_results() -> Any:
    yield
    target = os.environ.get("REPROPACK_GPU_RESULTS")
    if target and RESULTS:
        Path(target).write_text(json.dumps(RESULTS, indent=2, sort_keys=True) + "\n")


def run(command: str, output: Path, *args: str, manifest_file: Path = MANIFEST) -> tuple[int, str, dict[str, Any]]:
    """The entrypoint as `docker run IMAGE COMMAND` would start it; (exit code, output, run.json).

    The runtime reads only /repro/manifest.json and runs commands with its own PATH (/repro/venv/bin
    first), so another manifest is put in its place for the run, and /repro/venv/bin/python is this Python."""
    venv_python = Path("/repro/venv/bin/python")
    if not venv_python.exists():
        venv_python.parent.mkdir(parents=True, exist_ok=True)
        venv_python.symlink_to(sys.executable)
    original = MANIFEST.read_bytes()
    try:
        if manifest_file != MANIFEST:
            MANIFEST.write_bytes(manifest_file.read_bytes())
        done = subprocess.run(
            [sys.executable, str(ENTRYPOINT), command, "--output", str(output), *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        MANIFEST.write_bytes(original)
    record_file = output / "run.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    return done.returncode, done.stdout + done.stderr, record


def with_gpu_mode(manifest: dict[str, Any], mode: str, folder: Path) -> Path:
    changed = json.loads(json.dumps(manifest))
    changed["experiment"]["gpu"] = mode
    path = folder / f"manifest-{mode}.json"
    path.write_text(json.dumps(changed))
    return path


def summary(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("device", "duration_s", "metrics", "torch", "gpu", "settings")}


def test_train_runs_on_the_gpu_and_repeats_bit_for_bit(tmp_path: Path) -> None:
    first_code, first_log, first = run("train", tmp_path / "a")
    assert first_code == 0, first_log
    second_code, second_log, second = run("train", tmp_path / "b")
    assert second_code == 0, second_log
    RESULTS["train"] = [summary(first), summary(second)]

    assert first["device"] == "cuda" and "on cuda" in first_log
    assert first["gpu"]["visible"] is True and first["gpu"]["devices"] and first["gpu"]["driver"]
    torch_state = first["torch"]
    assert torch_state["cuda_available"] is True and torch_state["cuda"]
    assert torch_state["deterministic_algorithms"] is True and torch_state["determinism"] == "strict"
    assert torch_state["cudnn_deterministic"] is True and torch_state["cudnn_benchmark"] is False
    assert first["settings"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    # the same seed on the same GPU: the same metrics and the same weights, bit for bit
    assert first["metrics"] == second["metrics"]
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_the_gpu_reproduces_the_published_cpu_numbers(command: str, manifest: dict[str, Any], tmp_path: Path) -> None:
    from repropack.verify.reproduce import compare_metrics

    code, log, record = run(command, tmp_path)
    assert code == 0, log
    assert record["device"] == "cuda"
    compared = compare_metrics(manifest["metrics"]["expected"], record["metrics"])
    RESULTS[f"{command}_vs_published"] = compared
    assert all(row["passed"] for row in compared.values()), compared


def test_gpu_none_keeps_the_command_off_the_gpu(manifest: dict[str, Any], tmp_path: Path) -> None:
    code, log, record = run("train", tmp_path / "out", manifest_file=with_gpu_mode(manifest, "none", tmp_path))
    assert code == 0, log
    RESULTS["gpu_none"] = summary(record)
    assert record["device"] == "cpu" and "on cpu" in log
    assert record["settings"]["REPRO_DEVICE"] == "cpu"
    assert record["torch"]["cuda_available"] is False  # CUDA_VISIBLE_DEVICES="" hid the GPU from torch


def test_gpu_required_runs_when_a_gpu_is_there(manifest: dict[str, Any], tmp_path: Path) -> None:
    code, log, record = run("evaluate", tmp_path / "out", manifest_file=with_gpu_mode(manifest, "required", tmp_path))
    assert code == 0, log
    assert record["device"] == "cuda" and record["torch"]["cuda_available"] is True


def test_another_seed_gives_other_weights_on_the_gpu(tmp_path: Path) -> None:
    seven_code, seven_log, _ = run("train", tmp_path / "seven")
    assert seven_code == 0, seven_log
    eight_code, eight_log, record = run("train", tmp_path / "eight", "--seed", "8")
    assert eight_code == 0, eight_log
    RESULTS["seed_8"] = summary(record)
    assert record["seed"] == 8 and record["settings"]["PYTHONHASHSEED"] == "8"
    assert (tmp_path / "seven" / "model.pt").read_bytes() != (tmp_path / "eight" / "model.pt").read_bytes()

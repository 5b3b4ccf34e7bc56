"""The command line: exit codes, one-paragraph errors, and the engine-free dry run (freeze)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from unit_factories import Experiment, MakeExperiment, Result, RunCli, cli_runner

from repropack import __version__


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``repropack ARGS`` in this process through cli.main, as the console script does."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # no engine, ever
    return cli_runner(monkeypatch, capsys)


def assert_one_paragraph_error(result: Result, code: int) -> None:
    assert result.code == code, result
    assert result.err.startswith("error: ")
    assert result.err.count("\n") == 1 and result.err.endswith("\n")
    assert "Traceback" not in result.err + result.out


def test_version(run_cli: RunCli) -> None:
    result = run_cli("--version")
    assert (result.code, result.out) == (0, f"repropack {__version__}\n")


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "repropack", "--version"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, f"repropack {__version__}\n")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["lock"],
        ["freeze"],
        ["build"],
        ["run"],
        ["verify"],
        ["inspect"],
        ["base"],
        ["base", "list"],
        ["base", "build"],
    ],
    ids=lambda c: " ".join(c) or "top",
)
def test_help_for_every_command(run_cli: RunCli, command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.code == 0
    assert "Usage:" in result.out
    assert result.err == ""


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "repropack", *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "args",
    [["freeze", "--no-such-option"], ["lock"], ["run", "img", "--seed", "x"]],
    ids=["unknown-option", "missing-argument", "bad-option-value"],
)
def test_usage_errors_are_exit_2_without_a_traceback(args: list[str]) -> None:
    done = run_module(*args)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2
    assert "unexpectedly" not in done.stderr


@pytest.mark.parametrize("args", [[], ["base"]], ids=["top", "base"])
def test_no_arguments_shows_help(args: list[str]) -> None:
    done = run_module(*args)
    assert "Usage:" in done.stdout + done.stderr
    assert "unexpectedly" not in done.stderr and "Traceback" not in done.stderr
    assert done.returncode in (0, 2)


def test_bad_spec_is_exit_2_with_a_one_paragraph_error(make_experiment: MakeExperiment, run_cli: RunCli) -> None:
    experiment = make_experiment(git_repo=False, name="Spiral MLP", seed=-1)
    result = run_cli("freeze", experiment.spec_path, "--output", experiment.repo / "out")
    assert_one_paragraph_error(result, 2)
    assert "2 problems" in result.err and "name:" in result.err and "seed:" in result.err


def test_missing_spec_is_exit_2(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("lock", tmp_path / "nope.yaml")
    assert_one_paragraph_error(result, 2)
    assert "does not exist" in result.err


def test_debug_shows_the_traceback(tmp_path: Path, run_cli: RunCli) -> None:
    from repropack.errors import BadInput

    with pytest.raises(BadInput):
        run_cli("--debug", "lock", tmp_path / "nope.yaml")


def test_freeze_writes_exactly_dockerfile_and_manifest(experiment: Experiment, run_cli: RunCli) -> None:
    first = experiment.repo / "out1"
    second = experiment.repo / "out2"
    result = run_cli("freeze", experiment.spec_path, "--output", first)
    assert result.code == 0, result
    assert "no Docker engine reachable" in result.err
    assert sorted(p.name for p in first.iterdir()) == ["Dockerfile", "environment.Dockerfile", "manifest.json"]
    assert run_cli("freeze", experiment.spec_path, "--output", second).code == 0
    for name in ("Dockerfile", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    manifest = json.loads((first / "manifest.json").read_bytes())
    assert f"sha256:{manifest['sha256']}" in result.out


def test_freeze_json(experiment: Experiment, run_cli: RunCli) -> None:
    out = experiment.repo / "out"
    result = run_cli("freeze", experiment.spec_path, "--output", out, "--json")
    assert result.code == 0
    report = json.loads(result.out)
    assert report["files"] == ["Dockerfile", "environment.Dockerfile", "manifest.json"]
    assert report["manifest_digest"] == "sha256:" + json.loads((out / "manifest.json").read_bytes())["sha256"]


def test_freeze_of_a_bad_spec_writes_nothing(make_experiment: MakeExperiment, run_cli: RunCli) -> None:
    experiment = make_experiment(gpu="sometimes")
    out = experiment.repo / "out"
    assert run_cli("freeze", experiment.spec_path, "--output", out).code == 2
    assert not out.exists()


def test_freeze_of_a_dirty_tree_writes_nothing_unless_allowed(experiment: Experiment, run_cli: RunCli) -> None:
    experiment.write("train.py", "print('edited')\n")
    out = experiment.repo / "out"
    result = run_cli("freeze", experiment.spec_path, "--output", out)
    assert_one_paragraph_error(result, 2)
    assert "--allow-dirty" in result.err
    assert not out.exists()
    assert run_cli("freeze", experiment.spec_path, "--output", out, "--allow-dirty").code == 0
    assert json.loads((out / "manifest.json").read_bytes())["code"]["dirty"] is True


def test_freeze_with_a_stale_lock_is_exit_2(experiment: Experiment, run_cli: RunCli) -> None:
    experiment.write("requirements.in", "numpy==2.0.0\n")
    experiment.commit("bump")
    out = experiment.repo / "out"
    result = run_cli("freeze", experiment.spec_path, "--output", out)
    assert_one_paragraph_error(result, 2)
    assert "stale" in result.err
    assert not out.exists()


def test_lock_is_a_no_op_when_the_lock_is_current(experiment: Experiment, run_cli: RunCli) -> None:
    before = experiment.lockfile.read_bytes()
    result = run_cli("lock", experiment.spec_path)
    assert result.code == 0
    assert result.out == "requirements.lock: up to date (1 packages)\n"
    assert experiment.lockfile.read_bytes() == before


def test_build_without_an_engine_is_exit_3(experiment: Experiment, run_cli: RunCli) -> None:
    result = run_cli("build", experiment.spec_path)
    assert_one_paragraph_error(result, 3)
    assert "Docker" in result.err


def test_verify_without_an_engine_is_exit_3(run_cli: RunCli) -> None:
    assert_one_paragraph_error(run_cli("verify", "some/image:tag"), 3)


def test_run_with_a_bad_gpus_value_is_exit_2(run_cli: RunCli) -> None:
    result = run_cli("run", "some/image:tag", "--gpus", "2")
    assert_one_paragraph_error(result, 2)
    assert "--gpus takes 'all'" in result.err


def test_base_list_json(run_cli: RunCli) -> None:
    result = run_cli("base", "list", "--json")
    assert result.code == 0
    catalog = json.loads(result.out)
    assert catalog["debian-bookworm"] == {
        "reference": "repropack/base:debian-bookworm",
        "python": "3.11",
        "cuda": None,
        "local": True,
    }

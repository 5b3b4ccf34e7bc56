"""The image's entrypoint on a cluster: ``indexed`` (one task of a Kubernetes Indexed Job, its arguments
picked by JOB_COMPLETION_INDEX) and the termination message (metrics only, at most 4096 bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_runtime_entrypoint import load_entrypoint

ep = load_entrypoint()
TASKS = json.dumps([["train", "--seed", "0"], ["train", "--seed", "1", "--set", "lr=0.1 0.2"]])


def test_indexed_picks_the_tasks_own_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPRO_TASKS", TASKS)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert ep.indexed_argv(["indexed"]) == ["train", "--seed", "1", "--set", "lr=0.1 0.2"]
    assert ep.indexed_argv(["train", "--seed", "3"]) == ["train", "--seed", "3"]  # anything else: as given


@pytest.mark.parametrize(
    ("tasks", "index"),
    [
        (TASKS, "2"),
        (TASKS, ""),
        (TASKS, "x"),
        ("not json", "0"),
        ("", "0"),
        ('[["train", 1]]', "0"),
        ('{"0": []}', "0"),
    ],
)
def test_indexed_without_a_task_for_the_index_is_bad_input(
    monkeypatch: pytest.MonkeyPatch, tasks: str, index: str
) -> None:
    monkeypatch.setenv("REPRO_TASKS", tasks)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", index)
    with pytest.raises(ep.Stop) as stopped:
        ep.indexed_argv(["indexed"])
    assert stopped.value.code == 2 and stopped.value.message.startswith("indexed: ")


def test_the_termination_message_carries_the_metrics_and_fits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = tmp_path / "termination-log"
    monkeypatch.setenv("REPRO_TERMINATION_LOG", str(message))
    ep.outputs.write_termination(0, "succeeded", 3, {"accuracy": 0.91, "loss": 0.2})
    assert json.loads(message.read_text()) == {
        "complete": True,
        "error": None,
        "exit_code": 0,
        "metrics": {"accuracy": 0.91, "loss": 0.2},
        "seed": 3,
        "status": "succeeded",
    }
    many = {f"metric_{i:04d}": 0.123456789 * i for i in range(500)}
    ep.outputs.write_termination(0, "succeeded", 3, many)
    kept = json.loads(message.read_text())
    assert len(message.read_bytes()) <= 4096 and kept["complete"] is False
    assert 0 < len(kept["metrics"]) < 500 and all(many[k] == v for k, v in kept["metrics"].items())


def test_no_termination_message_without_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REPRO_TERMINATION_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    ep.outputs.write_termination(0, "succeeded", 3, {"a": 1.0})
    assert list(tmp_path.iterdir()) == []

"""``runs export --mlflow``: recorded runs read back from a local MLflow file store (params, metrics and their
steps, tags, status, times, the log artifact), exported once however often it runs, by group; and, without
MLflow, one error naming the extra. The MLflow tests are skipped where mlflow(-skinny) is not installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from unit_factories import RunCli, cli_runner

from repropack.errors import BadInput, EnvironmentProblem
from repropack.report.mlflow_export import ALLOW_FILE_STORE, RUN_ID_TAG, export_to_mlflow
from repropack.store.records import RunRecord, Status
from repropack.store.store import Store
from tests.store_scenarios import make_record, open_store

LOG = "epoch 1 loss: 0.5\nepoch 2 loss: 0.3\nepoch 3 loss: 0.1\nacc 0.9 \N{CHECK MARK}\n"


def ended(store: Store, status: Status, **changes: Any) -> RunRecord:
    """A record begun and ended as ``status``, ending 2.5 s after the first run began."""
    record = store.begin(make_record(**changes), {"data": {}})
    record["status"] = status
    record["ended"] = "2026-01-01T00:00:02.500+00:00"
    store.finish(record)
    return record


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("REPROPACK_STORE", str(tmp_path / "runs.sqlite"))  # the CLI's store is this one
    monkeypatch.setenv("REPROPACK_STORE_BLOBS", str(tmp_path / "blobs"))
    monkeypatch.delenv(ALLOW_FILE_STORE, raising=False)
    return open_store(str(tmp_path / "runs.sqlite"), tmp_path / "blobs")


@pytest.fixture
def runs(store: Store) -> dict[str, RunRecord]:
    """Two runs of group g (succeeded with a log, failed), one of group h (killed), one of g still running."""
    log = store.blobs.put_bytes(LOG.encode())
    return {
        "good": ended(
            store,
            "succeeded",
            name="train-seed=3",
            seed=3,
            overrides={"lr": 0.1, "model.depth": 4, "opt:b[0]": "adam"},
            config_sha256="ef" * 32,
            datasets={"points": {"sha256": "12" * 32, "embedded": True, "as_frozen": True}},
            metrics={"acc": 0.9, "loss": 0.1},
            history={"loss": [0.5, 0.3, 0.1]},
            log_sha256=log,
            exit_code=0,
            started="2026-01-01T00:00:00.000+00:00",
        ),
        "bad": ended(
            store,
            "failed",
            name="train-seed=4",
            seed=4,
            metrics={"acc": 0.5, "loss": 0.2},
            history={"loss": [0.6, 0.4]},
            exit_code=1,
            started="2026-01-01T00:01:00.000+00:00",
        ),
        "killed": ended(
            store, "killed", group="h", experiment="other", seed=None, started="2026-01-01T00:02:00.000+00:00"
        ),
        "running": store.begin(make_record(name="later", started="2026-01-01T00:03:00.000+00:00"), {"data": {}}),
    }


@pytest.fixture
def mlflow_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``mlflow_client(uri)``: an MlflowClient to read back what an export wrote."""
    tracking = pytest.importorskip("mlflow.tracking")

    def make(uri: str) -> Any:
        with monkeypatch.context() as scoped:
            scoped.setenv(ALLOW_FILE_STORE, "true")
            return tracking.MlflowClient(tracking_uri=uri)

    return make


def mlflow_runs(client: Any, experiment_id: str) -> list[Any]:
    return list(client.search_runs([experiment_id], max_results=1000))


def by_record(client: Any, result_ids: dict[str, str]) -> dict[str, Any]:
    return {record_id: client.get_run(run_id) for record_id, run_id in result_ids.items()}


def test_every_ended_run_is_exported_with_its_params_metrics_tags_times_and_log(
    store: Store, runs: dict[str, RunRecord], tmp_path: Path, mlflow_client: Any
) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    result = export_to_mlflow(store, uri, None)
    assert (result.exported, result.skipped, result.running) == (3, 0, 1)
    assert sorted(result.experiment_ids) == ["other", "tiny"]
    assert ALLOW_FILE_STORE not in os.environ  # opted into for the export only
    client = mlflow_client(uri)
    assert client.get_experiment_by_name("tiny").experiment_id == result.experiment_ids["tiny"]
    exported = by_record(client, result.run_ids)
    assert set(exported) == {runs[key]["id"] for key in ("good", "bad", "killed")}

    good = exported[runs["good"]["id"]]
    assert good.data.params == {
        "seed": "3",
        "command": "train",
        "set.lr": "0.1",
        "set.model.depth": "4",
        "set.opt_b_0_": "adam",  # a name MLflow refuses, made one it takes
        "image_id": "sha256:" + "ab" * 32,
        "manifest_digest": "sha256:" + "cd" * 32,
        "config_sha256": "ef" * 32,
        "data.points.sha256": "12" * 32,
    }
    assert good.data.metrics == {"acc": 0.9, "loss": 0.1}
    history = client.get_metric_history(good.info.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 0.5), (1, 0.3), (2, 0.1)]
    assert {key: value for key, value in good.data.tags.items() if key.startswith("repropack.")} == {
        RUN_ID_TAG: runs["good"]["id"],
        "repropack.name": "train-seed=3",
        "repropack.group": "g",
        "repropack.status": "succeeded",
        "repropack.kind": "run",
        "repropack.exit_code": "0",
    }
    assert good.data.tags["mlflow.runName"] == "train-seed=3"
    assert good.info.experiment_id == result.experiment_ids["tiny"]
    assert (good.info.status, good.info.start_time, good.info.end_time) == ("FINISHED", 1767225600000, 1767225602500)
    assert [a.path for a in client.list_artifacts(good.info.run_id)] == ["log.txt"]
    artifacts = pytest.importorskip("mlflow.artifacts")  # by its URI: old clients' download_artifacts reads ./mlruns
    downloaded = artifacts.download_artifacts(f"{good.info.artifact_uri}/log.txt", dst_path=str(tmp_path / "got"))
    assert Path(downloaded).read_text(encoding="utf-8") == LOG

    bad = exported[runs["bad"]["id"]]
    assert bad.info.status == "FAILED" and bad.data.tags["repropack.exit_code"] == "1"
    assert bad.data.metrics == {"acc": 0.5, "loss": 0.2}  # the record's final value is MLflow's latest
    steps = sorted(client.get_metric_history(bad.info.run_id, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in steps] == [(0, 0.6), (1, 0.4), (2, 0.2)]
    assert client.list_artifacts(bad.info.run_id) == []  # no log recorded, none exported

    killed = exported[runs["killed"]["id"]]
    assert killed.info.status == "KILLED" and killed.info.experiment_id == result.experiment_ids["other"]
    assert "seed" not in killed.data.params and "repropack.exit_code" not in killed.data.tags
    assert killed.data.tags["repropack.group"] == "h"

    for run in exported.values():  # the record names no host folder, and the export adds none
        assert not [v for v in [*run.data.params.values(), *run.data.tags.values()] if str(tmp_path) in v]


def test_exporting_again_adds_only_the_runs_not_there_yet(
    store: Store, runs: dict[str, RunRecord], tmp_path: Path, mlflow_client: Any
) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    first = export_to_mlflow(store, uri, None)
    again = export_to_mlflow(store, uri, None)
    assert (again.exported, again.skipped, again.running) == (0, 3, 1)
    assert again.run_ids == first.run_ids and again.experiment_ids == first.experiment_ids
    client = mlflow_client(uri)
    assert len(mlflow_runs(client, first.experiment_ids["tiny"])) == 2

    later = store.get(runs["running"]["id"])  # the running one ends: the next export takes it, alone
    later.update({"status": "succeeded", "ended": "2026-01-01T00:04:00.000+00:00", "exit_code": 0})
    store.finish(later)
    third = export_to_mlflow(store, uri, None)
    assert (third.exported, third.skipped, third.running) == (1, 3, 0)
    assert len(mlflow_runs(client, first.experiment_ids["tiny"])) == 3


def test_a_run_an_interrupted_export_left_running_is_redone(
    store: Store, runs: dict[str, RunRecord], tmp_path: Path, mlflow_client: Any
) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    client = mlflow_client(uri)
    experiment_id = client.create_experiment("tiny")
    half = client.create_run(experiment_id, tags={RUN_ID_TAG: runs["good"]["id"]})  # never terminated
    result = export_to_mlflow(store, uri, "g")
    assert (result.exported, result.skipped) == (2, 0)
    active = mlflow_runs(client, experiment_id)
    assert half.info.run_id not in {run.info.run_id for run in active}
    assert sorted(run.info.status for run in active) == ["FAILED", "FINISHED"]


def test_group_selects_the_runs(store: Store, runs: dict[str, RunRecord], tmp_path: Path, mlflow_client: Any) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    result = export_to_mlflow(store, uri, "h")
    assert (result.exported, result.skipped, result.running) == (1, 0, 0)
    assert list(result.experiment_ids) == ["other"] and list(result.run_ids) == [runs["killed"]["id"]]
    assert mlflow_client(uri).get_experiment_by_name("tiny") is None
    with pytest.raises(BadInput, match="The group 'nope' has no runs"):
        export_to_mlflow(store, uri, "nope")


def test_a_deleted_experiment_is_a_clear_error(
    store: Store, runs: dict[str, RunRecord], tmp_path: Path, mlflow_client: Any
) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    client = mlflow_client(uri)
    client.delete_experiment(client.create_experiment("other"))
    with pytest.raises(BadInput, match="experiment 'other' is deleted"):
        export_to_mlflow(store, uri, "h")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    return cli_runner(monkeypatch, capsys)


def test_the_command_exports_and_says_so_on_stderr(
    store: Store, runs: dict[str, RunRecord], tmp_path: Path, mlflow_client: Any, cli: RunCli
) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    first = cli("runs", "export", "--mlflow", uri, "--group", "g")
    assert first.code == 0, first.err
    assert first.out == "" and first.err.count("\n") == 1
    assert first.err.startswith("exported 2 runs to MLflow, 0 already there, 1 still running")
    again = cli("runs", "export", "--mlflow", uri, "--group", "g")
    assert again.code == 0 and again.err.startswith("exported 0 runs to MLflow, 2 already there")
    client = mlflow_client(uri)
    assert len(mlflow_runs(client, client.get_experiment_by_name("tiny").experiment_id)) == 2
    assert cli("runs", "export", "--group", "g").code == 2  # --mlflow is required


def test_without_mlflow_the_error_names_the_extra(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: RunCli
) -> None:
    for name in [name for name in sys.modules if name == "mlflow" or name.startswith("mlflow.")] or ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    with pytest.raises(EnvironmentProblem) as raised:
        export_to_mlflow(store, (tmp_path / "mlruns").as_uri(), None)
    assert "pip install 'repropack[mlflow]'" in str(raised.value)
    result = cli("runs", "export", "--mlflow", (tmp_path / "mlruns").as_uri())
    assert result.code == 3 and result.err.startswith("error: ") and result.err.count("\n") == 1
    assert "repropack[mlflow]" in result.err
    assert not (tmp_path / "mlruns").exists()

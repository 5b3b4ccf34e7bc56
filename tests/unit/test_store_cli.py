"""The record commands on a store filled here (no Docker): lookups, filters, sort, compare, outputs, logs,
report, and their bad input (exit 2, one paragraph, nothing written)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from unit_factories import Result, RunCli, cli_runner

from repropack.store.store import Store
from tests.store_scenarios import finished


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    return cli_runner(monkeypatch, capsys)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("REPROPACK_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("REPROPACK_STORE_BLOBS", str(tmp_path / "blobs"))
    return Store.open()


@pytest.fixture
def filled(store: Store, tmp_path: Path) -> list[str]:
    ids = []
    for seed, lr, acc in ((0, 0.1, 0.91), (1, 0.1, 0.95), (0, 1.0, 0.5)):
        out = tmp_path / f"out{seed}{lr}"
        out.mkdir()
        (out / "metrics.json").write_text(json.dumps({"acc": acc}))
        from repropack.store.outputs import store_folder

        files, _ = store_folder(store.blobs, out)
        log = store.blobs.put_bytes(f"loss: 0.5\nloss: 0.2\nacc {acc}\n".encode())
        record = finished(
            store,
            name=f"train-lr={lr}-seed={seed}",
            seed=seed,
            overrides={"lr": lr},
            metrics={"acc": acc},
            outputs=files,
            log_sha256=log,
            history={"loss": [0.5, 0.2]},
            expected={"acc": {"value": 0.93, "abs_tol": 0.05, "rel_tol": 0.0}},
        )
        ids.append(record["id"])
    return ids


def ok(result: Result) -> Result:
    assert result.code == 0, result.err
    return result


def test_runs_filters_and_sorts(cli: RunCli, filled: list[str]) -> None:
    listed = json.loads(ok(cli("runs", "--json")).out)
    assert [r["id"] for r in listed] == filled
    assert {
        "id",
        "name",
        "group",
        "status",
        "image",
        "command",
        "seed",
        "overrides",
        "metrics",
        "started",
        "ended",
        "exit_code",
    } <= set(listed[0])
    best = json.loads(ok(cli("runs", "--sort", "-acc", "--json")).out)
    assert [r["metrics"]["acc"] for r in best] == [0.95, 0.91, 0.5]
    assert json.loads(ok(cli("runs", "--status", "failed", "--json")).out) == []
    assert json.loads(ok(cli("runs", "--group", "g", "--image", "lab/tiny:v1", "--json")).out)
    table = ok(cli("runs")).out
    assert "train-lr=0.1-seed=1" in table and filled[0][:10] in table


def test_show_logs_outputs_compare_and_report(cli: RunCli, filled: list[str], tmp_path: Path) -> None:
    shown = ok(cli("show", "g/train-lr=0.1-seed=1")).out
    assert "acc=0.95" in shown and "repropack rerun" in shown
    assert json.loads(ok(cli("show", filled[1][:6], "--json")).out)["id"] == filled[1]
    assert ok(cli("logs", filled[0])).out == "loss: 0.5\nloss: 0.2\nacc 0.91\n"
    ok(cli("outputs", filled[2], "--output", tmp_path / "back"))
    assert json.loads((tmp_path / "back" / "metrics.json").read_text()) == {"acc": 0.5}
    rows = list(csv.DictReader(io.StringIO(ok(cli("compare", "--group", "g", "--csv")).out)))
    assert [(r["seed"], r["lr"], r["acc"]) for r in rows] == [
        ("0", "0.1", "0.91"),
        ("1", "0.1", "0.95"),
        ("0", "1.0", "0.5"),
    ]
    two = json.loads(ok(cli("compare", filled[1], filled[0], "--json")).out)
    assert [row["id"] for row in two["rows"]] == [filled[1], filled[0]] and two["differs"] == ["seed", "acc"]
    page = tmp_path / "report.html"
    ok(cli("report", filled[0], filled[1], "--output", page))
    assert "REPRODUCED" in page.read_text() and "<svg" in page.read_text()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("show", "nothex"), "not a run id"),
        (("show", "0000"), "No run's id starts with"),
        (("show", "g/none"), "no run named 'none' in the group 'g'"),
        (("compare",), "Name the runs (RUN...) or a group"),
        (("compare", "--group", "g", "--csv", "--json"), "choose one"),
        (("report", "--group", "nope", "--output", "r.html"), "The group 'nope' has no runs"),
        (("runs", "--status", "done"), "--status is one of"),
        (("runs", "--sort", "speed"), "no listed run has that metric"),
    ],
)
def test_bad_input_is_exit_2_with_one_paragraph(
    cli: RunCli,
    filled: list[str],
    argv: tuple[str, ...],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(*argv)
    assert result.code == 2 and says in result.err and "Traceback" not in result.err
    assert not (tmp_path / "r.html").exists()


def test_outputs_never_overwrite(cli: RunCli, filled: list[str], tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "metrics.json").write_text("mine")
    result = cli("outputs", filled[0], "--output", busy)
    assert result.code == 2 and "not an empty folder" in result.err
    assert (busy / "metrics.json").read_text() == "mine"

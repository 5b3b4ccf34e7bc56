"""Run-store scenarios that every database engine must pass: the unit tests run them on SQLite, the
integration tests on a real PostgreSQL server. Each takes the store's location and its blob folder."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import pytest

from repropack.errors import BadInput, EnvironmentProblem
from repropack.store.blobs import BlobStore
from repropack.store.database import connect
from repropack.store.migrations import LATEST, schema_version, upgrade
from repropack.store.records import RunRecord
from repropack.store.store import Store


def make_record(**changes: Any) -> RunRecord:
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "name": "train-seed=0",
        "group": "g",
        "description": "",
        "kind": "run",
        "status": "running",
        "image": "lab/tiny:v1",
        "image_id": "sha256:" + "ab" * 32,
        "manifest_digest": "sha256:" + "cd" * 32,
        "reference": None,
        "experiment": "tiny",
        "command": "train",
        "argv": [],
        "seed": 0,
        "overrides": {},
        "config_sha256": None,
        "datasets": {},
        "requirements": {"gpus": False, "memory": None},
        "started": "2026-01-01T00:00:00.000+00:00",
        "ended": None,
        "duration_s": None,
        "exit_code": None,
        "error": None,
        "hardware": {},
        "software": {},
        "metrics": {},
        "expected": {},
        "history": {},
        "outputs": [],
        "log_sha256": None,
        "rerun": "repropack run lab/tiny:v1 train --seed 0",
    }
    record.update(changes)
    return record  # type: ignore[return-value]


def open_store(location: str, blobs: Path) -> Store:
    return Store(connect(location), BlobStore(blobs))


_clock = iter(range(10**6))


def finished(store: Store, **changes: Any) -> RunRecord:
    """A run begun and ended; each one starts a second after the one before (runs list oldest first)."""
    tick = next(_clock)
    changes.setdefault(
        "started",
        f"2026-01-{1 + tick // 86400:02d}T{tick // 3600 % 24:02d}:{tick // 60 % 60:02d}:{tick % 60:02d}.000+00:00",
    )
    record = store.begin(make_record(**changes), {"data": {}})
    record.update({"status": "succeeded", "ended": "2026-01-01T00:00:01.000+00:00", "duration_s": 1.0})
    record["exit_code"] = 0
    store.finish(record)
    return record


def scenario_round_trip_and_lookup(location: str, blobs: Path) -> None:
    store = open_store(location, blobs)
    first = finished(store, metrics={"acc": 0.9}, overrides={"lr": 0.1}, seed=3)
    second = finished(store, metrics={"acc": 0.8})
    assert first["name"] == "train-seed=0" and second["name"] == "train-seed=0-2"  # unique in the group
    assert store.get(first["id"]) == first
    assert store.resolve(first["id"][:8])["id"] == first["id"]
    assert store.resolve("g/train-seed=0-2")["id"] == second["id"]
    rows = store.summaries(group="g")
    assert [row["id"] for row in rows] == [first["id"], second["id"]]
    assert rows[0]["metrics"] == {"acc": 0.9} and rows[0]["overrides"] == {"lr": 0.1} and rows[0]["seed"] == 3
    assert store.summaries(group="other") == []
    assert [r["id"] for r in store.summaries(image="lab/tiny:v1")] == [first["id"], second["id"]]
    assert len(store.summaries(image="abab")) == 2 and store.summaries(image="ffff") == []
    assert store.summaries(status="failed") == []
    with pytest.raises(BadInput, match="No run's id starts with"):
        store.resolve("0000000000000000")
    with pytest.raises(BadInput, match="no run named 'nope'"):
        store.resolve("g/nope")
    with pytest.raises(BadInput, match="not a run id"):
        store.resolve("x'; DROP TABLE runs; --")
    store.close()
    reopened = open_store(location, blobs)  # records outlive the process that wrote them
    assert reopened.get(second["id"])["metrics"] == {"acc": 0.8}
    reopened.close()


def scenario_ambiguous_prefix(location: str, blobs: Path) -> None:
    store = open_store(location, blobs)
    finished(store, id="aa" + "0" * 30)
    finished(store, id="aa" + "1" * 30)
    with pytest.raises(BadInput, match="more than one run"):
        store.resolve("aa")
    assert store.resolve("aa1")["id"] == "aa" + "1" * 30
    store.close()


def scenario_finish_is_all_or_nothing(location: str, blobs: Path) -> None:
    store = open_store(location, blobs)
    record = store.begin(make_record(), {"data": {}})
    broken = dict(record, status="succeeded", metrics={"acc": 1.0})
    same = {"path": "a.txt", "sha256": "0" * 64, "size": 1}
    broken["outputs"] = [same, same]  # the same path twice: the outputs insert fails inside the transaction
    with pytest.raises(Exception):  # noqa: B017 - whichever the engine raises for the duplicate key
        store.finish(broken)  # type: ignore[arg-type]
    stored = store.get(record["id"])
    assert stored["status"] == "running" and stored["metrics"] == {}  # nothing of the failed write is there
    assert store.summaries(group="g")[0]["metrics"] == {}
    store.close()


def scenario_lost_recorder(location: str, blobs: Path) -> None:
    store = open_store(location, blobs)
    record = store.begin(make_record(), {"data": {}})
    import socket

    store.db.execute("UPDATE runs SET recorder = ? WHERE id = ?", (f"{socket.gethostname()} 999999999 1", record["id"]))
    assert store.summaries()[0]["status"] == "lost"
    lost = store.get(record["id"])
    assert lost["status"] == "lost" and "ended before the run did" in (lost["error"] or "")
    alive = store.begin(make_record(name="other"), {"data": {}})  # this process: still running
    assert store.get(alive["id"])["status"] == "running"
    store.close()


def _record_many(location: str, blobs: str, count: int) -> None:
    store = open_store(location, Path(blobs))
    for n in range(count):
        finished(store, name="same", metrics={"n": float(n)})
    store.close()


def scenario_two_recorders_at_once(location: str, blobs: Path) -> None:
    open_store(location, blobs).close()  # created once; both processes then write at the same time
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_many, args=(location, str(blobs), 40)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = open_store(location, blobs)
    rows = store.summaries(group="g")
    assert len(rows) == 80 and len({row["name"] for row in rows}) == 80
    assert all(row["status"] == "succeeded" for row in rows)
    store.close()


def scenario_upgrade_and_refuse_newer(location: str, blobs: Path) -> None:
    db = connect(location)
    upgrade(db, latest=1)  # a store written by the first release: no summaries
    assert schema_version(db) == 1
    record = make_record(status="succeeded", metrics={"acc": 0.5})
    db.execute(
        "INSERT INTO runs (id, grp, name, kind, status, image, image_id, started, recorder) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record["id"], "g", "old", "run", "succeeded", "i", "sha256:1", record["started"], "elsewhere 1 1"),
    )
    db.execute(
        "INSERT INTO documents (run_id, record, private) VALUES (?, ?, ?)", (record["id"], json.dumps(record), "{}")
    )
    db.close()
    store = open_store(location, blobs)  # upgraded in place, the old run's metrics moved into their table
    assert schema_version(store.db) == LATEST
    assert store.summaries(group="g")[0]["metrics"] == {"acc": 0.5}
    store.db.execute("UPDATE store_meta SET value = ? WHERE key = 'schema_version'", (str(LATEST + 1),))
    store.close()
    with pytest.raises(EnvironmentProblem, match="newer than this repropack knows"):
        open_store(location, blobs)


SCENARIOS = [
    scenario_round_trip_and_lookup,
    scenario_ambiguous_prefix,
    scenario_finish_is_all_or_nothing,
    scenario_lost_recorder,
    scenario_two_recorders_at_once,
    scenario_upgrade_and_refuse_newer,
]

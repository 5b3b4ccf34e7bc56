"""The run store: what recording costs a run, and `runs` / `compare` over 10,000 recorded runs.

Recording: the recorder's own work around one run (open the store, begin the record, store the output
folder and the log as blobs, finish the record), timed inside a fresh process on a store that already
holds 10,000 runs; the output folder is a realistic one (metrics, run.json, config, a 4 MiB model, a
2,000-line log), with new bytes each time so nothing is deduplicated. Baseline: hashing the same files.
Queries: the whole `repropack` command, against the same command on an empty group (the CLI's own cost),
taking turns."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import Bench, Row, median

RUNS = 10_000

FILL = """
import sys, uuid
from pathlib import Path
from repropack.store.blobs import BlobStore
from repropack.store.database import connect
from repropack.store.store import Store
sys.path.insert(0, {repo!r})
from tests.store_scenarios import make_record
store = Store(connect({db!r}), BlobStore(Path({blobs!r})))
packages = {{f"package{{i}}": "1.0" for i in range(80)}}
for n in range({runs}):
    record = make_record(name=f"train-lr={{n % 10}}-seed={{n}}", group="big", seed=n, started=f"2026-01-01T{{n:08d}}",
                         overrides={{"lr": n % 10 / 10, "hidden": 32}})
    record["software"] = {{"python": "3.11", "packages": packages}}
    store.begin(record, {{"data": {{}}}})
    record.update(status="succeeded", exit_code=0, duration_s=1.0, metrics={{"accuracy": 0.9 + n * 1e-6, "loss": 0.1}})
    store.finish(record)
"""

RECORD = """
import hashlib, os, sys, time, uuid
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.store_scenarios import make_record
folder, log = Path({folder!r}), Path({log!r})
(folder / "model.bin").write_bytes(os.urandom(4 << 20))
clock = time.perf_counter()
for path in sorted(folder.iterdir()):
    hashlib.sha256(path.read_bytes()).hexdigest()
hashed = time.perf_counter() - clock
clock = time.perf_counter()
from repropack.store.outputs import store_folder
from repropack.store.store import Store
store = Store.open()
record = store.begin(make_record(group="recording", name="train"), {{"data": {{}}}})
record["outputs"], _ = store_folder(store.blobs, folder)
with log.open("rb") as handle:
    record["log_sha256"] = store.blobs.put_file(handle)[0]
record.update(status="succeeded", exit_code=0)
store.finish(record)
store.close()
print(time.perf_counter() - clock, hashed)
"""


def scenario(bench: Bench) -> list[Row]:
    from bench.common import REPO

    folder = bench.scratch / "records"
    db, blobs = folder / "runs.sqlite", folder / "blobs"
    folder.mkdir()
    env = {"REPROPACK_STORE": str(db), "REPROPACK_STORE_BLOBS": str(blobs)}
    bench.log(f"records: filling a store with {RUNS} runs (begin + finish each, as a recorder does)")
    bench.run([sys.executable, "-c", FILL.format(repo=str(REPO), db=str(db), blobs=str(blobs), runs=RUNS)], env=env)
    out = folder / "out"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"accuracy": 0.97, "test_loss": 0.11}))
    (out / "run.json").write_text(json.dumps({"packages": {f"p{i}": "1.0" for i in range(200)}}, indent=2))
    (out / "config.json").write_text('{"epochs": 5, "lr": 0.01}\n')
    log = folder / "log.txt"
    log.write_text("".join(f"epoch {n}: loss {1 / (n + 1):.5f}\n" for n in range(2000)))
    rounds = max(9, bench.repeat * 3)
    recording, hashing = [], []
    for _ in range(rounds):
        done = bench.run([sys.executable, "-c", RECORD.format(repo=str(REPO), folder=str(out), log=str(log))], env=env)
        spent, hashed = (float(x) for x in done.stdout.split())
        recording.append(spent)
        hashing.append(hashed)
    rows = [
        Row(
            "records",
            f"recording one run (store of {RUNS} runs; 4 MiB of outputs, 2,000-line log)",
            median(recording),
            "s",
            median(hashing),
            "sha256 of the same files",
            median(recording) / median(hashing),
            "<= 0.2 s",
            median(recording) <= 0.2,
            samples=recording,
            baseline_samples=hashing,
            note="the recorder's work only (begin, blobs, finish), in a fresh process; the run itself not included",
        )
    ]
    cli = bench.repropack()
    for measure, args in (
        ("runs --group (10,000 runs, table)", ["runs", "--group", "big"]),
        ("runs --json (10,000 runs)", ["runs", "--json"]),
        ("compare --group --csv (10,000 runs)", ["compare", "--group", "big", "--csv"]),
        ("compare --group (10,000 runs, table)", ["compare", "--group", "big"]),
    ):
        empty, full = [], []
        for _ in range(rounds):
            empty.append(bench.timed([*cli, "runs", "--group", "no-such-group"], env=env)[0])
            full.append(bench.timed([*cli, *args], env=env)[0])
        rows.append(
            Row(
                "records",
                measure,
                median(full),
                "s",
                median(empty),
                "runs of an empty group",
                median(full) / median(empty),
                "< 0.5 s",
                median(full) < 0.5,
                samples=full,
                baseline_samples=empty,
            )
        )
    subprocess.run(["rm", "-rf", str(folder)], check=False)
    return rows

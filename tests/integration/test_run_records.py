"""Runs as lasting records, on the real engine: sweeps as groups, compare, rerun (also on new data),
outputs after ./out is gone, kills, a damaged blob, verify's runs, and the report in a real browser."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.conftest import Experiment, new_experiment, repropack

pytestmark = pytest.mark.docker

TRAIN = """\
import argparse, json, os, random, time

parser = argparse.ArgumentParser()
for flag in ("--config", "--data", "--output"):
    parser.add_argument(flag)
parser.add_argument("--seed", type=int)
args = parser.parse_args()
config = json.load(open(args.config))
values = [float(line.split(",")[1]) for line in open(args.data).read().splitlines()[1:]]
rng = random.Random(args.seed)
for step in range(6):
    print(f"loss: {1.0 / (step + 1) + rng.random() * 0.01:.5f}", flush=True)
if config.get("sleep"):
    print("sleeping", flush=True)
    time.sleep(config["sleep"])
mean = sum(values) / len(values) * config["scale"]
json.dump({"mean": mean, "noise": rng.random() * 0.001}, open(os.path.join(args.output, "metrics.json"), "w"))
os.makedirs(os.path.join(args.output, "model"), exist_ok=True)
open(os.path.join(args.output, "model", "weights.bin"), "wb").write(bytes(range(256)) * 64)
print(f"mean: {mean:.4f}")
"""


@pytest.fixture(scope="module")
def recorded_image(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[tuple[str, Experiment]]:
    """One tiny experiment with mounted data, loss lines in its log, a sleep knob, built once."""
    root = tmp_path_factory.mktemp("records") / "records"
    experiment = new_experiment(
        root,
        name="records",
        embed=False,
        expected="mean: {value: 6.0, abs_tol: 0.01}",
        train_py=TRAIN,
        config={"sleep": 0},
    )
    spec = experiment.spec.read_text()
    experiment.spec.write_text(
        spec.replace("  file: metrics.json\n", "  file: metrics.json\n  stdout:\n    loss: 'loss: ([0-9.]+)'\n")
    )
    experiment.commit("loss pattern")
    built = experiment.build("records")
    yield str(built["tag"]), experiment


def data_flag(experiment: Experiment) -> str:
    return f"points={experiment.folder / 'data'}"


def runs(*args: str) -> list[dict[str, Any]]:
    listed = repropack("runs", *args, "--json")
    assert listed.code == 0, listed.stderr
    value = json.loads(listed.stdout)
    assert isinstance(value, list)
    return value


def test_a_sweep_is_a_group_compare_exports_it_and_the_report_opens_offline(
    recorded_image: tuple[str, Experiment], tmp_path: Path
) -> None:
    image, experiment = recorded_image
    out = tmp_path / "out"
    swept = repropack(
        "run",
        image,
        "--data",
        data_flag(experiment),
        "--seeds",
        "0-2",
        "--sweep",
        "scale=2,3",
        "--group",
        "sweep1",
        "--output",
        str(out),
        "--json",
    )
    assert swept.code == 0, swept.stderr
    answer = swept.json()
    assert answer["group"] == "sweep1" and len(answer["run_ids"]) == 6
    group = runs("--group", "sweep1")
    assert [r["id"] for r in group] == answer["run_ids"]
    assert all(r["status"] == "succeeded" for r in group)
    assert sorted((r["overrides"]["scale"], r["seed"]) for r in group) == [(s, n) for s in (2, 3) for n in range(3)]
    assert {r["overrides"]["scale"]: r["metrics"]["mean"] for r in group} == {2: 6.0, 3: 9.0}
    assert len({r["name"] for r in group}) == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(r["name"] for r in group)  # one subfolder per run

    exported = repropack("compare", "--group", "sweep1", "--csv")
    assert exported.code == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert list(rows[0]) == ["id", "group", "name", "seed", "scale", "loss", "mean", "noise"]
    assert [row["id"] for row in rows] == answer["run_ids"]
    assert {(row["scale"], float(row["mean"])) for row in rows} == {("2", 6.0), ("3", 9.0)}
    text = repropack("compare", "--group", "sweep1")
    assert "scale*" in text.stdout and "mean*" in text.stdout and "seed*" in text.stdout

    best = runs("--group", "sweep1", "--sort", "-mean")
    assert best[0]["metrics"]["mean"] == 9.0 and best[-1]["metrics"]["mean"] == 6.0

    shown = repropack("show", f"sweep1/{group[0]['name']}", "--json")
    record = shown.json()
    assert record["history"]["loss"][0] > record["history"]["loss"][-1] and len(record["history"]["loss"]) == 6
    assert record["datasets"]["points"]["embedded"] is False and record["datasets"]["points"]["as_frozen"] is True
    assert str(experiment.folder) not in shown.stdout and str(tmp_path) not in shown.stdout  # no host paths

    page = tmp_path / "report.html"
    made = repropack("report", "--group", "sweep1", "--output", str(page))
    assert made.code == 0, made.stderr
    from tests.integration.services import headless_page, png_is_blank

    opened = headless_page(page, tmp_path / "browser")
    assert "<table" in opened.dom and opened.dom.count("<svg") >= 3  # metric plots and the loss curves
    assert group[0]["id"][:10] in opened.dom
    assert not png_is_blank(opened.screenshot)


def test_rerun_is_identical_and_rerun_on_new_data_records_its_digest(
    recorded_image: tuple[str, Experiment], tmp_path: Path
) -> None:
    image, experiment = recorded_image
    first = repropack(
        "run",
        image,
        "--data",
        data_flag(experiment),
        "--seed",
        "4",
        "--group",
        "re",
        "--json",
        "--output",
        str(tmp_path / "a"),
    )
    assert first.code == 0, first.stderr
    original = repropack("show", first.json()["id"], "--json").json()

    again = repropack("rerun", original["id"][:8], "--json")
    assert again.code == 0, again.stderr
    copy = repropack("show", again.json()["id"], "--json").json()
    assert copy["metrics"] == original["metrics"] and copy["kind"] == "rerun" and copy["group"] == "re"
    assert copy["seed"] == 4 and copy["datasets"] == original["datasets"]

    new = tmp_path / "new-data"
    new.mkdir()
    (new / "points.csv").write_text("x,y\n1,4\n2,5\n3,6\n4,5\n")  # mean 5: other data, on purpose
    moved = repropack("rerun", original["id"], "--data", f"points={new}", "--json")
    assert moved.code == 0, moved.stderr
    on_new = repropack("show", moved.json()["id"], "--json").json()
    assert on_new["metrics"]["mean"] == pytest.approx(10.0)
    assert on_new["datasets"]["points"]["as_frozen"] is False
    assert on_new["datasets"]["points"]["sha256"] != original["datasets"]["points"]["sha256"]

    changed = repropack("rerun", original["id"], "--set", "scale=3", "--json")
    assert changed.code == 0, changed.stderr
    assert repropack("show", changed.json()["id"], "--json").json()["metrics"]["mean"] == pytest.approx(9.0)


def test_outputs_outlive_the_output_folder_and_a_damaged_blob_is_never_served(
    recorded_image: tuple[str, Experiment], tmp_path: Path, run_store: Path
) -> None:
    image, experiment = recorded_image
    out = tmp_path / "out"
    made = repropack("run", image, "--data", data_flag(experiment), "--output", str(out), "--json")
    assert made.code == 0, made.stderr
    run_id = made.json()["id"]
    weights = (out / "model" / "weights.bin").read_bytes()
    subprocess.run(["rm", "-rf", str(out)], check=True)

    back = tmp_path / "back"
    got = repropack("outputs", run_id, "--output", str(back))
    assert got.code == 0, got.stderr
    assert (back / "model" / "weights.bin").read_bytes() == weights
    assert {p.name for p in back.iterdir()} >= {"metrics.json", "run.json", "model"}
    log = repropack("logs", run_id)
    assert log.code == 0 and "loss: " in log.stdout and "mean: 6.0000" in log.stdout

    record = repropack("show", run_id, "--json").json()
    digest = next(f["sha256"] for f in record["outputs"] if f["path"] == "model/weights.bin")
    blob = run_store / "blobs" / "sha256" / digest[:2] / digest[2:]
    os.chmod(blob, 0o644)
    blob.write_bytes(b"\xff" + weights[1:])  # one byte changed on disk
    damaged = repropack("outputs", run_id, "--output", str(tmp_path / "again"))
    assert damaged.code == 3
    assert digest in damaged.stderr and "damaged" in damaged.stderr
    assert not (tmp_path / "again" / "model" / "weights.bin").exists()
    blob.write_bytes(weights)  # put back: other tests share the store


def test_a_killed_container_and_a_killed_recorder_never_leave_a_running_record(
    recorded_image: tuple[str, Experiment], tmp_path: Path
) -> None:
    image, experiment = recorded_image
    client = docker.from_env()

    def start(group: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "repropack",
                "run",
                image,
                "--data",
                data_flag(experiment),
                "--set",
                "sleep=60",
                "--group",
                group,
                "--output",
                str(tmp_path / group),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_running(group: str) -> list[Any]:
        for _ in range(120):
            containers = [c for c in client.containers.list() if c.image.tags and c.image.tags[0] == image]
            found = runs("--group", group)
            if containers and found and found[0]["status"] == "running":
                return containers
            time.sleep(0.5)
        pytest.fail("the run did not start")

    recorder = start("killed")
    wait_for_running("killed")[0].kill()  # docker kill: SIGKILL to the container mid-run
    recorder.communicate(timeout=120)
    assert recorder.returncode != 0
    killed = runs("--group", "killed")
    assert [r["status"] for r in killed] == ["killed"] and killed[0]["exit_code"] == 137

    recorder = start("lost")
    containers = wait_for_running("lost")
    os.kill(recorder.pid, signal.SIGKILL)  # kill -9 of repropack itself: nothing can finish the record
    recorder.communicate(timeout=60)
    for container in containers:
        container.kill()
    lost = runs("--group", "lost")
    assert [r["status"] for r in lost] == ["lost"]
    shown = repropack("show", lost[0]["id"])
    assert "ended before the run did" in shown.stdout

    recorder = start("stopped")
    wait_for_running("stopped")
    recorder.send_signal(signal.SIGTERM)  # a polite stop: the record ends as killed, the container is removed
    recorder.communicate(timeout=120)
    assert [r["status"] for r in runs("--group", "stopped")] == ["killed"]
    for _ in range(20):
        if not [c for c in client.containers.list() if c.image.tags and c.image.tags[0] == image]:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the container outlived its recorder's SIGTERM")


def test_verify_records_its_runs_in_a_group(recorded_image: tuple[str, Experiment]) -> None:
    image, experiment = recorded_image
    checked = repropack(
        "verify", image, "--data", data_flag(experiment), "--seeds", "0,1", "--group", "checks", "--json"
    )
    assert checked.code == 0, checked.stdout + checked.stderr
    report = checked.json()
    assert report["reproduced"] is True and len(report["run_ids"]) == 2
    recorded = runs("--group", "checks")
    assert [r["id"] for r in recorded] == report["run_ids"]
    assert {r["kind"] for r in recorded} == {"verify"} and [r["seed"] for r in recorded] == [0, 1]
    record = repropack("show", report["run_ids"][0], "--json").json()
    assert record["requirements"]["memory"] == "8g"  # verify's sandbox limit is what the run asked for


def test_logs_follow_prints_a_running_runs_log_until_it_ends(recorded_image: tuple[str, Experiment]) -> None:
    image, experiment = recorded_image
    recorder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "repropack",
            "run",
            image,
            "--data",
            data_flag(experiment),
            "--set",
            "sleep=4",
            "--group",
            "follow",
            "--output",
            "/tmp/repropack-follow-out",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            found = runs("--group", "follow")
            if found and found[0]["status"] == "running":
                break
            time.sleep(0.25)
        else:
            pytest.fail("the run did not start")
        followed = repropack("logs", found[0]["id"], "--follow", timeout=120)
        assert recorder.wait(60) == 0
    finally:
        recorder.kill()
        subprocess.run(["rm", "-rf", "/tmp/repropack-follow-out"], check=False)
    assert followed.code == 0, followed.stderr
    assert "sleeping" in followed.stdout and "mean: 6.0000" in followed.stdout  # before and after the wait
    assert followed.stdout == repropack("logs", found[0]["id"]).stdout  # the same log as the one kept


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_disk_ends_the_record_as_failed_and_names_it(
    recorded_image: tuple[str, Experiment], tmp_path: Path
) -> None:
    image, experiment = recorded_image
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(full)], check=True)
    try:
        env = {"REPROPACK_STORE": str(tmp_path / "runs.sqlite"), "REPROPACK_STORE_BLOBS": str(full)}
        made = repropack(
            "run", image, "--data", data_flag(experiment), "--group", "full", "--output", str(tmp_path / "out"), env=env
        )
        assert made.code == 3, made.stdout + made.stderr
        assert "No space left on device" in made.stderr and "Traceback" not in made.stderr
        listed = json.loads(repropack("runs", "--group", "full", "--json", env=env).stdout)
        assert [r["status"] for r in listed] == ["failed"]  # ended, not left running
        shown = repropack("show", listed[0]["id"], "--json", env=env).json()
        assert "No space left on device" in str(shown["error"]) and shown["metrics"]["mean"] == 6.0
        partial = list((full / "tmp").iterdir()) if (full / "tmp").exists() else []
        assert partial == []  # no half-written blob left behind
    finally:
        subprocess.run(["umount", str(full)], check=False)

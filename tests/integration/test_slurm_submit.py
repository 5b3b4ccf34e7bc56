"""repropack submit on a real one-node Slurm cluster with the docker runtime: a 3-seed array recorded as a
group, a failing task recorded with its exit code and log, and a cancelled array."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Experiment, new_experiment, repropack
from tests.integration.services import SlurmCluster, slurm_cluster

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[tuple[str, Experiment]]:
    experiment = new_experiment(tmp_path_factory.mktemp("submit") / "submit", name="submitted", config={"sleep": 0})
    yield str(experiment.build("submitted")["tag"]), experiment


def cli(cluster: SlurmCluster, *args: str) -> tuple[int, str, str]:
    done = repropack(*args, env=cluster.env)
    return done.code, done.stdout, done.stderr


def test_a_seed_array_is_recorded_as_one_group(cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path) -> None:
    tag, _experiment = image
    code, out, err = cli(
        cluster,
        "submit",
        tag,
        "--to",
        "slurm",
        "--seeds",
        "0-2",
        "--group",
        "array3",
        "--output",
        str(tmp_path / "shared"),
        "--json",
    )
    assert code == 0, err
    submitted = json.loads(out)
    assert submitted["job"] and len(submitted["run_ids"]) == 3
    script = Path(submitted["script"]).read_text()
    assert "#SBATCH --array=0-2%3" in script and "docker run --rm --init" in script
    code, out, err = cli(cluster, "wait", "array3", "--timeout", "180", "--json")
    assert code == 0, err
    tasks = json.loads(out)["tasks"]
    assert [(t["seed"], t["state"], t["exit_code"]) for t in tasks] == [
        (0, "succeeded", 0),
        (1, "succeeded", 0),
        (2, "succeeded", 0),
    ]
    listed = json.loads(repropack("runs", "--group", "array3", "--json", env=cluster.env).stdout)
    assert [r["status"] for r in listed] == ["succeeded"] * 3
    assert {r["metrics"]["hashseed"] for r in listed} == {0.0, 1.0, 2.0} and {r["metrics"]["mean"] for r in listed} == {
        6.0
    }
    seed_one = next(r["id"] for r in listed if r["seed"] == 1)
    back = repropack("outputs", seed_one, "--output", str(tmp_path / "back"), env=cluster.env)
    assert back.code == 0 and json.loads((tmp_path / "back" / "metrics.json").read_text())["hashseed"] == 1


def test_a_failing_task_is_recorded_failed_with_its_log(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path
) -> None:
    tag, _ = image
    code, _out, err = cli(
        cluster,
        "submit",
        tag,
        "--seeds",
        "0",
        "--sweep",
        "crash=false,true",
        "--group",
        "crashy",
        "--output",
        str(tmp_path / "shared"),
    )
    assert code == 0, err
    code, out, err = cli(cluster, "wait", "crashy", "--timeout", "180", "--json")
    assert code == 4
    states = {t["name"]: (t["state"], t["exit_code"]) for t in json.loads(out)["tasks"]}
    assert states == {"train-crash=False-seed=0": ("succeeded", 0), "train-crash=True-seed=0": ("failed", 4)}
    failed = next(
        r
        for r in json.loads(repropack("runs", "--group", "crashy", "--json", env=cluster.env).stdout)
        if r["status"] == "failed"
    )
    log = repropack("logs", failed["id"], env=cluster.env)
    assert "about to fail" in log.stdout


def test_a_cancelled_array_leaves_no_container_and_is_recorded_killed(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path
) -> None:
    import docker

    tag, _ = image
    code, _out, err = cli(
        cluster,
        "submit",
        tag,
        "--set",
        "sleep=120",
        "--seeds",
        "0-1",
        "--group",
        "cancelled",
        "--output",
        str(tmp_path / "shared"),
    )
    assert code == 0, err
    client = docker.from_env()
    for _ in range(120):
        if any(c.name.startswith("repropack-") for c in client.containers.list()):
            break
        time.sleep(0.5)
    else:
        pytest.fail("no task started")
    code, _out, err = cli(cluster, "cancel", "cancelled")
    assert code == 0, err
    for _ in range(60):
        if not any(c.name.startswith("repropack-") for c in client.containers.list()):
            break
        time.sleep(0.5)
    else:
        pytest.fail("a cancelled task left its container running")
    listed = json.loads(repropack("runs", "--group", "cancelled", "--json", env=cluster.env).stdout)
    assert [r["status"] for r in listed] == ["killed", "killed"]
    assert os.environ.get("REPROPACK_STORE")  # the session's own store, not the user's

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
    for _ in range(240):  # a task's experiment is under way: its container runs and it said so
        if any(c.name.startswith("repropack-") for c in client.containers.list()) and any(
            "sleeping" in log.read_text() for log in (tmp_path / "shared").glob("task-*/log")
        ):
            break
        time.sleep(0.25)
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
    started = [r for r in listed if r["exit_code"] == 143]  # its trap ran: filed with its exit code and log
    assert started, listed
    assert "sleeping" in repropack("logs", started[0]["id"], env=cluster.env).stdout
    assert os.environ.get("REPROPACK_STORE")  # the session's own store, not the user's


def test_a_two_by_two_sweep_is_one_array_of_four(cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path) -> None:
    tag, _ = image
    shared = tmp_path / "shared"
    code, _out, err = cli(
        cluster, "submit", tag, "--sweep", "scale=1,2", "--sweep", "sleep=0,1", "--group", "grid",
        "--output", str(shared), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "#SBATCH --array=0-3%4" in (shared / "submit.sbatch").read_text()
    code, _out, err = cli(cluster, "wait", "grid", "--timeout", "240", "--json")
    assert code == 0, err
    listed = json.loads(repropack("runs", "--group", "grid", "--json", env=cluster.env).stdout)
    got = sorted((r["overrides"]["scale"], r["overrides"]["sleep"], r["metrics"]["mean"]) for r in listed)
    assert got == [(1, 0, 3.0), (1, 1, 3.0), (2, 0, 6.0), (2, 1, 6.0)]


def test_resubmit_runs_only_the_failed_tasks_again(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path
) -> None:
    tag, _ = image
    shared = tmp_path / "shared"
    code, _out, err = cli(
        cluster, "submit", tag, "--sweep", "crash=false,true", "--group", "again", "--output", str(shared)
    )
    assert code == 0, err
    assert cli(cluster, "wait", "again", "--timeout", "180")[0] == 4
    first = (shared / "task-0" / "ended").read_text()
    code, out, err = cli(cluster, "resubmit", "again", "--json")
    assert code == 0, err
    assert json.loads(out)["tasks"] == [1]
    code, out, err = cli(cluster, "wait", "again", "--timeout", "180", "--json")
    assert code == 4  # it crashes again: the code did not change
    tasks = json.loads(out)["tasks"]
    assert [(t["index"], t["state"], t["attempt"]) for t in tasks] == [(0, "succeeded", 1), (1, "failed", 2)]
    assert (shared / "task-0" / "ended").read_text() == first  # the task that succeeded did not run again
    assert (shared / "task-1.attempt-1" / "log").is_file()  # the first attempt's files are kept
    listed = json.loads(repropack("runs", "--group", "again", "--json", env=cluster.env).stdout)
    assert sorted(r["status"] for r in listed) == ["failed", "failed", "succeeded"]  # every attempt is a record
    code, out, _ = cli(cluster, "resubmit", "again")
    assert code == 0  # still failing: submitted once more, nothing refused


def _kill_outright(job: str) -> None:
    """What a node that disappears looks like from the login node: the task's batch script dies at once
    (SIGKILL: no trap runs, no exit code is written) and Slurm no longer holds the task."""
    import signal

    script = f"job{int(job):05d}/slurm_script"
    killed = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and script in (entry / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except OSError:
            continue
    assert killed, f"no batch script of job {job} was running"


def _remove_containers(prefix: str) -> None:
    import docker

    for container in docker.from_env().containers.list(all=True):
        if container.name.startswith(prefix):
            container.remove(force=True)


def _started(folder: Path, timeout: float = 120) -> None:
    for _ in range(int(timeout * 4)):
        if (folder / "started").exists():
            return
        time.sleep(0.25)
    pytest.fail(f"{folder.name} never started")


def test_a_lost_task_is_recorded_lost_and_retries_requeue_it(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path
) -> None:
    tag, _ = image
    shared = tmp_path / "shared"
    code, out, err = cli(
        cluster, "submit", tag, "--set", "sleep=6", "--group", "lossy", "--retries", "1", "--output", str(shared),
        "--json",
    )  # fmt: skip
    assert code == 0, err
    job = json.loads(out)["job"]
    _started(shared / "task-0")
    try:
        _kill_outright(job)
        code, out, err = cli(cluster, "wait", "lossy", "--timeout", "180", "--json")
    finally:
        _remove_containers(f"repropack-{job}-")
    assert code == 0, out + err  # the second attempt succeeded
    tasks = json.loads(out)["tasks"]
    assert [(t["state"], t["attempt"]) for t in tasks] == [("succeeded", 2)]
    listed = json.loads(repropack("runs", "--group", "lossy", "--json", env=cluster.env).stdout)
    statuses = sorted(r["status"] for r in listed)
    assert statuses == ["lost", "succeeded"]
    lost = next(r for r in listed if r["status"] == "lost")
    assert "no longer holds task" in repropack("show", lost["id"], env=cluster.env).stdout


def test_a_lost_task_without_retries_stays_lost(cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path) -> None:
    tag, _ = image
    shared = tmp_path / "shared"
    code, out, err = cli(
        cluster, "submit", tag, "--set", "sleep=60", "--group", "gone", "--output", str(shared), "--json"
    )
    assert code == 0, err
    job = json.loads(out)["job"]
    _started(shared / "task-0")
    try:
        _kill_outright(job)
        code, out, _ = cli(cluster, "wait", "gone", "--timeout", "60", "--json")
    finally:
        _remove_containers(f"repropack-{job}-")
    assert code == 4
    assert [(t["state"], t["attempt"]) for t in json.loads(out)["tasks"]] == [("lost", 1)]


def test_verify_on_slurm_runs_every_seed_there_and_all_must_report(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path
) -> None:
    tag, _ = image
    code, out, err = cli(
        cluster, "verify", tag, "--seeds", "0-1", "--on", "slurm", "--group", "checked", "--output",
        str(tmp_path / "shared"), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["reproduced"] is True and report["metrics"]["mean"]["values"] == [6.0, 6.0]
    assert [(t["seed"], t["state"]) for t in report["tasks"]] == [(0, "succeeded"), (1, "succeeded")]
    listed = json.loads(repropack("runs", "--group", "checked", "--json", env=cluster.env).stdout)
    assert sorted(r["kind"] for r in listed) == ["verify", "verify"]


def test_an_unknown_partition_or_no_sbatch_is_refused_and_nothing_is_recorded(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path
) -> None:
    tag, _ = image
    code, _out, err = cli(
        cluster, "submit", tag, "--partition", "nosuch", "--group", "refused", "--output", str(tmp_path / "a")
    )
    assert code == 2 and "sbatch refused the job" in err and "partition" in err.lower(), err
    no_slurm = {**cluster.env, "PATH": str(Path(os.__file__).parent)}  # a login node without Slurm's tools
    absent = repropack("submit", tag, "--group", "refused", "--output", str(tmp_path / "b"), env=no_slurm)
    assert absent.code == 3 and "'sbatch' is not installed" in absent.stderr and "Traceback" not in absent.stderr
    swept = cli(cluster, "submit", tag, "--sweep", "nosuchkey=1,2", "--group", "refused")
    assert swept[0] == 2 and "nosuchkey" in swept[2]
    assert json.loads(repropack("runs", "--group", "refused", "--json", env=cluster.env).stdout) == []


def _pyxis() -> bool:
    import shutil
    import subprocess

    srun = shutil.which("srun")
    if srun is None:
        return False
    shown = subprocess.run([srun, "--help"], capture_output=True, text=True, check=False, timeout=30).stdout
    return "--container-image" in shown


@pytest.mark.parametrize(
    "runtime",
    [
        pytest.param(
            "apptainer",
            marks=pytest.mark.skipif(
                __import__("shutil").which("apptainer") is None, reason="apptainer is not installed here"
            ),
        ),
        pytest.param("pyxis", marks=pytest.mark.skipif(not _pyxis(), reason="Slurm here has no pyxis plugin")),
    ],
)
def test_the_other_runtimes_run_a_task_where_they_are_installed(
    cluster: SlurmCluster, image: tuple[str, str], tmp_path: Path, runtime: str
) -> None:
    tag, _ = image
    group = f"by-{runtime}"
    code, _out, err = cli(
        cluster, "submit", tag, "--runtime", runtime, "--group", group, "--output", str(tmp_path / "shared")
    )
    assert code == 0, err
    code, out, err = cli(cluster, "wait", group, "--timeout", "600", "--json")
    assert code == 0, out + err

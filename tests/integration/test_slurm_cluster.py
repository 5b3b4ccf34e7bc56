"""The one-node Slurm cluster helper itself, for real: batch jobs, job arrays and cancellation on a cluster the
tests start and stop, and nothing left running afterwards.

No Docker engine needed; it needs Debian's ``slurm-wlm`` and ``munge`` packages (``bash .ci/run``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import services
from tests.integration.services import SlurmCluster, slurm_cluster, slurm_leftovers

JOB_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


def slurm(cluster: SlurmCluster, *args: str, timeout: float = JOB_TIMEOUT_S) -> str:
    """Run a Slurm client against ``cluster``; its stdout (the command must succeed)."""
    done = subprocess.run(args, env={**os.environ, **cluster.env}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}: {done.stderr}"
    return done.stdout


def queued(cluster: SlurmCluster) -> list[str]:
    """The job ids squeue lists (pending, running or completing)."""
    return slurm(cluster, "squeue", "-h", "-o", "%i").split()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cluster_describes_this_host(cluster: SlurmCluster) -> None:
    assert cluster.conf.is_file()
    assert cluster.env["SLURM_CONF"] == str(cluster.conf)
    assert cluster.cpus == os.cpu_count()
    lines = slurm(cluster, "sinfo", "-h", "-o", "%P %N %c %T").split("\n")
    assert lines[0].split() == [f"{cluster.partition}*", cluster.node, str(cluster.cpus), "idle"]
    key = cluster.conf.parent / "munge.key"
    assert key.stat().st_mode & 0o777 == 0o400
    assert key.stat().st_uid == os.geteuid()


def test_sbatch_wait_runs_a_script(cluster: SlurmCluster, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/sh\necho written > "$PWD/written.txt"; echo "job $SLURM_JOB_ID"\n')
    out = slurm(
        cluster, "sbatch", "--wait", "--parsable", f"--chdir={tmp_path}", f"--output={tmp_path}/%j.out", str(script)
    )
    job_id = out.strip()
    assert job_id.isdigit(), out
    assert (tmp_path / f"{job_id}.out").read_text() == f"job {job_id}\n"
    assert (tmp_path / "written.txt").read_text() == "written\n"


def test_job_array_runs_every_task(cluster: SlurmCluster, tmp_path: Path) -> None:
    slurm(
        cluster,
        "sbatch",
        "--wait",
        "--array=0-2%2",
        f"--chdir={tmp_path}",
        "--output=/dev/null",
        "--wrap",
        'echo "$SLURM_ARRAY_TASK_ID" > "task-$SLURM_ARRAY_TASK_ID"',
    )
    assert sorted(p.name for p in tmp_path.glob("task-*")) == ["task-0", "task-1", "task-2"]
    for task in range(3):
        assert (tmp_path / f"task-{task}").read_text() == f"{task}\n"


def test_scancel_ends_a_running_job(cluster: SlurmCluster, tmp_path: Path) -> None:
    job_id = slurm(cluster, "sbatch", "--parsable", f"--chdir={tmp_path}", "--output=/dev/null", "--wrap", "sleep 300")
    job_id = job_id.strip()
    deadline = time.monotonic() + 10
    while slurm(cluster, "squeue", "-h", "-j", job_id, "-o", "%T").strip() != "RUNNING":
        assert time.monotonic() < deadline, "the sleep job never started"
        time.sleep(0.2)
    slurm(cluster, "scancel", job_id)
    deadline = time.monotonic() + 10
    while job_id in queued(cluster):
        assert time.monotonic() < deadline, f"job {job_id} still queued 10 s after scancel"
        time.sleep(0.2)


def test_exit_stops_everything_even_when_the_body_raises(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), slurm_cluster(tmp_path / "slurm") as running:
        pids = running.pids
        assert sorted(pids) == ["munged", "slurmctld", "slurmd"]
        assert all(alive(pid) for pid in pids.values())
        slurm(running, "sbatch", f"--chdir={tmp_path}", "--output=/dev/null", "--wrap", "sleep 300")
        deadline = time.monotonic() + 10
        while len(slurm_leftovers(tmp_path / "slurm")) <= len(pids):  # slurmstepd and the job's own processes
            assert time.monotonic() < deadline, "the sleep job never started"
            time.sleep(0.2)
        _ = 1 / 0
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert slurm_leftovers(tmp_path / "slurm") == []


def test_missing_programs_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(services, "SLURM_SBIN", str(tmp_path))
    missing = r"'munged' \(Debian's munge package\).*apt-get install"
    with pytest.raises(RuntimeError, match=missing), slurm_cluster(tmp_path / "slurm"):
        pass
    assert not (tmp_path / "slurm").exists()  # nothing written before the check

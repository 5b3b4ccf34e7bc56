"""Runs on a cluster: what repropack adds to each task, and how well a job array fills the machine.

Both on the tests' real one-node Slurm cluster (this machine: 2 CPUs, so 2 tasks at a time), with the
docker runtime and a stdlib-only experiment whose training sleeps for a set time.

Per-task overhead: ``submit`` of one task to ``wait`` returning with its record filed, minus the
container's own time (the task's started and ended markers, written around ``docker run``). Target: at
most 3 s. Array: 20 tasks of a 5 s sleep from ``submit`` to ``wait`` done, against the ideal of
10 rounds of 5 s (2 CPUs). Target: within 1.3x.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from bench.common import PREFIX, Bench, Row, median

TASKS, SLEEP = 20, 5


def _seconds(text: str) -> float:
    return datetime.datetime.fromisoformat(text.strip()).timestamp()


def scenario(bench: Bench) -> list[Row]:
    from bench.common import REPO

    sys.path.insert(0, str(REPO))
    from tests.integration.conftest import new_experiment
    from tests.integration.services import slurm_cluster

    folder = bench.scratch / "cluster"
    store = {"REPROPACK_STORE": str(folder / "runs.sqlite"), "REPROPACK_STORE_BLOBS": str(folder / "blobs")}
    experiment = new_experiment(folder / "experiment", name="sleeper", config={"sleep": 0}, env=store)
    tag = f"{PREFIX}cluster:{os.getpid()}"
    bench.images.append(tag)
    bench.run([*bench.repropack(), "build", str(experiment.spec), "--json", "--tag", tag], env=store)
    cli = bench.repropack()
    with slurm_cluster(folder / "slurm") as cluster:
        env = {**store, **cluster.env}
        overheads, totals = [], []
        for n in range(max(3, bench.repeat)):
            shared = folder / f"one-{n}"
            seconds, _ = bench.timed(
                [*cli, "submit", tag, "--group", f"one-{n}", "--runtime", "docker", "--output", shared], env=env
            )
            waited, _ = bench.timed([*cli, "wait", f"one-{n}", "--timeout", "300"], env=env)
            task = shared / "task-0"
            inside = _seconds((task / "ended").read_text()) - _seconds((task / "started").read_text())
            totals.append(seconds + waited)
            overheads.append(seconds + waited - inside)
        bench.log(f"cluster: per-task overhead {overheads} s (whole {totals} s)")
        arrays = []
        for n in range(max(1, bench.repeat - 1)):
            shared = folder / f"array-{n}"
            group = f"array-{n}"
            seconds, _ = bench.timed(
                [*cli, "submit", tag, "--seeds", f"0-{TASKS - 1}", "--set", f"sleep={SLEEP}", "--group", group,
                 "--runtime", "docker", "--output", shared],
                env=env,
            )  # fmt: skip
            waited, done = bench.timed([*cli, "wait", group, "--timeout", "900", "--json"], env=env)
            states = [task["state"] for task in json.loads(done.stdout)["tasks"]]
            assert states == ["succeeded"] * TASKS, states
            arrays.append(seconds + waited)
        bench.log(f"cluster: {TASKS}-task arrays {arrays} s")
    ideal = TASKS / cluster.cpus * SLEEP
    return [
        Row(
            "cluster",
            "per-task overhead (submit to record filed, minus the container's time)",
            median(overheads),
            "s",
            target="<= 3 s",
            ok=median(overheads) <= 3.0,
            samples=overheads,
            note="one-node Slurm, docker runtime; sbatch, scheduling, the container's start, wait's 1 s poll",
        ),
        Row(
            "cluster",
            f"{TASKS}-task array of a {SLEEP} s task on {cluster.cpus} CPUs",
            median(arrays),
            "s",
            ideal,
            f"ideal ({TASKS // cluster.cpus} rounds of {SLEEP} s)",
            median(arrays) / ideal,
            "<= 1.3x",
            median(arrays) / ideal <= 1.3,
            samples=arrays,
        ),
    ]

"""``verify --seeds ... --on slurm``: the seeds run as one group on the cluster (the integrity checks ran
here first), and every seed must report: a task that failed, was killed or was lost leaves its metrics
missing, so the mean is not computed and the result is not reproduced."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repropack.cluster.kubernetes import KubeOptions
from repropack.cluster.slurm import SlurmOptions, default_runtime
from repropack.errors import BadInput
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunRequest
from repropack.store.store import Store


@dataclass(frozen=True)
class OnCluster:
    to: str = "slurm"
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    runtime: str | None = None
    retries: int = 0
    output: Path | None = None  # the shared folder (default: one under the store's blob folder)
    timeout: float | None = None
    kube: KubeOptions | None = None  # --on kubernetes


def cluster_runs(
    store: Store,
    loaded: ImageManifest,
    image_ref: str,
    command: str,
    seeds: list[int],
    on: OnCluster,
    group: str,
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The runs of the seeds on the cluster (as the local verify loop makes them), each task's state and
    the group's name."""
    from repropack.cluster.tasks import submit_group, wait

    if not seeds:
        raise BadInput("--on runs the seeds on a cluster: give them with --seeds (for example --seeds 0-9).")
    name = group or f"verify-{loaded.manifest['experiment']['name']}-{uuid.uuid4().hex[:8]}"
    folder = on.output if on.output is not None else store.blobs.root / "clusters" / name
    requests = [RunRequest(command=command, seed=seed) for seed in seeds]
    job: str | None
    if on.kube is not None:
        from repropack.cluster.kube_tasks import submit_job
        from repropack.cluster.kubernetes import job_name

        submit_job(store, loaded, image_ref, requests, folder, name, on.kube, dry_run=False, kind="verify")
        job = f"{on.kube.namespace}/{job_name(name)}"
    else:
        job = submit_group(
            store,
            loaded,
            image_ref,
            requests,
            folder,
            name,
            on.slurm,
            runtime=on.runtime or default_runtime(),
            retries=on.retries,
            dry_run=False,
            kind="verify",
        ).job
    say(f"submitted job {job}: {len(seeds)} seed(s) in group {name}; waiting for every one to report")
    states = wait(store, name, on.timeout, poll=2.0)
    runs = []
    for state in states:
        record = store.get(state.run_id)
        runs.append(
            {
                "run_id": record["id"],
                "seed": record["seed"],
                "metrics": record["metrics"] if state.state == "succeeded" else {},
                "duration_s": record["duration_s"],
                "record": {**record["hardware"], **record["software"]},
            }
        )
    return runs, [state.as_dict() for state in states], name

"""Slurm: the sbatch script (one job array, a concurrency limit) and the cluster's own commands.

The script is plain bash a user can read, written to the group's folder before anything is submitted
(``--dry-run`` stops there). Status never comes from ``sacct`` (many clusters do not run slurmdbd): each
task writes marker files to the shared folder (see :mod:`repropack.cluster.tasks`).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from repropack.errors import BadInput, EnvironmentProblem
from repropack.runtime.layout import ENTRYPOINT

SCRIPT = "submit.sbatch"
TIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")  # Slurm's minutes, MM:SS, HH:MM:SS, D-HH(:MM(:SS))
MEMORY = re.compile(r"^[1-9]\d*[KMGT]?$", re.IGNORECASE)


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    memory: str | None = None
    gpus: int = 0
    concurrency: int = 8  # tasks of the array running at once (--array=0-N%K)

    def __post_init__(self) -> None:
        if self.time is not None and not TIME.match(self.time):
            raise BadInput(f"--time takes Slurm's form (MINUTES, HH:MM:SS or D-HH:MM), not '{self.time}'.")
        if self.memory is not None and not MEMORY.match(self.memory):
            raise BadInput(f"--memory takes a size like 8G or 512M, not '{self.memory}'.")
        for name, value in (("--partition", self.partition), ("--account", self.account)):
            if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
                raise BadInput(f"{name} takes a Slurm name (letters, digits, _ . -), not '{value}'.")

    def directives(self) -> list[str]:
        lines = []
        if self.partition:
            lines.append(f"--partition={self.partition}")
        if self.account:
            lines.append(f"--account={self.account}")
        if self.time:
            lines.append(f"--time={self.time}")
        if self.memory:
            lines.append(f"--mem={self.memory.upper()}")
        if self.gpus:
            lines.append(f"--gpus-per-task={self.gpus}")
        return lines


RUNTIMES = ("docker", "apptainer", "pyxis")
PINNED = re.compile(r"^(?P<registry>[^/]+\.[^/]*|[^/]+:\d+|localhost)/(?P<path>[^@]+)@sha256:[0-9a-f]{64}$")


def check_runtime(runtime: str | None) -> None:
    if runtime is not None and runtime not in RUNTIMES:
        raise BadInput(f"--runtime takes {', '.join(RUNTIMES)}, not '{runtime}'.")


def default_runtime() -> str:
    """apptainer where it is installed (most university clusters), docker otherwise."""
    return "apptainer" if shutil.which("apptainer") else "docker"


def image_source(runtime: str, image: str, image_id: str) -> str:
    """Where a node's runtime takes the image from: the registry by digest when the reference is one,
    else the node's own Docker engine (single-owner nodes)."""
    pinned = PINNED.match(image)
    if runtime == "apptainer":
        return f"docker://{image}" if pinned else f"docker-daemon://{image}"
    if runtime == "pyxis":  # enroot writes REGISTRY#PATH
        return f"{pinned['registry']}#{pinned['path']}@{image.rsplit('@', 1)[1]}" if pinned else f"dockerd://{image}"
    return image_id


def render_script(
    *,
    folder: Path,
    tasks: int,
    image: str,
    image_id: str,
    experiment: str,
    group: str,
    options: SlurmOptions,
    runtime: str = "docker",
) -> str:
    if re.search(r"\s", str(folder)):
        raise BadInput(f"--output {folder} holds a space; sbatch's --output cannot.", hint="Name a folder without.")
    check_runtime(runtime)
    if runtime != "docker" and not PINNED.match(image) and not re.fullmatch(r"[\w./:-]+", image):
        raise BadInput(
            f"The image '{image}' cannot be named to {runtime}.", hint="Submit a tag or REGISTRY/REPO@sha256."
        )
    source = resources.files("repropack.templates").joinpath("slurm.sbatch.j2").read_text()
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(source)
    return template.render(
        tasks=tasks,
        concurrency=max(1, min(options.concurrency, tasks)),
        folder=shlex.quote(str(folder)),
        image=image,
        image_id=shlex.quote(image_id),
        experiment=experiment,
        group=group,
        job_name=re.sub(r"[^A-Za-z0-9_.-]", "_", f"repropack-{group}")[:60],
        directives=options.directives(),
        gpus=options.gpus,
        runtime=runtime,
        source=shlex.quote(image_source(runtime, image, image_id)),
        entrypoint=shlex.join(ENTRYPOINT),
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise EnvironmentProblem(
            f"'{name}' is not installed here, so nothing can be submitted to Slurm.",
            hint="Run repropack submit on a login node of the cluster, or use --dry-run to write the script only.",
        )
    return found


def submit(script: Path, indexes: list[int] | None = None) -> str:
    """``sbatch --parsable [--array=I,J] SCRIPT`` (the script's own array unless ``indexes``); the job id."""
    array = [f"--array={','.join(map(str, indexes))}"] if indexes else []
    done = subprocess.run(
        [_tool("sbatch"), "--parsable", *array, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        reason = message[-1] if message else f"exit status {done.returncode}"
        bad = "partition" in reason.lower() or "account" in reason.lower()
        error = BadInput if bad else EnvironmentProblem
        raise error(f"sbatch refused the job: {reason}", hint=f"The script is kept in {script}.")
    return done.stdout.strip().split(";")[0]


def cancel(jobs: list[str]) -> None:
    subprocess.run([_tool("scancel"), *jobs], capture_output=True, text=True, timeout=60, check=False)


def queued(jobs: list[str]) -> set[str] | None:
    """The array tasks (``JOB_INDEX``) Slurm still holds, pending or running: ``squeue -r``, not ``sacct``.
    None when squeue cannot answer (then nothing is taken for lost)."""
    held: set[str] = set()
    for job in sorted(set(jobs)):
        try:
            done = subprocess.run(
                [_tool("squeue"), "--noheader", "--array", "--jobs", job, "--format=%i"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError, EnvironmentProblem):
            return None
        if done.returncode != 0 and "invalid job id" not in done.stderr.lower():
            return None  # a job that left the queue long ago is an "Invalid job id": none of it is held
        held.update(line.strip() for line in done.stdout.splitlines() if line.strip())
    return held

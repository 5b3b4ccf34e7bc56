"""Kubernetes: one Indexed Job per submission (one index per seed and sweep combination), written as plain YAML.

The Job is rendered here as a plain dict, written to the group's folder before anything is submitted
(``--dry-run`` stops there) and sent as is by :mod:`repropack.cluster.kube_api`. Every index runs the same
image, pinned by digest, as an unprivileged user on a read-only root file system; the image's entrypoint,
given ``indexed``, picks its arguments from ``REPRO_TASKS`` by ``JOB_COMPLETION_INDEX`` and writes a short JSON
summary to the termination log, which Kubernetes keeps in the pod's status after the pod has ended.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repropack.errors import BadInput
from repropack.files import atomic_write

MANIFEST = "job.yaml"
CONTAINER = "task"
TERMINATION_LOG = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096  # bytes: the kubelet truncates a longer termination message
MAX_TASKS = 100_000  # the API server's limit on completions for an Indexed Job with backoffLimitPerIndex
MAX_TASKS_JSON = 1_000_000  # bytes of REPRO_TASKS: a Job must fit in one etcd object (1.5 MiB)
TTL_SECONDS = 7 * 24 * 3600  # the ended Job (and its pods' statuses) is kept a week, then deleted
USER = 65532  # the image's unprivileged user ("nonroot")
MANAGED_BY = "app.kubernetes.io/managed-by"
GROUP_LABEL = "repropack.dev/group"
GROUP_ANNOTATION = "repropack.dev/group"
EXPERIMENT_ANNOTATION = "repropack.dev/experiment"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d{2}))?(?::(\d{2}))?$")  # Slurm's MINUTES, MM:SS, HH:MM:SS, D-HH:MM(:SS)
MEMORY = re.compile(r"^([1-9]\d*)([KMGT]?)i?$", re.IGNORECASE)  # 8G, 512M, 8Gi; no unit means megabytes (Slurm)
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(rf"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?{_PATH}(?:/{_PATH})*@sha256:[0-9a-f]{{64}}$")


@dataclass(frozen=True)
class KubeOptions:
    namespace: str = "default"
    gpus: int = 0
    memory: str | None = None  # 8G or 512M, sent as the quantity 8Gi or 512Mi
    time: str | None = None  # Slurm's form, sent as the Job's activeDeadlineSeconds
    retries: int = 0  # further tries of each failed index (backoffLimitPerIndex)
    volume: str | None = None  # a PersistentVolumeClaim mounted at /results; without one outputs stay in the pod
    concurrency: int = 8  # indexes running at once (parallelism)

    def __post_init__(self) -> None:
        for flag, value in (("--namespace", self.namespace), ("--volume", self.volume)):
            if value is not None and not DNS_LABEL.match(value):
                raise BadInput(
                    f"{flag} takes a Kubernetes name (lowercase letters, digits and '-', at most 63), not '{value}'."
                )
        if self.memory is not None and not MEMORY.match(self.memory):
            raise BadInput(f"--memory takes a size like 8G or 512M, not '{self.memory}'.")
        if self.time is not None and deadline_seconds(self.time) is None:
            raise BadInput(f"--time takes Slurm's form (MINUTES, HH:MM:SS or D-HH:MM) above zero, not '{self.time}'.")
        for flag, number, least in (("--gpus", self.gpus, 0), ("--retries", self.retries, 0)):
            if number < least:
                raise BadInput(f"{flag} takes a whole number of at least {least}, not {number}.")
        if self.concurrency < 1:
            raise BadInput(f"--concurrency takes a whole number of at least 1, not {self.concurrency}.")

    def quantity(self) -> str | None:
        """The memory as a Kubernetes quantity: ``8G`` -> ``8Gi``; ``512`` (megabytes, as Slurm has it) -> ``512Mi``."""
        found = MEMORY.match(self.memory) if self.memory else None
        return f"{found.group(1)}{(found.group(2) or 'M').upper()}i" if found else None

    def deadline(self) -> int | None:
        return deadline_seconds(self.time) if self.time else None


def deadline_seconds(text: str) -> int | None:
    """Slurm's time limit in seconds: MINUTES, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; None if malformed or 0."""
    found = TIME.match(text)
    if not found:
        return None
    days, first, second, third = found.groups()
    parts = [int(part) for part in (first, second, third) if part is not None]
    if days is not None:
        hours, minutes, seconds = [*parts, 0, 0][:3]
        total = int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    elif len(parts) == 3:
        total = parts[0] * 3600 + parts[1] * 60 + parts[2]
    elif len(parts) == 2:
        total = parts[0] * 60 + parts[1]
    else:
        total = parts[0] * 60
    return total or None


def _dns_label(text: str) -> str:
    """``text`` itself if it is a DNS-1123 label, else a stable one: sanitised, cut, and a hash of ``text``."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if base == text and DNS_LABEL.match(base):
        return base
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{base[:54].rstrip('-')}-{digest}" if base else f"x-{digest}"


def job_name(group: str) -> str:
    """The Job's name for a group: ``repropack-GROUP`` when that is a valid name, else a stable sanitised one."""
    return _dns_label(f"repropack-{group}")


def task_output(index: int, volume: bool) -> str:
    """Where task ``index`` writes its outputs: its own folder of the volume, or the pod's own /output."""
    return f"/results/task-{index}" if volume else "/output"


def render_job(
    *, name: str, image: str, tasks: list[list[str]], group: str, experiment: str, options: KubeOptions
) -> dict[str, Any]:
    """One batch/v1 Job: ``len(tasks)`` indexes, ``options.concurrency`` at once, every index run to its end."""
    if not IMAGE.match(image):
        raise BadInput(
            f"A Kubernetes cluster pulls the image from a registry, by digest; '{image}' is not such a reference.",
            hint="Push it first: repropack publish ..., then submit the REGISTRY/REPO@sha256:... reference.",
        )
    if not DNS_LABEL.match(name):
        raise BadInput(f"'{name}' is not a Kubernetes Job name.", hint=f"Use job_name(group): '{job_name(group)}'.")
    if not 1 <= len(tasks) <= MAX_TASKS:
        raise BadInput(f"A Kubernetes Job takes 1 to {MAX_TASKS} tasks, not {len(tasks)}.")
    arguments = json.dumps(tasks, separators=(",", ":"), sort_keys=True)
    if len(arguments.encode()) > MAX_TASKS_JSON:
        raise BadInput(
            f"The {len(tasks)} tasks' arguments take {len(arguments.encode())} bytes, more than one Job can hold.",
            hint="Submit the sweep in smaller groups.",
        )
    labels = {MANAGED_BY: "repropack", GROUP_LABEL: _dns_label(group)}
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": len(tasks),
        "parallelism": min(options.concurrency, len(tasks)),
        "backoffLimitPerIndex": options.retries,
        "maxFailedIndexes": len(tasks),  # a failed index never stops the others
        "podFailurePolicy": {  # a pod lost to its node (eviction, preemption, node gone) is tried again, uncounted
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
        },
        "ttlSecondsAfterFinished": TTL_SECONDS,
        "template": {"metadata": {"labels": dict(labels)}, "spec": _pod(image, arguments, options)},
    }
    if options.deadline() is not None:
        spec["activeDeadlineSeconds"] = options.deadline()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": labels,
            "annotations": {GROUP_ANNOTATION: group, EXPERIMENT_ANNOTATION: experiment},
        },
        "spec": spec,
    }


def _pod(image: str, arguments: str, options: KubeOptions) -> dict[str, Any]:
    output: dict[str, Any]
    if options.volume:
        output = {"name": "results", "persistentVolumeClaim": {"claimName": options.volume}}
        mount = "/results"
    else:
        output = {"name": "output", "emptyDir": {}}
        mount = "/output"
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": "1"}}
    if options.quantity():
        resources["requests"]["memory"] = str(options.quantity())
        resources["limits"] = {"memory": str(options.quantity())}
    if options.gpus:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(options.gpus)
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["indexed"],
        "env": [
            {"name": "REPRO_TASKS", "value": arguments},
            {"name": "REPRO_TERMINATION_LOG", "value": TERMINATION_LOG},
        ],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": output["name"], "mountPath": mount}],
    }
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER,
            "runAsGroup": USER,
            "fsGroup": USER,
            "fsGroupChangePolicy": "OnRootMismatch",  # a large volume is not walked at every start
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, output],
    }


def write_manifests(folder: Path, job: dict[str, Any]) -> Path:
    """Write ``folder/job.yaml`` (atomically; the same bytes for the same Job) and return its path."""
    path = folder / MANIFEST
    atomic_write(path, yaml.safe_dump(job, sort_keys=True, default_flow_style=False).encode())
    return path


def parse_indexes(text: str | None) -> set[int]:
    """A Job status' index list (``"0-2,5"``) as a set; pieces that are not indexes or ranges are skipped."""
    found: set[int] = set()
    for piece in (text or "").split(","):
        bounds = piece.strip().split("-")
        if len(bounds) > 2 or not all(bound.isdigit() for bound in bounds):
            continue
        low, high = int(bounds[0]), int(bounds[-1])
        if low <= high <= low + MAX_TASKS:
            found.update(range(low, high + 1))
    return found


def parse_termination_message(text: str | None) -> dict[str, Any]:
    """The summary a task wrote to its termination log, checked field by field: ``exit_code`` and ``seed``
    (integers), ``status`` and ``error`` (text), ``complete`` (whether every metric fitted) and ``metrics``
    (finite numbers). A field of the wrong type is left out; anything else malformed gives {}. Never raises."""
    if not text or len(text) > 2 * MAX_TERMINATION_MESSAGE:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(value, dict):
        return {}
    summary: dict[str, Any] = {}
    for key in ("exit_code", "seed"):
        if isinstance(value.get(key), int) and not isinstance(value.get(key), bool):
            summary[key] = value[key]
    for key, kind in (("status", str), ("error", str), ("complete", bool)):
        if isinstance(value.get(key), kind):
            summary[key] = value[key]
    if isinstance(value.get("metrics"), dict):
        summary["metrics"] = {
            str(key): number
            for key, number in value["metrics"].items()
            if isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number)
        }
    return summary

"""What one run's record holds: the typed document every command reads, prints and exports.

A record is written twice: once when the run starts (status ``running``) and once, whole, when it ends.
Nothing in it is a host path: datasets are named by digest and how they reached the run (embedded in
the image or mounted), outputs by their path inside the output folder.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

Status = Literal["running", "succeeded", "failed", "killed", "lost"]
STATUSES: tuple[Status, ...] = ("running", "succeeded", "failed", "killed", "lost")
ENDED: tuple[Status, ...] = ("succeeded", "failed", "killed", "lost")


class DatasetUse(TypedDict):
    sha256: str  # the dataset's index digest (as the manifest's datasets.NAME.sha256)
    embedded: bool  # in the image (true) or mounted from the host (false)
    as_frozen: bool  # the same data the image was frozen with


class OutputFile(TypedDict):
    path: str  # relative to the output folder, '/'-separated
    sha256: str
    size: int


class Requirements(TypedDict):
    gpus: bool
    memory: str | None  # the memory limit asked for (verify's sandbox), None for none


class RunRecord(TypedDict):
    id: str  # 32 hex digits; commands accept any unique prefix
    name: str  # unique within its group
    group: str  # "" for none
    description: str
    kind: Literal["run", "verify", "rerun"]
    status: Status
    image: str  # the reference the user gave (tag, id or REGISTRY/REPO@sha256:...)
    image_id: str
    manifest_digest: str  # sha256:...
    reference: str | None  # the published REGISTRY/REPO@sha256:... when known
    experiment: str
    command: str
    argv: list[str]  # the command line the image ran
    seed: int | None
    overrides: dict[str, Any]  # --set KEY=VALUE, typed as the config's values
    config_sha256: str | None  # the config the command saw, after the overrides
    datasets: dict[str, DatasetUse]
    requirements: Requirements
    started: str  # ISO 8601, UTC
    ended: str | None
    duration_s: float | None
    exit_code: int | None
    error: str | None  # why it failed, in one paragraph
    hardware: dict[str, Any]  # device, gpu, host (from the run's run.json)
    software: dict[str, Any]  # python, torch, packages, settings
    metrics: dict[str, float]
    expected: dict[str, Any]  # the manifest's metrics.expected, for comparisons and the report
    history: dict[str, list[float]]  # per metric, every value the log printed (the metrics.stdout patterns)
    outputs: list[OutputFile]
    log_sha256: str | None  # the full log (stdout and stderr, interleaved), a blob
    rerun: str  # the command that re-runs this run


# The keys `runs --json` prints for each run: the summary (show --json prints the whole record).
SUMMARY_KEYS = (
    "id",
    "name",
    "group",
    "kind",
    "status",
    "image",
    "command",
    "seed",
    "overrides",
    "metrics",
    "started",
    "ended",
    "duration_s",
    "exit_code",
)


def summary(record: RunRecord | dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in SUMMARY_KEYS}

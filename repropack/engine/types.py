"""The values that cross the engine boundary: mounts, the sandbox a run gets, push progress, the output
cap and a run's result. Plain frozen dataclasses; no Docker here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    source: str  # a path on the host
    target: str  # a path in the container
    read_only: bool = True


@dataclass(frozen=True)
class Sandbox:
    """Limits for running code the user did not write. ``Sandbox()`` is the strict default of verify."""

    network: bool = False
    drop_capabilities: bool = True  # cap-drop ALL and no-new-privileges
    read_only_root: bool = True  # the image's filesystem is read-only; /tmp is a private tmpfs
    memory: str | None = "8g"
    pids: int | None = 1024


STRICT = Sandbox()
OPEN = Sandbox(network=True, drop_capabilities=False, read_only_root=False, memory=None, pids=None)


@dataclass(frozen=True)
class PushProgress:
    layer: str
    status: str
    current: int | None
    total: int | None


@dataclass(frozen=True)
class OutputCap:
    """The host folder mounted as the container's /output, and how many bytes the run may leave in it."""

    folder: Path
    max_bytes: int


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    output_tail: list[str]
    oom_killed: bool
    output_exceeded: bool = False  # stopped (or found after exit) past OutputCap.max_bytes

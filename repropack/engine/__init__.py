"""The engine boundary: the only package that talks to Docker, a small interface over the Docker SDK.

Everything above it deals in image ids, references, bytes and exit codes; every engine failure comes
out as an :class:`EnvironmentProblem` (exit 3) that says how to fix it. May import errors only; every
pipeline stage that needs Docker imports it.
"""

from repropack.engine.client import Engine
from repropack.engine.failures import START_HINT, engine_errors
from repropack.engine.streams import ForwardStream, ImageFiles
from repropack.engine.types import OPEN, STRICT, Mount, OutputCap, PushProgress, RunResult, Sandbox

__all__ = [
    "OPEN",
    "START_HINT",
    "STRICT",
    "Engine",
    "ForwardStream",
    "ImageFiles",
    "Mount",
    "OutputCap",
    "PushProgress",
    "RunResult",
    "Sandbox",
    "engine_errors",
]

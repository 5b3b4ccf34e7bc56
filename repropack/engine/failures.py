"""Every way the engine can fail, as an :class:`EnvironmentProblem` (exit 3) that says how to fix it;
and which failures are worth retrying."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker.errors
import requests.exceptions
import urllib3.exceptions

from repropack.errors import EnvironmentProblem

START_HINT = (
    "Start the Docker engine (for example 'sudo systemctl start docker', or 'sudo dockerd &'), "
    "or point DOCKER_HOST at one."
)


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise EnvironmentProblem(f"{action}: image not found ({exc.explanation}).") from None
    except docker.errors.APIError as exc:
        raise EnvironmentProblem(f"{action}: the Docker engine said: {exc.explanation or exc}.") from None
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        OSError,
    ) as exc:
        # also a connection that breaks halfway, e.g. the engine stopped during a build
        raise EnvironmentProblem(
            f"{action}: lost or no connection to the Docker engine ({exc}).", hint=START_HINT
        ) from None


TRANSIENT = ("timeout", "timed out", "connection reset", "broken pipe", "503", "502", "504", "too many requests", "eof")


def transient(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in TRANSIENT) and "connection refused" not in lowered

"""What every scenario shares: result rows, timed commands, scratch experiments, Docker helpers."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "digits-mlp"
BASE_IMAGE = "repropack/base:debian-bookworm"
PREFIX = "repropack-bench-"  # every image and folder the bench makes starts with this
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


@dataclass
class Row:
    """One line of the table: a measured median, the baseline's median from the same run, and the target."""

    scenario: str
    measure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None  # None: reported only, no target
    note: str = ""
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Bench:
    """The run's settings, its scratch folder, a log, and the images to remove at the end."""

    def __init__(self, scratch: Path, repeat: int, quick: bool, log: Callable[[str], None]) -> None:
        self.scratch = scratch
        self.repeat = repeat
        self.quick = quick
        self.log = log
        self.images: list[str] = []  # tags and ids this run made
        self.built: dict[str, str] = {}  # what a scenario built that another may reuse

    # -- commands -----------------------------------------------------------------------------------------
    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            input=stdin,
            capture_output=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, args))} exited {done.returncode}:\n"
                f"{done.stdout.decode(errors='replace')[-2000:]}\n"
                f"{done.stderr.decode(errors='replace')[-2000:]}"
            )
        return done

    def timed(
        self, args: Sequence[str | os.PathLike[str]], **kwargs: Any
    ) -> tuple[float, subprocess.CompletedProcess[bytes]]:
        start = time.perf_counter()
        done = self.run(args, **kwargs)
        return time.perf_counter() - start, done

    # -- the experiment -----------------------------------------------------------------------------------
    def experiment(self, name: str) -> Path:
        """A fresh git repository holding a copy of recipes/digits-mlp (committed); returns its spec."""
        folder = self.scratch / name
        shutil.copytree(RECIPE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        self.run(["git", "init", "-q"], cwd=folder)
        self.commit(folder, "a copy of recipes/digits-mlp")
        return folder / "experiment.yaml"

    def commit(self, folder: Path, message: str, *paths: str) -> None:
        """Commit ``paths`` (relative to ``folder``; none: everything there now). Untracked files the
        baselines need (wheels/, a big file) stay untracked, as they would in a researcher's checkout."""
        self.run(["git", "add", "--", *(paths or ["."])], cwd=folder)
        self.run(["git", "commit", "-q", "--no-gpg-sign", "-m", message], cwd=folder, env=GIT_ENV)

    def wheels(self, spec: Path, into: Path) -> int:
        """The experiment's locked wheels (from repropack's wheelhouse) linked into ``into``; their bytes."""
        from repropack.experiment.validate import load_spec
        from repropack.freeze.lockfile import read_lock
        from repropack.freeze.wheelhouse import ensure_wheels

        into.mkdir(parents=True, exist_ok=True)
        total = 0
        for path in ensure_wheels(read_lock(load_spec(spec).lockfile)).values():
            target = into / path.name
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            total += target.stat().st_size
        return total

    # -- docker ---------------------------------------------------------------------------------------------
    def docker_build(self, context: Path, dockerfile: str, tag: str) -> tuple[float, str, int | None]:
        """``docker build`` (the classic builder, as the engine here has) of ``context`` with ``dockerfile``
        given on stdin: seconds, image id, and the context bytes the CLI reports sending."""
        self.images.append(tag)
        iidfile = self.scratch / f"{tag.replace(':', '_').replace('/', '_')}.iid"
        seconds, done = self.timed(
            ["docker", "build", "-f", "-", "-t", tag, "--iidfile", iidfile, context],
            env={"DOCKER_BUILDKIT": "0"},
            stdin=dockerfile.encode(),
        )
        image_id = iidfile.read_text().strip()
        self.images.append(image_id)
        return seconds, image_id, context_bytes(done.stdout.decode(errors="replace"))

    def repropack(self) -> list[str]:
        script = Path(sys.executable).with_name("repropack")
        return [str(script)] if script.exists() else [sys.executable, "-m", "repropack"]

    def cleanup(self) -> None:
        for image in reversed(self.images):
            self.run(["docker", "rmi", image], check=False)


UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def context_bytes(output: str) -> int | None:
    """Bytes from the classic builder's 'Sending build context to Docker daemon  524.3MB' (units of 1000)."""
    found = re.findall(r"Sending build context to Docker daemon\s+([\d.]+)\s*([kKMGT]?B)", output)
    if not found:
        return None
    number, unit = found[-1]
    return int(float(number) * UNITS[unit])


def have_docker(bench: Bench) -> str | None:
    """None when the engine answers and has the base image; otherwise why the Docker scenarios are skipped."""
    if shutil.which("docker") is None:
        return "no docker command"
    if bench.run(["docker", "info"], check=False).returncode != 0:
        return "the Docker engine does not answer"
    if bench.run(["docker", "image", "inspect", BASE_IMAGE], check=False).returncode != 0:
        return f"no {BASE_IMAGE} (make it: repropack base build debian-bookworm)"
    return None


def human_bytes(count: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f} B"

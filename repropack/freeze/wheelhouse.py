"""The host-side wheelhouse: every locked package as a wheel whose sha256 is in the lock.

Images install from it offline (``--no-index --require-hashes``), so a rebuild depends neither on the
package index being up nor on containers trusting the host's certificates. The cache is keyed by
sha256, shared between experiments, and only grows by complete, hash-checked files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from repropack.cache import cache_root, exclusive
from repropack.checksums.hashing import sha256_file
from repropack.errors import EnvironmentProblem
from repropack.files import atomic_write
from repropack.freeze.lockfile import Lock, LockedPackage


def wheelhouse() -> Path:
    return cache_root() / "wheels"


def _index(house: Path) -> dict[str, str]:
    """sha256 -> path relative to the wheelhouse, for the complete files already in it."""
    try:
        data = json.loads((house / "index.json").read_text())
        return {k: v for k, v in data.items() if (house / v).is_file()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


WheelProgress = Callable[[int, int, int], None]  # (wheels downloaded, wheels to download, their bytes so far)


def ensure_wheels(lock: Lock, on_progress: WheelProgress | None = None) -> dict[str, Path]:
    """Package name -> a wheel in the wheelhouse whose hash the lock allows; downloads what is missing."""
    return {name: paths[0] for name, paths in ensure_packages(lock.packages, on_progress).items()}


def ensure_packages(
    packages: tuple[LockedPackage, ...], on_progress: WheelProgress | None = None
) -> dict[str, list[Path]]:
    """Package name -> every wheel in the wheelhouse whose hash is one of the package's pinned ones
    (downloaded, by those hashes, when there is none yet). Raises when a package has no such wheel."""
    house = wheelhouse()
    house.mkdir(parents=True, exist_ok=True)
    index = _index(house)
    missing = [p for p in packages if not any(h in index for h in p.hashes)]
    if missing:
        with exclusive(house / ".lock"):  # one download at a time; the index is read again under the lock
            index = _index(house)
            missing = [p for p in packages if not any(h in index for h in p.hashes)]
            if missing:
                index.update(_download(missing, house, on_progress))
                atomic_write(house / "index.json", json.dumps(dict(sorted(index.items())), indent=1).encode())
    found: dict[str, list[Path]] = {}
    for package in packages:
        paths = [house / index[h] for h in package.hashes if h in index]
        if not paths:
            raise EnvironmentProblem(
                f"No wheel of {package.name}=={package.version} with a locked hash could be downloaded "
                "(only a source distribution may exist).",
                hint="Pin a version that publishes a wheel for this platform, then 'repropack lock'.",
            )
        found[package.name] = paths
    return found


def _report(dest: Path, total: int, on_progress: WheelProgress | None) -> None:
    if on_progress is None:
        return
    arrived = [path for path in dest.glob("*.whl") if path.is_file()] if dest.is_dir() else []
    on_progress(len(arrived), total, sum(path.stat().st_size for path in arrived))


def _download(packages: list[LockedPackage], house: Path, on_progress: WheelProgress | None) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="repropack-wheels-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("".join(p.line + "\n" for p in packages))
        dest = Path(scratch) / "dl"
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            str(dest),
            "-r",
            str(requirements),
        ]
        errors = Path(scratch) / "stderr"
        with errors.open("w") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
            while process.poll() is None:  # pip says nothing useful while it downloads: count what arrived
                _report(dest, len(packages), on_progress)
                time.sleep(0.5)
        _report(dest, len(packages), on_progress)
        if process.returncode != 0:
            tail = " ".join(errors.read_text(errors="replace").strip().splitlines()[-3:])
            raise EnvironmentProblem(
                f"Downloading the locked wheels failed: {tail}",
                hint="Check the network or the package index, then run the build again.",
            )
        added: dict[str, str] = {}
        for wheel in sorted(dest.iterdir()):
            digest = sha256_file(wheel).sha256
            # One folder per hash: two different files may carry the same wheel name.
            relative = f"{digest[:2]}/{digest}/{wheel.name}"
            target = house / relative
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.parent / f".{wheel.name}.part"
                shutil.copyfile(wheel, tmp)
                os.replace(tmp, target)
            added[digest] = relative
        return added

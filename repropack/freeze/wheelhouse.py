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


def ensure_wheels(lock: Lock) -> dict[str, Path]:
    """Package name -> a wheel in the wheelhouse whose hash the lock allows; downloads what is missing."""
    return {name: paths[0] for name, paths in ensure_packages(lock.packages).items()}


def ensure_packages(packages: tuple[LockedPackage, ...]) -> dict[str, list[Path]]:
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
                index.update(_download(missing, house))
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


def _download(packages: list[LockedPackage], house: Path) -> dict[str, str]:
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
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " ".join(done.stderr.strip().splitlines()[-3:])
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

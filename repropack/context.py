"""The build context: a deterministic tarball holding exactly what the Dockerfile copies.

Only what the image needs is sent to the engine (never the repository's .git or untracked files).
Entries are sorted, owned by root, with fixed times and modes, so equal inputs give equal bytes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from repropack.errors import BadInput, EnvironmentProblem
from repropack.freeze import Frozen
from repropack.runtime_files import runtime_sources

EPOCH = 315532800  # 1980-01-01, the earliest time a zip or wheel can hold; any fixed value would do
def _info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _folder(name: str) -> tarfile.TarInfo:
    info = _info(name, 0, 0o755)
    info.type = tarfile.DIRTYPE
    return info


def _entries(frozen: Frozen, dockerfile: str, wheels: dict[str, Path]) -> Iterator[tuple[str, bytes | Path, int]]:
    yield "Dockerfile", dockerfile.encode(), 0o644
    yield "manifest.json", frozen.manifest_bytes, 0o644
    yield "requirements.lock", frozen.lock.path.read_bytes(), 0o644
    for path in sorted(wheels.values(), key=lambda p: p.name):
        yield f"wheels/{path.name}", path, 0o644
    for name, data in sorted(runtime_sources().items()):
        yield f"runtime/{name}", data, 0o644
    for ds in frozen.datasets.values():
        if ds.embed:
            for rel in ds.files:
                yield f"data/{ds.name}/{rel}", ds.host_root() / rel, 0o644
    for code_file in frozen.code.files:
        yield f"code/{code_file.path}", code_file.data, 0o755 if code_file.executable else 0o644
    if frozen.config is not None:
        yield f"config/{frozen.config.name}", frozen.config.data, 0o644
    for ds in frozen.datasets.values():
        yield f"datasets/{ds.name}.sha256sums", ds.index(), 0o644


def write_context(frozen: Frozen, dockerfile: str, wheels: dict[str, Path], out: IO[bytes]) -> None:
    """Write the context tarball to ``out``; running out of disk space is a clear environment error."""
    try:
        _write_context(frozen, dockerfile, wheels, out)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EnvironmentProblem(
                "No space left on the disk while staging the build context (the image's files: "
                f"{_context_size(frozen, wheels) / 2**20:.0f} MiB or more).",
                hint="Free some space, or point TMPDIR at a disk with room, and build again.",
            ) from None
        raise


def _context_size(frozen: Frozen, wheels: dict[str, Path]) -> int:
    data = sum(d.size for ds in frozen.datasets.values() if ds.embed for d in ds.files.values())
    return data + sum(path.stat().st_size for path in wheels.values())


def _write_context(frozen: Frozen, dockerfile: str, wheels: dict[str, Path], out: IO[bytes]) -> None:
    """Write the context tarball to ``out``. Embedded data is hashed again as it is copied: a file that
    changed after it was frozen is refused rather than shipped under its old hash."""
    expected = {
        f"data/{ds.name}/{rel}": d.sha256 for ds in frozen.datasets.values() if ds.embed for rel, d in ds.files.items()
    }
    folders: set[str] = set()
    entries = sorted(_entries(frozen, dockerfile, wheels), key=lambda e: e[0])
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_folder("wheels"))  # present even when the lock pins nothing: the Dockerfile copies it
        folders.add("wheels")
        for name, content, mode in entries:
            parts = name.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    archive.addfile(_folder(folder))
            if isinstance(content, bytes):
                archive.addfile(_info(name, len(content), mode), io.BytesIO(content))
                continue
            with open(content, "rb") as raw:
                size = os.fstat(raw.fileno()).st_size
                reader = _HashingReader(raw)
                try:
                    archive.addfile(_info(name, size, mode), reader)
                except OSError:  # tarfile: the file shrank while it was being copied
                    reader.truncated = True
            if reader.truncated and name not in expected:
                raise EnvironmentProblem(f"{name} changed size while the build context was being written.")
            if name in expected and (reader.truncated or reader.hexdigest() != expected[name]):
                raise BadInput(
                    f"The dataset file {name.removeprefix('data/')} changed after it was hashed.",
                    hint="Leave the data alone while repropack builds, then build again.",
                )


class _HashingReader:
    """Hashes what tarfile reads, so embedded data is checked in the same pass that copies it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.truncated = False

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self.digest.hexdigest()

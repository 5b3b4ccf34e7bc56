"""The build context: a deterministic tarball holding exactly what the Dockerfile copies.

Only what the image needs is sent to the engine (never the repository's .git or untracked files).
Entries are sorted, owned by root, with fixed times and modes, so equal inputs give equal bytes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from repropack.bases import tarball
from repropack.errors import BadInput, EnvironmentProblem
from repropack.manifest.seal import Sealed
from repropack.runtime import runtime_sources

EPOCH = 315532800  # 1980-01-01, the earliest time a zip or wheel can hold; any fixed value would do


def _folder(name: str) -> tarfile.TarInfo:
    return tarball.member(name, mode=0o755, mtime=EPOCH, folder=True)


Entry = tuple[str, bytes | Path, int]  # name in the context, content (bytes, or a file to copy), mode


def environment_entries(dockerfile: str, lockfile: bytes, wheels: dict[str, Path]) -> Iterator[Entry]:
    """The environment image's context: its Dockerfile, the lockfile and the locked wheels."""
    yield "Dockerfile", dockerfile.encode(), 0o644
    yield "requirements.lock", lockfile, 0o644
    for path in sorted(wheels.values(), key=lambda p: p.name):
        yield f"wheels/{path.name}", path, 0o644


def image_entries(frozen: Sealed, dockerfile: str) -> Iterator[Entry]:
    """The experiment image's context: runtime, data, code, config, dataset indexes and manifest."""
    yield "Dockerfile", dockerfile.encode(), 0o644
    yield "manifest.json", frozen.manifest_bytes, 0o644
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


def write_image_context(frozen: Sealed, dockerfile: str, out: IO[bytes]) -> None:
    """The experiment image's context. Embedded data is hashed again as it is copied: a file that
    changed after it was frozen is refused rather than shipped under its old hash."""
    expected = {
        f"data/{ds.name}/{rel}": d.sha256 for ds in frozen.datasets.values() if ds.embed for rel, d in ds.files.items()
    }
    write_context(image_entries(frozen, dockerfile), out, expected=expected)


def write_environment_context(dockerfile: str, lockfile: bytes, wheels: dict[str, Path], out: IO[bytes]) -> None:
    # the wheels folder is there even when the lock pins nothing: the Dockerfile copies it
    write_context(environment_entries(dockerfile, lockfile, wheels), out, folders=("wheels",))


def write_context(
    entries: Iterable[Entry], out: IO[bytes], *, expected: dict[str, str] | None = None, folders: tuple[str, ...] = ()
) -> None:
    """Write a context tarball to ``out``; running out of disk space is a clear environment error.

    ``expected``: sha256 of files that must not have changed since they were hashed."""
    listed = sorted(entries, key=lambda e: e[0])
    try:
        _write(listed, out, expected or {}, folders)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            size = sum(len(c) if isinstance(c, bytes) else c.stat().st_size for _, c, _ in listed)
            raise EnvironmentProblem(
                f"No space left on the disk while staging the build context ({size / 2**20:.0f} MiB).",
                hint="Free some space, or point TMPDIR at a disk with room, and build again.",
            ) from None
        raise


def _write(entries: list[Entry], out: IO[bytes], expected: dict[str, str], empty_folders: tuple[str, ...]) -> None:
    folders: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for folder in empty_folders:
            tarball.add(archive, _folder(folder))
            folders.add(folder)
        for name, content, mode in entries:
            parts = name.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    tarball.add(archive, _folder(folder))
            if isinstance(content, bytes):
                tarball.add(archive, tarball.member(name, mode=mode, mtime=EPOCH, size=len(content)), content)
                continue
            with open(content, "rb") as raw:
                size = os.fstat(raw.fileno()).st_size
                reader = _HashingReader(raw)
                try:
                    tarball.add(archive, tarball.member(name, mode=mode, mtime=EPOCH, size=size), reader)
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

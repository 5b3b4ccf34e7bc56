"""A run's output folder into the blob store and back: regular files only, no link followed.

What a run leaves in its output folder was written by the experiment's code, which nobody vouches for:
a link, FIFO, socket or device is skipped (and named), a file is read through ``O_NOFOLLOW`` and
``O_NONBLOCK`` and must be regular by ``fstat``. Restoring checks each blob against its digest while
copying; a damaged one is named and not written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from repropack.errors import BadInput
from repropack.store.blobs import BlobStore
from repropack.store.records import OutputFile

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def store_folder(blobs: BlobStore, folder: Path) -> tuple[list[OutputFile], list[str]]:
    """Store every regular file under ``folder``; returns the files (sorted by path) and what was skipped."""
    files: list[OutputFile] = []
    skipped: list[str] = []
    if not folder.is_dir():
        return files, skipped
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            relative = Path(full).relative_to(folder).as_posix()
            try:
                fd = os.open(full, _READ)
            except OSError:
                skipped.append(relative)  # a link (ELOOP), a socket (ENXIO), gone
                continue
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    skipped.append(relative)
                    continue
                digest, size = blobs.put_file(handle)
            files.append({"path": relative, "sha256": digest, "size": size})
    return sorted(files, key=lambda f: f["path"]), sorted(skipped)


def restore(blobs: BlobStore, files: list[tuple[str, str, int]], destination: Path, run: str) -> int:
    """Write the files (path, sha256, size) under ``destination``; returns the bytes written."""
    total = 0
    for path, digest, size in files:
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts:  # a record is data: never a way out
            raise BadInput(f"The run {run} records an output path '{path}' outside its folder; it was not written.")
        blobs.copy_to(digest, destination.joinpath(*relative.parts), f"{path} of run {run}")
        total += size
    return total

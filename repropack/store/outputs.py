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
    """Store every regular file under ``folder``; returns the files (sorted by path) and what was skipped.

    The walk is a loop, not a recursion (a run may nest folders deeper than Python's recursion limit), and
    never enters a link; a folder it may not read is skipped."""
    files: list[OutputFile] = []
    skipped: list[str] = []
    pending = [""] if folder.is_dir() else []
    while pending:
        relative_dir = pending.pop()
        try:
            entries = sorted(os.scandir(folder / relative_dir if relative_dir else folder), key=lambda e: e.name)
        except OSError:
            skipped.append(relative_dir)
            continue
        for entry in entries:
            relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append(relative)
                continue
            stored = _store_file(blobs, entry.path)
            if stored is None:
                skipped.append(relative)  # a link, FIFO, socket or device; or gone
            else:
                files.append({"path": relative, "sha256": stored[0], "size": stored[1]})
    return sorted(files, key=lambda f: f["path"]), sorted(skipped)


def _store_file(blobs: BlobStore, path: str) -> tuple[str, int] | None:
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None  # a link (ELOOP), a socket (ENXIO), gone, too long a path
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return blobs.put_file(handle)


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

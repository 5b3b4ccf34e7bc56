"""Content-addressed blobs: every output file and log stored once by its sha256, checked on every read.

``ROOT/sha256/ab/cdef...`` holds the bytes whose sha256 is ``abcdef...``. A blob is written to a
temporary file in ``ROOT/tmp``, flushed, then renamed into place, so a reader never sees half a blob and
a full disk leaves nothing behind. A blob whose bytes no longer hash to its name is damaged: it is named
in the error and never served.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from repropack.errors import EnvironmentProblem

CHUNK = 1 << 20


class DamagedBlob(EnvironmentProblem):
    """A stored blob's bytes do not hash to its name (disk fault, or someone edited the store)."""

    def __init__(self, digest: str, what: str) -> None:
        self.digest = digest
        super().__init__(
            f"The run store's copy of {what} is damaged: blob sha256:{digest} no longer has that digest, "
            "so it was not used.",
            hint="Restore the store's blob folder from a backup, or re-run the run to record it again.",
        )


class MissingBlob(EnvironmentProblem):
    def __init__(self, digest: str, what: str, root: Path) -> None:
        super().__init__(
            f"The run store has no blob sha256:{digest} for {what} in {root}.",
            hint="Check REPROPACK_STORE_BLOBS: every user of a shared store must name the same blob folder.",
        )


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest[2:]

    def put_file(self, source: BinaryIO) -> tuple[str, int]:
        """Store what ``source`` holds; returns its sha256 and size. A blob already there is kept."""
        tmp_dir = self.root / "tmp"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
        except OSError as exc:
            raise self._write_error(exc) from None
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                while block := source.read(CHUNK):
                    digest.update(block)
                    size += len(block)
                    handle.write(block)
                handle.flush()
                os.fsync(handle.fileno())
            final = self.path(digest.hexdigest())
            if final.exists():
                os.unlink(tmp)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._write_error(exc) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return digest.hexdigest(), size

    def put_bytes(self, data: bytes) -> str:
        import io

        return self.put_file(io.BytesIO(data))[0]

    def read(self, digest: str, what: str) -> bytes:
        """The blob's bytes, checked against its digest."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise MissingBlob(digest, what, self.root) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise DamagedBlob(digest, what)
        return data

    def copy_to(self, digest: str, destination: Path, what: str) -> None:
        """Write the blob to ``destination``: checked while copying, renamed into place only when whole."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
        try:
            check = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                try:
                    source = self.path(digest).open("rb")
                except FileNotFoundError:
                    raise MissingBlob(digest, what, self.root) from None
                with source:
                    while block := source.read(CHUNK):
                        check.update(block)
                        out.write(block)
            if check.hexdigest() != digest:
                raise DamagedBlob(digest, what)
            os.chmod(tmp, 0o644)
            os.replace(tmp, destination)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _write_error(self, exc: OSError) -> EnvironmentProblem:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return EnvironmentProblem(
            f"The run store's blob folder {self.root} could not be written ({exc.strerror}).",
            hint="Free some disk space, then re-run." if full else "Check REPROPACK_STORE_BLOBS and its permissions.",
        )

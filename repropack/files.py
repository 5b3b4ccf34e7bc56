"""Files the user names and files repropack writes: clear errors on reading, atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from repropack.errors import BadInput


def read_text(path: Path, what: str) -> str:
    """Read a UTF-8 text file the user named, turning every way it can fail into a clear BadInput."""
    if not path.exists():
        raise BadInput(f"The {what} {path} does not exist.", hint="Check the path.")
    if path.is_dir():
        raise BadInput(f"The {what} {path} is a directory, not a file.", hint="Pass the file itself.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"The {what} {path} cannot be read: {exc.strerror}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(
            f"The {what} {path} is not UTF-8 text (line {line}, byte {exc.start}).", hint="Save it as UTF-8."
        ) from None


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file handle whose content becomes ``path`` only when the block succeeds (temporary file beside
    it, flushed to disk, then renamed): readers never see half a file, a failure leaves nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data)

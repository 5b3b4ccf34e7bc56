"""Canonical bytes and safe writes: everything repropack writes is sorted, stable and atomic."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


def canonical_json(value: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8, one trailing newline: readable and byte-stable."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def record_seal(body: dict[str, Any]) -> str:
    """The sha256 that seals a cache record's ``body`` (its JSON with sorted keys): a record whose seal
    does not match was damaged, and is not trusted."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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

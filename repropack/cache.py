"""Where repropack keeps its caches (wheels, stat cache, integrity results), whether to use them, and the
advisory file locks that make concurrent repropack processes wait for each other instead of racing."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def cache_root() -> Path:
    """``REPROPACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/repropack`` (``~/.cache/repropack``)."""
    configured = os.environ.get("REPROPACK_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "repropack"


def disabled() -> bool:
    """``REPROPACK_NO_CACHE`` is set: the stat cache and the remembered integrity results are not used,
    so every dataset is hashed and every image checked afresh (the wheelhouse is: it is the builds' input)."""
    return os.environ.get("REPROPACK_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def exclusive(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block; waits for other holders.

    The kernel releases the lock when the holder exits, even when it is killed, so a crashed build
    never leaves a stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

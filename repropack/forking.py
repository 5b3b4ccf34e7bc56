"""Forked helper processes (Linux): when forking is safe, and a child that stays out of the parent's way."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable


def can_fork() -> bool:
    """Linux only, and only while this process runs a single thread (a fork copies no other thread, and
    one holding a lock at that moment would leave the child stuck)."""
    return sys.platform == "linux" and threading.active_count() == 1


def fork_quietly(work: Callable[[], None]) -> int:
    """Fork a child that runs ``work`` and leaves at once with ``os._exit`` (0 when ``work`` returned, else
    1; nothing of the parent's state is torn down twice). Its standard streams are /dev/null: the
    terminal and the pipes are the parent's. Returns the child's process id, in the parent."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            quiet = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(quiet, fd)
            work()
            code = 0
        finally:
            os._exit(code)
    return pid

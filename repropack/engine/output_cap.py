"""A bound on what a run may write to /output (``--max-output SIZE``, default 1 GiB).

Two guards, because either alone leaves a gap: the engine gives the container an ``fsize`` limit of the
cap, so no single file outgrows it between two looks; and a watcher measures the host folder every
``interval`` seconds (an lstat walk that never follows links) and stops the container once the total is
past the cap, which also catches many files each under it. The total is measured once more after exit.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from repropack.errors import BadInput, CommandFailed

DEFAULT_MAX_OUTPUT = 1 << 30
POLL_SECONDS = 0.2
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([kmgt])i?b?|b)?\s*", re.IGNORECASE)


def parse_size(text: str, option: str = "--max-output") -> int:
    """'500M', '2G', '1GiB', '1.5g', '123' -> bytes. K/M/G/T are powers of 1024, as for ``docker
    --memory`` and ``ulimit``; 'KB'/'MB' mean the same here (a cap is not a disk vendor's label)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise BadInput(f"{option} takes a size like 500M, 2G, 1GiB or a number of bytes, not '{text}'.")
    unit = (match.group(2) or "").lower()
    scale = 1 if not unit else 1 << (10 * "kmgt".index(unit) + 10)
    value = int(float(match.group(1)) * scale)
    if value > 1 << 50:
        raise BadInput(f"{option} {text} is more than 1 PiB.", hint="Give a size the disk could hold, like 50G.")
    if value < 1 << 20:
        raise BadInput(
            f"{option} {text} is less than 1 MiB; the run's records alone need more.",
            hint=f"Give at least 1M (the default is {describe(DEFAULT_MAX_OUTPUT)}).",
        )
    return value


def describe(count: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def folder_size(root: Path) -> int:
    """Bytes under ``root``: per entry (links, FIFOs and folders included) the larger of its size and
    its allocated blocks; hard links count once. Never follows a link; entries that vanish are skipped."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [str(root)]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                    total += max(info.st_size, info.st_blocks * 512)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(entry.path)
        except OSError:
            continue  # vanished, or made unreadable: what it holds is counted after exit, when it can be
    return total


class OutputTooLarge(CommandFailed):
    def __init__(self, cap: int) -> None:
        super().__init__(
            f"The run wrote more than {describe(cap)} to /output (--max-output); it was stopped, and its "
            "results were not used.",
            hint="If the experiment really writes that much, give a larger --max-output SIZE.",
        )


class OutputWatcher:
    """Calls ``stop`` (once) when ``measure()`` is past ``cap``, looking every ``interval`` seconds
    from :meth:`start` until :meth:`close`; ``exceeded`` says whether it did."""

    def __init__(
        self, measure: Callable[[], int], cap: int, stop: Callable[[], None], interval: float = POLL_SECONDS
    ) -> None:
        self.measure = measure
        self.cap = cap
        self.stop = stop
        self.interval = interval
        self.exceeded = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="repropack-output-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def check(self) -> bool:
        """Look once; True (and ``stop`` called, the first time) when past the cap."""
        if not self.exceeded and self.measure() > self.cap:
            self.exceeded = True
            self.stop()
        return self.exceeded

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._closed.wait(self.interval):
            if self.check():
                return

"""Progress lines for long work on a terminal (quiet in --json mode and when output is not a terminal)."""

from __future__ import annotations

import time
from collections.abc import Callable

from repropack.engine import PushProgress


class PushMeter:
    """Summarizes push progress as one line a second: layers done and bytes sent."""

    def __init__(self, *, enabled: bool, write: Callable[[str], None]) -> None:
        self.enabled = enabled
        self.write = write
        self.sent: dict[str, tuple[int, int]] = {}
        self.done_layers: set[str] = set()
        self.last = 0.0

    def update(self, event: PushProgress) -> None:
        if not event.layer:
            return
        if event.current is not None and event.total:
            self.sent[event.layer] = (event.current, event.total)
        if event.status in ("Pushed", "Layer already exists"):
            self.done_layers.add(event.layer)
        now = time.monotonic()
        if self.enabled and now - self.last >= 1.0:
            self.last = now
            current = sum(c for c, _ in self.sent.values()) / 2**20
            total = sum(t for _, t in self.sent.values()) / 2**20
            self.write(f"pushing: {len(self.done_layers)} layers done, {current:.0f}/{total:.0f} MiB of the rest")

    def done(self) -> None:
        if self.enabled:
            self.write(f"pushed: {len(self.done_layers)} layers")


def _size(count: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


class HashMeter:
    """Summarizes dataset hashing as one line a second: bytes hashed of those to hash, and the rate.

    Hashing that ends within the first second prints nothing; longer hashing ends with one summary line.
    ``update`` has the signature of ``repropack.checksums.hashing.ProgressCallback``.
    """

    def __init__(
        self, *, enabled: bool, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = enabled
        self.write = write
        self.clock = clock
        self.hashed = 0
        self.total = 0
        self.started: float | None = None
        self.last = 0.0
        self.shown = False

    def _rate(self, now: float) -> str:
        elapsed = now - (self.started if self.started is not None else now)
        return f"{_size(self.hashed / elapsed)}/s" if elapsed > 0 else "-"

    def update(self, hashed: int, total: int) -> None:
        now = self.clock()
        if self.started is None:
            self.started = self.last = now
        self.hashed, self.total = hashed, total
        if self.enabled and now - self.last >= 1.0:
            self.last = now
            self.shown = True
            self.write(f"hashing data: {_size(hashed)} of {_size(total)} ({self._rate(now)})")

    def done(self) -> None:
        """The summary line (once, however often it is called: e.g. before a build's first line, and after)."""
        if self.enabled and self.shown and self.started is not None:
            self.shown = False
            now = self.clock()
            self.write(f"hashed data: {_size(self.hashed)} in {now - self.started:.1f} s ({self._rate(now)})")

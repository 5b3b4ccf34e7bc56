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

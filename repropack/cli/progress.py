"""Progress bars for long work on a terminal (quiet in --json mode and when output is not a terminal).

The bars are ``rich.progress`` ones on stderr: bytes done of the total, the rate and the time left. They
are drawn in place and cleared when the work ends; what stays is one summary line, given to ``write``.
A meter made with ``enabled=False`` draws and writes nothing.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from repropack.engine.types import PushProgress


def human_size(count: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


class _Rate(ProgressColumn):
    """rich's TransferSpeedColumn in binary units (MiB/s), as the bytes column and the summary lines."""

    def render(self, task: Task) -> Text:
        return Text(f"{human_size(task.speed)}/s" if task.speed is not None else "?", style="progress.data.speed")


class Bar:
    """One rich progress bar; made on the first update, drawn from ``show()`` on, cleared by ``stop()``."""

    def __init__(self, console: Console | None, clock: Callable[[], float]) -> None:
        self.console = console
        self.clock = clock
        self.progress: Progress | None = None
        self.task = TaskID(0)
        self.drawn = False

    def update(self, description: str, completed: int, total: int) -> None:
        if self.progress is None:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                _Rate(),
                TimeRemainingColumn(),
                console=self.console or Console(stderr=True),
                transient=True,
                redirect_stdout=False,  # results go to stdout; only stderr lines are printed above the bar
                get_time=self.clock,
            )
            self.task = self.progress.add_task(description, total=total, completed=completed)
        else:
            self.progress.update(self.task, description=description, completed=completed, total=total)

    def show(self) -> None:
        if self.progress is not None and not self.drawn:
            self.drawn = True
            self.progress.start()
            atexit.register(self.stop)  # an error that ends the command still clears the bar

    def stop(self) -> None:
        if self.progress is not None and self.drawn:
            atexit.unregister(self.stop)
            self.progress.stop()
        self.progress = None
        self.drawn = False


class PushMeter:
    """A bar for a registry push: bytes sent of the layers being pushed, and the layers done."""

    def __init__(self, *, enabled: bool, write: Callable[[str], None], console: Console | None = None) -> None:
        self.enabled = enabled
        self.write = write
        self.sent: dict[str, tuple[int, int]] = {}
        self.done_layers: set[str] = set()
        self.bar = Bar(console, time.monotonic)

    def update(self, event: PushProgress) -> None:
        if not event.layer:
            return
        if event.current is not None and event.total:
            self.sent[event.layer] = (event.current, event.total)
        if event.status in ("Pushed", "Layer already exists"):
            self.done_layers.add(event.layer)
        if self.enabled:
            sent = sum(total if layer in self.done_layers else current for layer, (current, total) in self.sent.items())
            total = sum(total for _, total in self.sent.values())
            self.bar.update(f"pushing ({len(self.done_layers)} layers done)", sent, total)
            self.bar.show()

    def done(self) -> None:
        if self.enabled:
            self.bar.stop()
            self.write(f"pushed: {len(self.done_layers)} layers")


class HashMeter:
    """A bar for dataset hashing: bytes hashed of those to hash, the rate and the time left.

    Hashing that ends within the first second shows nothing; longer hashing ends with one summary line.
    ``update`` has the signature of ``repropack.checksums.hashing.ProgressCallback``.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        write: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        console: Console | None = None,
    ) -> None:
        self.enabled = enabled
        self.write = write
        self.clock = clock
        self.hashed = 0
        self.total = 0
        self.started: float | None = None
        self.shown = False
        self.bar = Bar(console, clock)

    def _rate(self, now: float) -> str:
        elapsed = now - (self.started if self.started is not None else now)
        return f"{human_size(self.hashed / elapsed)}/s" if elapsed > 0 else "-"

    def update(self, hashed: int, total: int) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        self.hashed, self.total = hashed, total
        if self.enabled:
            self.bar.update("hashing data", hashed, total)
            if now - self.started >= 1.0:
                self.shown = True
                self.bar.show()

    def done(self) -> None:
        """The summary line (once, however often it is called: e.g. before a build's first line, and after)."""
        self.bar.stop()
        if self.enabled and self.shown and self.started is not None:
            self.shown = False
            now = self.clock()
            self.write(f"hashed data: {human_size(self.hashed)} in {now - self.started:.1f} s ({self._rate(now)})")

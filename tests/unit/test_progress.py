"""The progress meters: rich bars on a terminal (rendered here into a string), nothing when quiet."""

from __future__ import annotations

import io

from rich.console import Console

from repropack.cli.progress import HashMeter, PushMeter
from repropack.engine.types import PushProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=120), screen


def test_hash_meter_is_quiet_for_short_work_and_off_screens() -> None:
    lines: list[str] = []
    console, screen = terminal()
    clock = Clock()
    meter = HashMeter(enabled=True, write=lines.append, clock=clock, console=console)
    meter.update(10, 100)
    clock.now = 0.5
    meter.update(100, 100)
    clock.now = 0.9
    meter.done()
    assert lines == [] and screen.getvalue() == ""  # hashing within the first second shows nothing
    off = HashMeter(enabled=False, write=lines.append, clock=clock, console=console)  # --json, or no terminal
    off.update(0, 2**30)
    clock.now = 5.0
    off.update(2**30, 2**30)
    clock.now = 9.0
    off.done()
    assert lines == [] and screen.getvalue() == ""


def test_hash_meter_draws_a_bar_and_ends_with_one_summary() -> None:
    lines: list[str] = []
    console, screen = terminal()
    clock = Clock()
    meter = HashMeter(enabled=True, write=lines.append, clock=clock, console=console)
    for now, done in ((0.0, 0), (0.5, 2**29), (1.0, 2**30), (1.5, 3 * 2**29), (2.0, 2**31)):
        clock.now = now
        meter.update(done, 2**31)
    clock.now = 4.0
    meter.done()
    meter.done()
    assert lines == ["hashed data: 2.0 GiB in 4.0 s (512.0 MiB/s)"]
    drawn = screen.getvalue()
    assert "hashing data" in drawn
    assert "2.0/2.0 GiB" in drawn  # bytes done of the total
    assert "MiB/s" in drawn or "GiB/s" in drawn  # the rate


def test_push_meter_shows_bytes_and_layers() -> None:
    lines: list[str] = []
    console, screen = terminal()
    meter = PushMeter(enabled=True, write=lines.append, console=console)
    meter.update(PushProgress(layer="a", status="Pushing", current=2**20, total=4 * 2**20))
    meter.update(PushProgress(layer="b", status="Layer already exists", current=None, total=None))
    meter.update(PushProgress(layer="a", status="Pushing", current=3 * 2**20, total=4 * 2**20))
    meter.update(PushProgress(layer="", status="Preparing", current=None, total=None))  # not a layer: ignored
    meter.update(PushProgress(layer="a", status="Pushed", current=None, total=None))
    meter.done()
    assert lines == ["pushed: 2 layers"]
    drawn = screen.getvalue()
    assert "pushing (2 layers done)" in drawn
    assert "4.0/4.0 MiB" in drawn


def test_push_meter_is_quiet_when_disabled() -> None:
    lines: list[str] = []
    console, screen = terminal()
    meter = PushMeter(enabled=False, write=lines.append, console=console)
    meter.update(PushProgress(layer="a", status="Pushed", current=1, total=1))
    meter.done()
    assert lines == [] and screen.getvalue() == ""

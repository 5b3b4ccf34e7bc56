"""--max-output: the size parser, the folder measure and the watcher that stops a run past the cap."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from repropack.engine.output_cap import DEFAULT_MAX_OUTPUT, OutputWatcher, folder_size, parse_size
from repropack.errors import BadInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500M", 500 << 20),
        ("2G", 2 << 30),
        ("1GiB", 1 << 30),
        ("1gb", 1 << 30),
        ("50m", 50 << 20),
        ("1.5G", 3 << 29),
        ("10Mi", 10 << 20),
        ("2048K", 2 << 20),
        ("1048576", 1 << 20),
        (" 3 G ", 3 << 30),
        ("1T", 1 << 40),
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "abc", "-5M", "1iB", "5 MB extra", "1e9", "5X", "1,5G"])
def test_not_a_size(text: str) -> None:
    with pytest.raises(BadInput, match="--max-output takes a size like 500M, 2G, 1GiB or a number of bytes"):
        parse_size(text)


@pytest.mark.parametrize("text", ["0", "12", "1000K"])
def test_too_small(text: str) -> None:
    with pytest.raises(BadInput, match="is less than 1 MiB"):
        parse_size(text)


def test_too_large() -> None:
    with pytest.raises(BadInput, match="more than 1 PiB"):
        parse_size("2000T")


def test_the_default_is_one_gib() -> None:
    assert DEFAULT_MAX_OUTPUT == 1 << 30


def test_folder_size_counts_files_once_and_never_follows_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"x" * 100_000)
    os.link(tmp_path / "sub" / "a", tmp_path / "hard")
    big_outside = tmp_path.parent / f"{tmp_path.name}-outside"
    big_outside.write_bytes(b"y" * 1_000_000)
    (tmp_path / "link").symlink_to(big_outside)
    (tmp_path / "dirlink").symlink_to(tmp_path.parent)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(50_000_000)  # a size to read back, though few blocks
    size = folder_size(tmp_path)
    assert 50_100_000 <= size < 50_200_000
    big_outside.unlink()


def test_folder_size_of_a_missing_folder_is_zero(tmp_path: Path) -> None:
    assert folder_size(tmp_path / "absent") == 0


class FakeRun:
    """A container whose output grows by ``step`` bytes each time it is measured, until stopped."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.size = 0
        self.stops = 0
        self.stopped = threading.Event()

    def measure(self) -> int:
        if not self.stopped.is_set():
            self.size += self.step
        return self.size

    def stop(self) -> None:
        self.stops += 1
        self.stopped.set()


def test_the_watcher_stops_a_run_past_the_cap_once() -> None:
    run = FakeRun(step=10)
    watcher = OutputWatcher(run.measure, cap=35, stop=run.stop, interval=0.001)
    watcher.start()
    assert run.stopped.wait(5)
    watcher.close()
    assert watcher.exceeded and run.stops == 1 and run.size == 40
    assert watcher.check() and run.stops == 1  # the look after exit does not stop it again


def test_the_watcher_leaves_a_run_under_the_cap_alone() -> None:
    run = FakeRun(step=1)
    watcher = OutputWatcher(run.measure, cap=1 << 30, stop=run.stop, interval=0.001)
    watcher.start()
    time.sleep(0.05)
    watcher.close()
    assert not watcher.exceeded and run.stops == 0 and run.size > 1


def test_the_last_look_after_exit_catches_what_the_polls_missed() -> None:
    run = FakeRun(step=0)
    watcher = OutputWatcher(run.measure, cap=100, stop=run.stop, interval=3600)
    watcher.start()
    run.size = 101  # written between two looks, just before the container ended
    watcher.close()  # returns at once: closing does not wait for the next look
    assert watcher.check() and run.stops == 1

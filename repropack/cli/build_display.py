"""What `repropack build` shows on a terminal: one heading per phase, one line per Docker build step that
takes a while (cached and quick steps folded into the phase's count), a bar for wheels being downloaded, and a
summary with times. The engine's raw lines go to a log file (``--verbose`` shows them as they come), named
in the error when a step fails. With ``--json`` or when stderr is not a terminal nothing is shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from repropack.cli.progress import Bar, human_size

QUICK = 1.0  # seconds: a step this quick is counted in the phase's summary, not shown on its own
STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
PHASES = {
    "freeze": "freezing code, config, data and the lock",
    "wheels": "downloading the locked wheels",
    "environment": "building the environment image (the locked packages; reused until the lock changes)",
    "image": "building the image",
    "test": "running the experiment's tests in the new image (commands.test; --no-test skips them)",
}


class BuildDisplay:
    def __init__(
        self,
        *,
        enabled: bool,
        verbose: bool,
        write: Callable[[str], None],
        log: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.enabled = enabled
        self.verbose = verbose
        self.write = write
        self.log_path = log
        self.log: TextIO | None = None
        self.started = self.clock()
        self.phase: str | None = None
        self.phase_started = self.started
        self.times: dict[str, float] = {}
        self.step: tuple[int, int, str] | None = None
        self.step_started = self.started
        self.cached = 0
        self.steps = 0
        self.bar = Bar(None, clock)

    # -- phases ---------------------------------------------------------------------------------------------
    def on_phase(self, name: str) -> None:
        self._end_phase()
        self.phase, self.phase_started = name, self.clock()
        self.cached = self.steps = 0
        if self.enabled:
            self.write(f"{name:<12}{PHASES.get(name, name)}")

    def _end_phase(self) -> None:
        if self.phase is None:
            return
        self._end_step()
        seconds = self.clock() - self.phase_started
        self.times[self.phase] = seconds
        if self.enabled and self.steps:
            ran = self.steps - self.cached
            self.write(f"{'':<12}{self.steps} steps ({self.cached} from the cache, {ran} run) in {seconds:.1f} s")
        self.phase = None

    # -- the engine's lines ----------------------------------------------------------------------------------
    def on_line(self, line: str) -> None:
        if self.log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = self.log_path.open("w")
        self.log.write(line + "\n")
        self.log.flush()
        if self.verbose and self.enabled:
            self.write(line)
        match = STEP.match(line.strip())
        if match:
            self._end_step()
            self.steps += 1
            self.step = (int(match.group(1)), int(match.group(2)), match.group(3))
            self.step_started = self.clock()
        elif "Using cache" in line and self.step is not None:
            self.cached += 1
            self.step = None  # folded: counted, not shown

    def _end_step(self) -> None:
        if self.step is None:
            return
        number, total, instruction = self.step
        seconds = self.clock() - self.step_started
        if self.enabled and not self.verbose and seconds >= QUICK:  # quick steps are only counted
            shown = instruction if len(instruction) <= 72 else instruction[:69] + "..."
            self.write(f"{'':<12}step {number}/{total}  {shown}  ({seconds:.1f} s)")
        self.step = None

    # -- wheels ------------------------------------------------------------------------------------------------
    def on_wheels(self, done: int, total: int, size: int) -> None:
        if self.enabled:
            self.bar.update(f"{'':<12}wheels {done}/{total}", size, max(size, 1))
            self.bar.show()
        if done == total:
            self.bar.stop()
            seconds = self.clock() - self.phase_started
            if self.enabled:
                rate = f"{human_size(size / seconds)}/s" if seconds > 0 else "-"
                self.write(f"{'':<12}{total} wheels, {human_size(size)} in {seconds:.1f} s ({rate})")

    def close(self) -> dict[str, float]:
        """The phases' times; the log closed."""
        self._end_phase()
        self.bar.stop()
        if self.log is not None:
            self.log.close()
        return dict(self.times)

    def summary(self) -> None:
        if self.enabled:
            total = self.clock() - self.started
            parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.times.items())
            self.write(f"{'done':<12}in {total:.1f} s ({parts})")

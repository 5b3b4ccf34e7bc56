"""`repropack build` on a terminal: a heading per phase, slow steps one line each, cached and quick ones
folded into a count, the engine's raw lines in a log file only (unless --verbose), nothing when quiet."""

from __future__ import annotations

from pathlib import Path

from repropack.cli.build_display import BuildDisplay

ENGINE = [
    (0.0, "Step 1/4 : FROM sha256:abc"),
    (0.0, " ---> Using cache"),
    (0.1, "Step 2/4 : COPY code/ /repro/code/"),
    (0.2, " ---> 1234"),
    (0.3, "Step 3/4 : RUN pip install --no-index -r requirements.lock"),
    (0.4, "Collecting torch"),
    (9.0, "Successfully installed torch"),
    (9.3, "Step 4/4 : LABEL a=b"),
    (9.4, "Successfully built 5678"),
]


def show(tmp_path: Path, *, enabled: bool = True, verbose: bool = False) -> tuple[list[str], BuildDisplay]:
    now = [0.0]
    shown: list[str] = []
    display = BuildDisplay(
        enabled=enabled, verbose=verbose, write=shown.append, log=tmp_path / "logs" / "build.log", clock=lambda: now[0]
    )
    display.on_phase("image")
    for moment, line in ENGINE:
        now[0] = moment
        display.on_line(line)
    now[0] = 10.0
    display.close()
    display.summary()
    return shown, display


def test_slow_steps_are_shown_and_the_rest_folded(tmp_path: Path) -> None:
    shown, display = show(tmp_path)
    assert shown == [
        "image       building the image",
        "            step 3/4  RUN pip install --no-index -r requirements.lock  (9.0 s)",
        "            4 steps (1 from the cache, 3 run) in 10.0 s",
        "done        in 10.0 s (image 10.0 s)",
    ]
    log = (tmp_path / "logs" / "build.log").read_text().splitlines()
    assert log == [line for _, line in ENGINE]  # every raw line kept, for the error and for --verbose
    assert display.close() == {"image": 10.0}


def test_verbose_shows_the_engines_lines_and_quiet_shows_nothing(tmp_path: Path) -> None:
    verbose, _ = show(tmp_path, verbose=True)
    assert "Collecting torch" in verbose and not any("step 3/4" in line for line in verbose)
    quiet, _ = show(tmp_path, enabled=False)
    assert quiet == []
    assert (tmp_path / "logs" / "build.log").exists()  # the log is written all the same


def test_wheels_end_with_one_line_of_size_and_rate(tmp_path: Path) -> None:
    shown: list[str] = []
    now = [0.0]
    display = BuildDisplay(
        enabled=True, verbose=False, write=shown.append, log=tmp_path / "b.log", clock=lambda: now[0]
    )
    display.on_phase("wheels")
    display.on_wheels(0, 2, 0)
    now[0] = 2.0
    display.on_wheels(2, 2, 4 * 2**20)
    assert shown[-1] == "            2 wheels, 4.0 MiB in 2.0 s (2.0 MiB/s)"

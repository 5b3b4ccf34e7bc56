"""The verifying host is safe from what the container leaves in /output, on the real engine.

One hostile experiment, built once: its train command picks a hazard by the seed it is given, so each
test runs ``repropack verify --seeds N`` or ``repropack run --seed N``. Hazards planted "late" are made
by a process the command leaves behind, after the runtime wrote its own records, so they reach the host
exactly as a stranger's code can make them reach it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import CliResult, new_experiment

pytestmark = pytest.mark.docker

MARKER = 987654.321  # in the host file a link points to; must never show up in a report
CAP = 50 << 20

# Seeds: what the command does. "late": planted by a process left behind, once the runtime wrote run.json.
LINK_LATE, FIFO_AT_EXIT, FIFO_LATE, ZERO_LATE, MANY_FILES, BIG_FILE, LEFTOVERS = 1, 2, 3, 4, 5, 6, 7

HOSTILE_TRAIN = """\
import argparse, json, os, sys, time

parser = argparse.ArgumentParser()
for flag in ("--config", "--data", "--output"):
    parser.add_argument(flag)
parser.add_argument("--seed", type=int)
args = parser.parse_args()
config = json.load(open(args.config))
out = args.output
metrics = os.path.join(out, "metrics.json")
json.dump({"mean": 6.0}, open(metrics, "w"))


def plant(kind):
    temporary = os.path.join(out, ".planted")
    if kind == "link":
        os.symlink(config["host_file"], temporary)
    elif kind == "fifo":
        os.mkfifo(temporary)
    elif kind == "zero":
        os.symlink("/dev/zero", temporary)
    os.replace(temporary, metrics)


def plant_late(kind):
    if os.fork():
        sys.exit(0)  # the command ends; what it left behind goes on
    os.setsid()
    quiet = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)  # let go of the runtime's pipe
    while not os.path.lexists(os.path.join(out, "run.json")):
        pass
    plant(kind)
    time.sleep(600)


seed = args.seed
if seed == 1:
    plant_late("link")
elif seed == 2:
    plant("fifo")
elif seed == 3:
    plant_late("fifo")
elif seed == 4:
    plant_late("zero")
elif seed == 5:  # many files, each far under the cap
    block = b"x" * (1 << 20)
    for n in range(200):
        with open(os.path.join(out, f"part-{n:03d}"), "wb") as handle:
            handle.write(block)
    print("wrote 200 MiB", flush=True)
    time.sleep(600)
elif seed == 6:  # one file, as fast as it goes
    block = b"x" * (8 << 20)
    with open(os.path.join(out, "big.bin"), "wb") as handle:
        for _ in range(25):
            handle.write(block)
elif seed == 7:  # leftovers a verify must still clean up
    os.symlink(config["host_file"], os.path.join(out, "link-out"))
    os.symlink("/", os.path.join(out, "link-root"))
    os.mkfifo(os.path.join(out, "fifo"))
    locked = os.path.join(out, "locked")
    os.makedirs(os.path.join(locked, "inner"))
    open(os.path.join(locked, "inner", "file"), "w").close()
    os.symlink(config["host_file"], os.path.join(locked, "link-out"))
    os.chmod(os.path.join(locked, "inner"), 0)
    os.chmod(locked, 0o555)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1200):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
print("mean: 6.0")
"""


@dataclass
class Hostile:
    tag: str
    host_file: Path


def run_cli(*args: str, tmpdir: Path, timeout: int = 180) -> CliResult:
    """The real CLI with its temporary folder in ``tmpdir`` and its address space capped at 4 GiB (so a
    guard turned off reads /dev/zero into an error, not into the machine's memory)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "repropack", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        preexec_fn=limit,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def hostile(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    host_file = root / "host-secret.json"
    host_file.write_text(json.dumps({"mean": 6.0, "leak": MARKER}))
    experiment = new_experiment(
        root / "repo", name="hostile", train_py=HOSTILE_TRAIN, config={"host_file": str(host_file)}
    )
    tag = str(experiment.build("hostile")["tag"])
    yield Hostile(tag, host_file)


@pytest.fixture
def tmpdir_for_cli(tmp_path: Path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def assert_clean(result: CliResult, tmpdir: Path) -> None:
    text = result.stdout + result.stderr
    assert str(MARKER) not in text and "leak" not in text, "the host file's content reached the report"
    assert "Traceback" not in text and "unexpectedly" not in text, text
    left = [p.name for p in tmpdir.iterdir() if p.name.startswith("repropack-verify-")]
    assert left == [], f"verify left its temporary folder: {left}"


def verify(hostile: Hostile, seed: int, tmpdir: Path, *extra: str) -> CliResult:
    return run_cli("verify", hostile.tag, "--json", "--seeds", str(seed), *extra, tmpdir=tmpdir)


def run(hostile: Hostile, seed: int, tmpdir: Path, out: Path, *extra: str) -> CliResult:
    return run_cli("run", hostile.tag, "--seed", str(seed), "--output", str(out), *extra, tmpdir=tmpdir)


# -- records are read as regular files only --------------------------------------------------------------


def test_a_metrics_link_to_a_host_file_is_refused(hostile: Hostile, tmpdir_for_cli: Path, tmp_path: Path) -> None:
    for result in (verify(hostile, LINK_LATE, tmpdir_for_cli), run(hostile, LINK_LATE, tmpdir_for_cli, tmp_path / "o")):
        assert result.code == 4, result.stdout + result.stderr
        assert "/output/metrics.json is a symbolic link; repropack reads only regular files" in result.stderr
        assert_clean(result, tmpdir_for_cli)


def test_a_fifo_left_as_metrics_does_not_hang_the_runtime(
    hostile: Hostile, tmpdir_for_cli: Path, tmp_path: Path
) -> None:
    for result in (
        verify(hostile, FIFO_AT_EXIT, tmpdir_for_cli),
        run(hostile, FIFO_AT_EXIT, tmpdir_for_cli, tmp_path / "o"),
    ):
        assert result.code == 4, result.stdout + result.stderr
        assert "The metrics file /output/metrics.json is a FIFO" in result.stderr
        assert_clean(result, tmpdir_for_cli)


def test_a_fifo_planted_late_does_not_hang_verify(hostile: Hostile, tmpdir_for_cli: Path, tmp_path: Path) -> None:
    for result in (verify(hostile, FIFO_LATE, tmpdir_for_cli), run(hostile, FIFO_LATE, tmpdir_for_cli, tmp_path / "o")):
        assert result.code == 4, result.stdout + result.stderr
        assert "/output/metrics.json is a FIFO (named pipe); repropack reads only regular files" in result.stderr
        assert_clean(result, tmpdir_for_cli)


def test_a_metrics_link_to_dev_zero_is_refused(hostile: Hostile, tmpdir_for_cli: Path) -> None:
    result = verify(hostile, ZERO_LATE, tmpdir_for_cli)
    assert result.code == 4, result.stdout + result.stderr
    assert "/output/metrics.json is a symbolic link" in result.stderr
    assert_clean(result, tmpdir_for_cli)


# -- /output is bounded ----------------------------------------------------------------------------------


def test_many_small_files_past_max_output_stop_the_run(hostile: Hostile, tmpdir_for_cli: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    for kind, call in (
        ("verify", lambda: verify(hostile, MANY_FILES, tmpdir_for_cli, "--max-output", "50M")),
        ("run", lambda: run(hostile, MANY_FILES, tmpdir_for_cli, out, "--max-output", "50M")),
    ):
        started = time.monotonic()
        result = call()
        assert result.code == 4, result.stdout + result.stderr
        assert "wrote more than 50.0 MiB to /output (--max-output); it was stopped" in result.stderr, kind
        assert time.monotonic() - started < 90, f"{kind}: the run was not stopped (it sleeps 600 s)"
        assert_clean(result, tmpdir_for_cli)


def test_one_file_cannot_outgrow_max_output(hostile: Hostile, tmpdir_for_cli: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = run(hostile, BIG_FILE, tmpdir_for_cli, out, "--max-output", "50M")
    assert result.code == 4, result.stdout + result.stderr
    assert "File too large" in result.stderr or "--max-output" in result.stderr
    assert (out / "big.bin").stat().st_size <= CAP  # not a byte past it, though the watcher looks only now and then


def test_verify_of_a_normal_run_with_a_bounded_output_passes(hostile: Hostile, tmpdir_for_cli: Path) -> None:
    result = verify(hostile, LEFTOVERS, tmpdir_for_cli, "--max-output", "50M")
    assert result.code == 0, result.stdout + result.stderr
    assert result.json()["reproduced"] is True
    assert_clean(result, tmpdir_for_cli)


# -- verify's temporary folder is always removed ---------------------------------------------------------


def test_verify_removes_its_folder_whatever_the_run_left(hostile: Hostile, tmpdir_for_cli: Path) -> None:
    before = hostile.host_file.read_text(), hostile.host_file.stat().st_mode
    result = verify(hostile, LEFTOVERS, tmpdir_for_cli)
    assert result.code == 0, result.stdout + result.stderr
    assert_clean(result, tmpdir_for_cli)
    assert (hostile.host_file.read_text(), hostile.host_file.stat().st_mode) == before  # no link followed

"""The helper that lists the datasets while the command line starts: its listings are the freeze's own,
it never vouches for a changed dataset, and one that is late, broken or not needed leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from unit_factories import Experiment, MakeExperiment

from repropack import prefetch, statcache
from repropack.freeze import freeze_datasets
from repropack.hashing import Listed, hash_files, hash_tree, list_tree
from repropack.statcache import StatCache

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_helper_left() -> Iterator[None]:
    yield
    prefetch.cancel()


@pytest.fixture
def with_data(make_experiment: MakeExperiment, monkeypatch: pytest.MonkeyPatch) -> Experiment:
    """An experiment with a folder dataset whose files the stat cache may trust at once."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)  # a forked helper inherits it
    experiment = make_experiment(datasets={"points": {"path": "data/points.csv"}, "tiles": {"path": "tiles"}})
    for i in range(30):
        experiment.write(f"tiles/{i % 3}/{i}.bin", os.urandom(100))
    return experiment


def warm(experiment: Experiment) -> None:
    with StatCache.default() or pytest.fail("the cache is on in these tests") as cache:
        for dataset in experiment.load().datasets.values():
            hash_tree(dataset.path, cache=cache)


def start(experiment: Experiment) -> int:
    """Start the helper for ``freeze SPEC``; its process id."""
    prefetch.start(["freeze", str(experiment.spec_path)])
    assert prefetch._helper is not None, "no helper was started"
    return prefetch._helper.pid


def gone(pid: int) -> bool:
    """The process ended and was reaped (no zombie left)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["freeze", "{spec}"], "{spec}"),
        (["build", "{spec}", "--tag", "lab/x:1"], "{spec}"),
        (["--debug", "freeze", "-o", "out", "{spec}", "--json"], "{spec}"),
        (["verify", "{spec}"], None),  # verify freezes nothing
        (["freeze", "missing.yaml"], None),
        (["freeze"], None),
        ([], None),
    ],
)
def test_the_experiment_file_is_found_on_the_command_line(
    tmp_path: Path, argv: list[str], expected: str | None
) -> None:
    spec = tmp_path / "experiment.yaml"
    spec.write_text("version: 1\n")
    fill = {"spec": str(spec)}
    assert prefetch.spec_argument([arg.format(**fill) for arg in argv]) == (
        expected.format(**fill) if expected else None)


def same(a: Listed, b: Listed) -> bool:
    return (a.listing.names, a.listing.columns, a.listing.folders, a.listing.folder_columns, a.whole) == (
        b.listing.names, b.listing.columns, b.listing.folders, b.listing.folder_columns, b.whole)


def test_the_helpers_listing_is_the_freezes_own(with_data: Experiment) -> None:
    warm(with_data)
    before = time.time_ns()
    pid = start(with_data)
    answers = prefetch.collect(wait_s=30)
    assert set(answers) == {str(with_data.folder / "tiles")}  # a single file is one stat: left to the freeze
    with StatCache.default() or pytest.fail() as cache:
        for tree, answer in answers.items():
            assert same(answer, list_tree(Path(tree), cache)) and answer.whole is not None  # vouched for
            assert before <= answer.seen_ns <= time.time_ns()  # taken by the helper, before its stats
    assert prefetch.collect(wait_s=30) == {}  # given once
    assert gone(pid)


def test_a_dataset_changed_before_the_helper_looked_is_not_vouched_for_and_its_file_is_hashed(
    with_data: Experiment,
) -> None:
    warm(with_data)
    changed = with_data.folder / "tiles" / "1" / "4.bin"
    with open(changed, "r+b") as handle:  # in place: no folder moves
        handle.write(b"changed")
    start(with_data)
    listed = prefetch.collect(wait_s=30)[str(with_data.folder / "tiles")]
    assert listed.whole is None and "1/4.bin" in listed.listing.names
    with StatCache.default() or pytest.fail() as cache:
        hashed = hash_tree(with_data.folder / "tiles", cache=cache, listed=listed)
    assert hashed.stats.hashed_files == 1 and hashed.files["1/4.bin"] == hash_files(changed.parent, ["4.bin"])["4.bin"]


def test_the_freeze_hashes_from_the_helpers_listing_instead_of_listing_again(
    with_data: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repropack import hashing

    warm(with_data)
    expected = {name: ds.sha256 for name, ds in freeze_datasets(with_data.load()).items()}
    (with_data.folder / "tiles" / "0" / "0.bin").write_bytes(b"new content")  # one dataset to hash again
    start(with_data)  # forked before the traps below
    collect = prefetch.collect
    monkeypatch.setattr(prefetch, "collect", lambda: collect(wait_s=30))  # the freeze would not wait
    listed_here: list[str] = []
    scan, relisted = hashing.scan, StatCache.relisted
    monkeypatch.setattr(hashing, "scan", lambda path: listed_here.append(str(path)) or scan(path))
    monkeypatch.setattr(StatCache, "relisted",
                        lambda cache, tree, record: listed_here.append(tree) or relisted(cache, tree, record))
    frozen = freeze_datasets(with_data.load())
    assert frozen["points"].sha256 == expected["points"] and frozen["tiles"].sha256 != expected["tiles"]
    assert frozen["tiles"].stats.hashed_files == 1
    assert str(with_data.folder / "tiles") not in listed_here  # the helper's listing was used
    assert str(with_data.folder / "data" / "points.csv") in listed_here  # a single file: listed here


def test_a_helper_still_at_work_is_stopped_not_waited_for(
    with_data: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefetch, "list_datasets", lambda spec: time.sleep(60) or {})  # the fork inherits it
    started = time.monotonic()
    pid = start(with_data)
    assert prefetch.collect() == {}
    assert time.monotonic() - started < 30 and gone(pid)  # killed and reaped


@pytest.mark.parametrize("spec_text", ["version: [", "version: 1\nname: no-datasets-and-invalid\n"])
def test_a_spec_that_does_not_load_gives_no_answers(make_experiment: MakeExperiment, spec_text: str) -> None:
    experiment = make_experiment(spec_text=spec_text)
    pid = start(experiment)
    assert prefetch.collect(wait_s=30) == {} and gone(pid)


def test_with_the_cache_off_the_helper_lists_and_vouches_for_nothing(
    with_data: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm(with_data)
    monkeypatch.setenv("REPROPACK_NO_CACHE", "1")
    start(with_data)
    answers = prefetch.collect(wait_s=30)
    assert len(answers[str(with_data.folder / "tiles")].listing) == 30
    assert all(listed.whole is None for listed in answers.values())


def test_the_console_script_reports_a_dataset_changed_between_two_freezes(
    with_data: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through ``python -m repropack``, where the helper runs for real (the racy rule's two
    seconds included: the subprocess does not inherit this test's shortcut)."""
    def freeze() -> dict[str, object]:
        done = subprocess.run([sys.executable, "-m", "repropack", "freeze", str(with_data.spec_path), "--json",
                               "-o", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, check=False)
        assert done.returncode == 0, done.stderr
        manifest: dict[str, object] = json.loads((tmp_path / "out" / "manifest.json").read_text())
        return manifest

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # a dry run: the base by reference
    time.sleep(2.1)  # the files are older than the racy window
    first = freeze()
    again = freeze()  # with the cache warm (whether the helper or the freeze vouched, the answer is one)
    with open(with_data.folder / "tiles" / "2" / "5.bin", "r+b") as handle:
        handle.write(b"changed")
    time.sleep(2.1)
    changed = freeze()
    assert first["datasets"] == again["datasets"]
    assert changed["datasets"]["tiles"] != first["datasets"]["tiles"]  # type: ignore[index]
    assert changed["datasets"]["points"] == first["datasets"]["points"]  # type: ignore[index]

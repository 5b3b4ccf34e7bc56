"""Parallel hashing gives exactly the single-threaded answer, reports progress on the calling thread,
and walks folders the way the manifest expects (sorted, symlinks followed, loops skipped)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from repropack.checksums import hashing
from repropack.checksums.hashing import hash_files, hash_tree, list_files
from repropack.checksums.listing import scan


@pytest.fixture
def mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Large files (the pool's) and small ones (the loop's), with LARGE_FILE and CHUNK made tiny."""
    monkeypatch.setattr(hashing, "LARGE_FILE", 1000)
    monkeypatch.setattr(hashing, "CHUNK", 256)  # many reads per large file, a partial last one
    root = tmp_path / "mixed"
    (root / "big").mkdir(parents=True)
    (root / "small").mkdir()
    for i in range(12):
        (root / "big" / f"{i:02d}.bin").write_bytes(bytes([i]) * (1000 + 97 * i))
    for i in range(50):
        (root / "small" / f"{i:02d}.txt").write_bytes(str(i).encode() * i)
    (root / "empty").write_bytes(b"")
    return root


def expected(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_every_worker_count_gives_hashlibs_answer(mixed: Path, workers: int) -> None:
    result = hash_tree(mixed, workers=workers)
    assert {name: d.sha256 for name, d in result.files.items()} == expected(mixed)
    assert list(result.files) == sorted(result.files)
    assert all(d.size == (mixed / name).stat().st_size for name, d in result.files.items())
    assert result.stats.hashed_files == len(result.files) and result.stats.cached_files == 0


def test_hash_files_matches_hash_tree(mixed: Path) -> None:
    names = list_files(mixed)
    assert hash_files(mixed, names, workers=2) == hash_tree(mixed).files


def test_progress_counts_every_byte_on_the_calling_thread(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "PROGRESS_EVERY_S", 0.0)
    calls: list[tuple[int, int]] = []
    threads: set[int] = set()

    def record(done: int, total: int) -> None:
        calls.append((done, total))
        threads.add(threading.get_ident())

    hash_tree(mixed, on_progress=record, workers=3)
    total = sum(p.stat().st_size for p in mixed.rglob("*") if p.is_file())
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert {t for _, t in calls} == {total}
    assert threads == {threading.get_ident()}


def test_a_file_that_grew_after_its_stat_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "growing"
    path.write_bytes(b"abc")
    size = path.stat().st_size
    path.write_bytes(b"abcdefgh" * 1000)
    digest, _ = hashing._hash_small(str(path), size)
    assert digest.sha256 == hashlib.sha256(b"abcdefgh" * 1000).hexdigest()
    assert digest.size == 8000


def test_a_file_that_shrank_after_its_stat_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "shrinking"
    path.write_bytes(b"abcdefgh" * 100)
    size = path.stat().st_size
    path.write_bytes(b"abc")
    digest, _ = hashing._hash_small(str(path), size)
    assert (digest.sha256, digest.size) == (hashlib.sha256(b"abc").hexdigest(), 3)


def test_an_unreadable_file_fails_the_whole_hash(mixed: Path) -> None:
    (mixed / "big" / "03.bin").unlink()
    with pytest.raises(FileNotFoundError):
        hash_files(mixed, ["big/03.bin", "small/01.txt"], workers=2)


def test_scan_follows_symlinks_and_skips_loops(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"a")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (root / "sub" / "loop").symlink_to(root)  # back up the tree: would never end
    (root / "dangling").symlink_to(tmp_path / "missing")
    (root / "Z-upper.txt").write_bytes(b"z")
    found = scan(root)
    assert found.names == ["Z-upper.txt", "link.txt", "sub/a.txt"]
    assert found.size(1) == len(b"outside")  # the link's target, not the link


def test_the_same_folder_under_two_names_is_listed_twice(tmp_path: Path) -> None:
    """Two links to one folder are not a loop: the manifest lists both paths, as os.walk would."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "one").symlink_to(tmp_path / "real")
    (root / "two").symlink_to(tmp_path / "real")
    assert scan(root).names == ["one/x", "two/x"]


def test_default_workers_is_bounded() -> None:
    assert 1 <= hashing.default_workers() <= hashing.MAX_WORKERS


def test_progress_reaches_freeze_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """freeze's callback runs on across datasets: the second one's counts start where the first ended."""
    from repropack.experiment.model import Dataset
    from repropack.freeze import freeze_datasets

    monkeypatch.setenv("REPROPACK_NO_CACHE", "1")
    (tmp_path / "a").write_bytes(b"a" * 10)
    (tmp_path / "b").write_bytes(b"b" * 5)

    spec = SimpleNamespace(datasets={"a": Dataset("a", tmp_path / "a", True), "b": Dataset("b", tmp_path / "b", True)})
    calls: list[tuple[int, int]] = []
    frozen = freeze_datasets(spec, lambda done, total: calls.append((done, total)))  # type: ignore[arg-type]
    assert calls[-1] == (15, 15)
    assert (10, 10) in calls
    assert sum(ds.stats.hashed_bytes for ds in frozen.values()) == 15


def test_os_level_reads_release_no_descriptors(mixed: Path) -> None:
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(3):
        hash_tree(mixed, workers=2)
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    assert after <= before


# -- the stat pass ---------------------------------------------------------------------------------------------
@pytest.fixture
def many(tmp_path: Path) -> list[str]:
    paths = []
    for i in range(40):
        path = tmp_path / "many" / f"{i % 3}" / f"{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * i)
        paths.append(str(path))
    return paths


def test_the_stat_columns_are_in_the_order_given_and_a_file_gone_is_an_error(many: list[str]) -> None:
    from repropack.checksums import listing

    assert list(listing.stat_columns(many)[2]) == list(range(40))  # sizes, in the order given
    os.unlink(many[3])
    with pytest.raises(FileNotFoundError):
        listing.stat_columns(many)

"""sha256 of files and folders: stable, order-independent, the same on every thread layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from repropack.checksums import hashing
from repropack.checksums.hashing import hash_files, list_files, sha256_file
from repropack.checksums.index import FileDigest, tree_digest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "b.txt").write_bytes(b"bee\n")
    (root / "a.txt").write_bytes(b"ay\n")
    (root / "sub" / "c.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    return root


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "CHUNK", 7)  # force many partial reads
    data = bytes(range(256)) * 5 + b"tail"
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == FileDigest(hashlib.sha256(data).hexdigest(), len(data))


def test_list_files_is_sorted_posix_and_recursive(tree: Path) -> None:
    assert list_files(tree) == ["a.txt", "b.txt", "sub/c.bin", "sub/deeper/empty"]


def test_hash_files_returns_sorted_digests(tree: Path) -> None:
    result = hash_files(tree, ["sub/c.bin", "b.txt", "a.txt"])
    assert list(result) == ["a.txt", "b.txt", "sub/c.bin"]
    assert result["a.txt"] == FileDigest(hashlib.sha256(b"ay\n").hexdigest(), 3)


def test_hash_files_is_order_independent_and_stable(tree: Path) -> None:
    names = list_files(tree)
    assert hash_files(tree, names) == hash_files(tree, list(reversed(names)))


def test_large_files_on_the_pool_hash_like_small_ones(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_only = hash_files(tree, list_files(tree))
    monkeypatch.setattr(hashing, "LARGE_FILE", 1)  # every non-empty file takes the thread pool
    assert hash_files(tree, list_files(tree), workers=3) == small_only


def test_tree_digest_is_order_independent() -> None:
    a = {"x": FileDigest("1" * 64, 1), "y": FileDigest("2" * 64, 2)}
    b = {"y": FileDigest("2" * 64, 2), "x": FileDigest("1" * 64, 1)}
    assert tree_digest(a) == tree_digest(b)
    lines = f"{'1' * 64}  1  x\n{'2' * 64}  2  y\n"
    assert tree_digest(a) == hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize(
    "changed",
    [
        {"x": FileDigest("3" * 64, 1)},  # content
        {"x": FileDigest("1" * 64, 9)},  # size
        {"renamed": FileDigest("1" * 64, 1)},  # name
        {"x": FileDigest("1" * 64, 1), "extra": FileDigest("1" * 64, 1)},  # an added file
    ],
)
def test_tree_digest_changes_with_any_fact(changed: dict[str, FileDigest]) -> None:
    assert tree_digest(changed) != tree_digest({"x": FileDigest("1" * 64, 1)})


def test_tree_digest_changes_when_a_file_changes(tree: Path) -> None:
    before = tree_digest(hash_files(tree, list_files(tree)))
    (tree / "sub" / "c.bin").write_bytes(b"different")
    assert tree_digest(hash_files(tree, list_files(tree))) != before

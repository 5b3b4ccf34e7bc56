"""The stat cache never vouches for content it did not see: changed keys, racy timestamps, files that
change while read, concurrent writers and damaged files all end in a re-hash, never in an old hash."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from repropack.checksums import hashing, statcache
from repropack.checksums.hashing import hash_files, hash_tree
from repropack.checksums.index import FileDigest
from repropack.checksums.listing import Listing, scan
from repropack.checksums.statcache import RACY_NS, Record, StatCache, StatKey

OLD = 1_600_000_000_000_000_000  # a file time long before any test runs (2020)
NOW = OLD + 10 * RACY_NS


@pytest.fixture
def cache(tmp_path: Path) -> StatCache:
    return StatCache(tmp_path / "cache" / "stat.sqlite3")


@pytest.fixture
def no_racy_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files made by a test are seconds old at most: let the racy rule trust them at once."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(keys: dict[str, StatKey]) -> Listing:
    return Listing.of([(name, *key) for name, key in keys.items()])


def record(files: dict[str, tuple[StatKey, bytes]], seen_ns: int = NOW) -> Record:
    """The record of files with these stat keys and contents, as hash_tree would make it."""
    digests = {name: FileDigest(sha(data), key[2]) for name, (key, data) in files.items()}
    return Record.of(listing({name: key for name, (key, _) in files.items()}), digests, seen_ns, set())


def vouched(cache: StatCache, tree: str, keys: dict[str, StatKey]) -> dict[str, str]:
    """name -> sha256 of what the cache vouches for, whether whole or file by file."""
    whole, known = cache.vouch(cache.lookup(tree), listing(keys))
    if whole is not None:
        assert not known
        return {name: d.sha256 for name, d in hashing.FileIndex(whole, sorted(keys), 0).files.items()}
    return {name: d.sha256 for name, d in known.items()}


KEY: StatKey = (2049, 1234, 5, OLD, OLD)


# -- the key: any difference means no entry ------------------------------------------------------------------
def test_an_unchanged_tree_is_vouched_for_whole(cache: StatCache) -> None:
    files = {"a.txt": (KEY, b"hello"), "sub/b.txt": ((2049, 99, 5, OLD, OLD), b"world")}
    assert cache.store("/data", record(files))
    whole, known = cache.vouch(cache.lookup("/data"), listing({name: key for name, (key, _) in files.items()}))
    assert whole == f"{sha(b'hello')}  5  a.txt\n{sha(b'world')}  5  sub/b.txt\n".encode() and known == {}


def test_an_unchanged_key_is_vouched_for(cache: StatCache) -> None:
    assert cache.store("/data", record({"a.txt": (KEY, b"hello")}))
    assert vouched(cache, "/data", {"a.txt": KEY}) == {"a.txt": sha(b"hello")}


@pytest.mark.parametrize("field", range(5), ids=["device", "inode", "size", "mtime", "ctime"])
def test_any_changed_stat_field_is_not_vouched_for(cache: StatCache, field: int) -> None:
    cache.store("/data", record({"a.txt": (KEY, b"hello"), "b.txt": ((1, 2, 5, OLD, OLD), b"other")}))
    changed = list(KEY)
    changed[field] += 1
    found = vouched(
        cache,
        "/data",
        {"a.txt": (changed[0], changed[1], changed[2], changed[3], changed[4]), "b.txt": (1, 2, 5, OLD, OLD)},
    )
    assert found == {"b.txt": sha(b"other")}


def test_a_new_file_is_not_vouched_for_and_the_rest_are(cache: StatCache) -> None:
    cache.store("/data", record({"a.txt": (KEY, b"hello")}))
    whole, known = cache.vouch(cache.lookup("/data"), listing({"a.txt": KEY, "new.txt": (2049, 7, 1, OLD, OLD)}))
    assert whole is None and set(known) == {"a.txt"}


def test_entries_belong_to_their_dataset(cache: StatCache) -> None:
    cache.store("/data/one", record({"a.txt": (KEY, b"hello")}))
    assert vouched(cache, "/data/two", {"a.txt": KEY}) == {}


def test_inode_and_device_numbers_beyond_int64_are_kept_exactly(cache: StatCache) -> None:
    huge: StatKey = (2**64 - 1, 2**63 + 5, 5, OLD, OLD)
    cache.store("/data", record({"a.txt": (huge, b"hello")}))
    assert vouched(cache, "/data", {"a.txt": huge}) == {"a.txt": sha(b"hello")}
    assert vouched(cache, "/data", {"a.txt": (2**64 - 1, 2**63 + 6, 5, OLD, OLD)}) == {}


def test_a_changed_file_is_hashed_again(tmp_path: Path, cache: StatCache, no_racy_wait: None) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(b"first")
    os.utime(data / "a.bin", ns=(OLD, OLD))
    before = hash_tree(data, cache=cache)
    (data / "a.bin").write_bytes(b"other")  # same size
    os.utime(data / "a.bin", ns=(OLD + 1, OLD + 1))
    after = hash_tree(data, cache=cache)
    assert after.stats.hashed_files == 1
    assert after.files["a.bin"].sha256 == sha(b"other") != before.files["a.bin"].sha256


def test_a_replaced_file_with_the_same_size_and_mtime_is_hashed_again(
    tmp_path: Path, cache: StatCache, no_racy_wait: None
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(b"first")
    os.utime(data / "a.bin", ns=(OLD, OLD))
    hash_tree(data, cache=cache)
    (tmp_path / "new").write_bytes(b"other")
    os.utime(tmp_path / "new", ns=(OLD, OLD))
    os.replace(tmp_path / "new", data / "a.bin")  # a new inode, everything else as before
    assert hash_tree(data, cache=cache).files["a.bin"].sha256 == sha(b"other")


def test_an_unchanged_tree_is_not_read_again(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for name in ("a", "b", "sub/c"):
        (data / name).write_bytes(name.encode() * 100)
    first = hash_tree(data, cache=cache)
    assert first.stats.hashed_files == 3
    read: list[str] = []
    original = hashing._hash_small

    def reading(path: str, size: int) -> tuple[hashing.FileDigest, os.stat_result]:
        read.append(path)
        return original(path, size)

    monkeypatch.setattr(hashing, "_hash_small", reading)
    again = hash_tree(data, cache=cache)
    assert read == []
    assert again.files == first.files
    assert (again.stats.hashed_files, again.stats.cached_files, again.stats.cached_bytes) == (0, 3, 700)


def test_only_the_changed_file_is_read(tmp_path: Path, cache: StatCache, no_racy_wait: None) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(20):
        (data / f"{i}.txt").write_bytes(b"x" * i)
    hash_tree(data, cache=cache)
    (data / "7.txt").write_bytes(b"changed!")
    result = hash_tree(data, cache=cache)
    assert (result.stats.hashed_files, result.stats.hashed_bytes, result.stats.cached_files) == (1, 8, 19)


def test_a_single_file_dataset_is_cached_by_its_own_path(tmp_path: Path, cache: StatCache, no_racy_wait: None) -> None:
    (tmp_path / "one.csv").write_bytes(b"1,2\n")
    (tmp_path / "two.csv").write_bytes(b"3,4\n")
    assert hash_tree(tmp_path / "one.csv", cache=cache).stats.hashed_files == 1
    assert hash_tree(tmp_path / "two.csv", cache=cache).stats.hashed_files == 1
    again = hash_tree(tmp_path / "one.csv", cache=cache)
    assert again.stats.cached_files == 1
    assert list(again.files) == ["one.csv"]


def test_deleted_files_leave_the_record(tmp_path: Path, cache: StatCache, no_racy_wait: None) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep").write_bytes(b"k")
    (data / "gone").write_bytes(b"g")
    hash_tree(data, cache=cache)
    (data / "gone").unlink()
    assert list(hash_tree(data, cache=cache).files) == ["keep"]
    st = os.stat(data / "keep")
    keys = {"keep": (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), "gone": KEY}
    assert set(vouched(cache, os.path.abspath(data), keys)) == {"keep"}
    assert scan(data).names == ["keep"]


# -- racy timestamps ---------------------------------------------------------------------------------------
def test_an_entry_written_within_the_racy_window_is_not_trusted(cache: StatCache) -> None:
    racy = (2049, 1, 5, NOW - RACY_NS // 2, NOW - RACY_NS // 2)
    quiet = (2049, 2, 5, NOW - RACY_NS, NOW - RACY_NS)
    recent_ctime = (2049, 3, 5, OLD, NOW - 1)  # mtime set back by a tool; the change time tells
    cache.store("/data", record({"racy": (racy, b"r"), "quiet": (quiet, b"q"), "ctime": (recent_ctime, b"c")}))
    assert set(vouched(cache, "/data", {"racy": racy, "quiet": quiet, "ctime": recent_ctime})) == {"quiet"}


def test_a_racy_entry_in_the_database_is_still_not_trusted(cache: StatCache) -> None:
    """The rule holds when reading too, whatever wrote the record."""
    racy: StatKey = (2049, 1, 5, NOW, NOW)
    cache.store("/data", record({}))  # makes the database
    forged = Record(b"racy", statcache.columns_blob(listing({"racy": racy})), f"{sha(b'r')}  5  racy\n".encode(), NOW)
    with sqlite3.connect(cache.path) as conn:
        conn.execute(
            "UPDATE trees SET names = ?, columns = ?, idx = ?, seen_ns = ?, sha256 = ?",
            (forged.names, forged.columns, forged.index, forged.seen_ns, forged.digest()),
        )
    assert cache.vouch(cache.lookup("/data"), listing({"racy": racy})) == (None, {})
    assert not cache.discarded


def test_a_just_written_file_is_hashed_again_next_time(tmp_path: Path, cache: StatCache) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "fresh").write_bytes(b"one")
    hash_tree(data, cache=cache)
    mtime = os.stat(data / "fresh").st_mtime_ns
    (data / "fresh").write_bytes(b"two")  # within the same timestamp tick, as far as a coarse clock knows
    os.utime(data / "fresh", ns=(mtime, mtime))
    again = hash_tree(data, cache=cache)
    assert again.stats.hashed_files == 1
    assert again.files["fresh"].sha256 == sha(b"two")


@pytest.mark.parametrize("size", [5, 300_000], ids=["small", "large"])
def test_a_file_that_changes_while_read_is_hashed_again_next_time(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Another program rewrites the file (same size) just as it is read: this run may see either content,
    but the next one must not trust the record, and must find the new content."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "moving").write_bytes(b"1" * size)
    for name in ("_hash_small", "_hash_large"):
        original = getattr(hashing, name)

        def rewritten_meanwhile(path: str, *args: Any, _original: Any = original) -> Any:
            result = _original(path, *args)
            Path(path).write_bytes(b"2" * size)  # after the read, before the record is written
            return result

        monkeypatch.setattr(hashing, name, rewritten_meanwhile)
    hash_tree(data, cache=cache)
    monkeypatch.undo()
    monkeypatch.setattr(statcache, "RACY_NS", 0)
    again = hash_tree(data, cache=cache)
    assert again.stats.hashed_files == 1 and again.files["moving"].sha256 == sha(b"2" * size)


def test_a_file_whose_size_was_not_the_listed_one_is_not_recorded(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_bytes(b"12345")
    original = hashing._hash_small
    monkeypatch.setattr(
        hashing, "_hash_small", lambda path, size: (hashing.FileDigest(original(path, size)[0].sha256, size + 1), None)
    )
    hash_tree(data, cache=cache)
    monkeypatch.setattr(hashing, "_hash_small", original)
    assert hash_tree(data, cache=cache).stats.hashed_files == 1


# -- damage ----------------------------------------------------------------------------------------------
def test_a_garbage_file_is_discarded_not_trusted(cache: StatCache) -> None:
    cache.path.parent.mkdir(parents=True)
    cache.path.write_bytes(b"\x00garbage, not SQLite" * 500)
    assert vouched(cache, "/data", {"a.txt": KEY}) == {}
    assert cache.discarded
    assert not cache.path.exists()
    fresh = StatCache(cache.path)
    assert fresh.store("/data", record({"a.txt": (KEY, b"hello")}))
    assert vouched(fresh, "/data", {"a.txt": KEY}) == {"a.txt": sha(b"hello")}


def test_a_record_whose_bytes_changed_is_discarded(cache: StatCache) -> None:
    cache.store("/data", record({"a.txt": (KEY, b"hello")}))
    cache.close()
    with sqlite3.connect(cache.path) as conn:
        (index,) = conn.execute("SELECT idx FROM trees").fetchone()
        conn.execute("UPDATE trees SET idx = ?", (index.replace(sha(b"hello").encode(), sha(b"evil").encode()),))
    again = StatCache(cache.path)
    assert vouched(again, "/data", {"a.txt": KEY}) == {}
    assert again.discarded and not cache.path.exists()


@pytest.mark.parametrize("damage", ["short columns", "index of another file", "index line missing"])
def test_a_record_that_does_not_line_up_is_discarded(cache: StatCache, damage: str) -> None:
    """Even with a matching sha256 (written by a faulty program): never a digest for the wrong file."""
    good = record({"a.txt": (KEY, b"hello"), "b.txt": ((2049, 9, 5, OLD, OLD), b"other")})
    bad = {
        "short columns": Record(good.names, good.columns[:-8], good.index, good.seen_ns),
        "index of another file": Record(good.names, good.columns, good.index.replace(b"a.txt", b"c.txt"), good.seen_ns),
        "index line missing": Record(good.names, good.columns, good.index.split(b"\n", 1)[1], good.seen_ns),
    }[damage]
    cache.store("/data", bad)
    assert vouched(cache, "/data", {"a.txt": KEY, "b.txt": (2049, 9, 5, OLD, OLD + 1)}) == {}  # file by file
    assert cache.discarded


def test_a_damaged_database_never_gives_a_wrong_hash(cache: StatCache) -> None:
    cache.store("/data", record({f"{i}": ((1, i, 5, OLD, OLD), b"x") for i in range(2000)}))
    cache.close()
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) // 2] + b"\xff" * 4096 + data[len(data) // 2 + 4096 :])
    again = StatCache(cache.path)
    found = vouched(again, "/data", {"1": (1, 1, 5, OLD, OLD)})
    assert found == {} or found["1"] == sha(b"x")  # never a wrong hash; usually discarded
    assert again.discarded or found


def test_another_programs_database_is_not_used(cache: StatCache) -> None:
    cache.path.parent.mkdir(parents=True)
    with sqlite3.connect(cache.path) as conn:
        conn.execute("CREATE TABLE trees (path TEXT, body BLOB, sha256 TEXT, written_ns INTEGER)")
    assert vouched(cache, "/data", {"a.txt": KEY}) == {}
    assert cache.discarded


def test_a_busy_database_is_skipped_not_waited_on_forever(cache: StatCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "BUSY_TIMEOUT_S", 0.05)
    cache.store("/data", record({"a.txt": (KEY, b"hello")}))
    other = StatCache(cache.path)
    blocker = sqlite3.connect(cache.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert vouched(other, "/data", {"a.txt": KEY}) == {}
        assert not other.store("/data", record({}))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert not other.discarded and cache.path.exists()
    assert vouched(other, "/data", {"a.txt": KEY})


def test_an_unwritable_cache_folder_means_no_cache(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    cache = StatCache(tmp_path / "file" / "stat.sqlite3")  # its folder cannot be made
    assert vouched(cache, "/data", {"a.txt": KEY}) == {}
    assert not cache.store("/data", record({"a.txt": (KEY, b"x")}))


# -- concurrency ---------------------------------------------------------------------------------------------
def _writer(path: str, writer: int, rounds: int) -> int:
    cache = StatCache(Path(path))
    written = 0
    for round_ in range(rounds):
        payload = f"{writer}-{round_}".encode()
        entries = record({f"f{i}": ((1, i, 5, OLD, OLD), payload) for i in range(300)})
        written += cache.store("/shared", entries)
        written += cache.store(f"/own-{writer}", entries)
        found = vouched(cache, "/shared", {f"f{i}": (1, i, 5, OLD, OLD) for i in range(300)})
        # a record is one writer's, whole: never a mix of two writers' entries
        assert len(set(found.values())) <= 1, "a record mixed two writers"
        assert len(found) in (0, 300)
    cache.close()
    return written


def test_concurrent_writers_do_not_corrupt_the_cache(cache: StatCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "BUSY_TIMEOUT_S", 30.0)
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("fork")) as pool:
        counts = list(pool.map(_writer, [str(cache.path)] * 3, range(3), [25] * 3))
    assert sum(counts) == 3 * 25 * 2  # every write landed: writers queued, none gave up or discarded
    check = StatCache(cache.path)
    with sqlite3.connect(cache.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for writer in range(3):
        own = vouched(check, f"/own-{writer}", {f"f{i}": (1, i, 5, OLD, OLD) for i in range(300)})
        assert len(own) == 300 and set(own.values()) == {sha(f"{writer}-24".encode())}
    assert not check.discarded


def test_threads_with_their_own_connections_share_the_cache(cache: StatCache) -> None:
    """Also: the first runs race to make the database; none may take another's half-made file for damage."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(_writer, [str(cache.path)] * 4, range(4), [5] * 4))
    assert sum(counts) == 4 * 5 * 2
    check = StatCache(cache.path)
    assert len(vouched(check, "/own-3", {f"f{i}": (1, i, 5, OLD, OLD) for i in range(300)})) == 300
    assert not check.discarded


# -- switches ------------------------------------------------------------------------------------------------
def test_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REPROPACK_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("REPROPACK_NO_CACHE", raising=False)
    default = StatCache.default()
    assert default is not None and default.path.is_relative_to(tmp_path)
    monkeypatch.setenv("REPROPACK_NO_CACHE", "1")
    assert StatCache.default() is None
    monkeypatch.setenv("REPROPACK_NO_CACHE", "0")
    assert StatCache.default() is not None


# -- listing again without a walk: only while no folder moved -------------------------------------------------
@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The trees walked (the others were listed again from the cache's record)."""
    from repropack.checksums import listing as listing_module

    seen: list[str] = []
    original = listing_module._walk

    def counting(tree: str) -> Any:
        seen.append(tree)
        return original(tree)

    monkeypatch.setattr(listing_module, "_walk", counting)
    return seen


def dataset(root: Path) -> Path:
    for name in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    return root


def test_an_unchanged_tree_is_not_walked_again(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, walks: list[str]
) -> None:
    data = dataset(tmp_path / "data")
    first = hash_tree(data, cache=cache)
    again = hash_tree(data, cache=cache)
    assert walks == [str(data)] and again.index == first.index and again.stats.cached_files == 3


def test_a_file_changed_in_place_is_hashed_again_without_a_walk(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, walks: list[str]
) -> None:
    data = dataset(tmp_path / "data")
    hash_tree(data, cache=cache)
    with open(data / "sub" / "b.txt", "r+b") as handle:  # in place: no folder moves
        handle.write(b"B")
    again = hash_tree(data, cache=cache)
    assert again.files["sub/b.txt"] == hash_files(data, ["sub/b.txt"])["sub/b.txt"]
    assert again.stats.hashed_files == 1 and again.stats.cached_files == 2 and len(walks) == 1


@pytest.mark.parametrize("change", ["added", "removed", "renamed", "added, folder time set back", "new folder"])
def test_a_changed_folder_is_walked_and_its_files_found(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, walks: list[str], change: str
) -> None:
    data = dataset(tmp_path / "data")
    hash_tree(data, cache=cache)
    deeper = data / "sub" / "deeper"
    before = os.stat(deeper)
    expected = {"a.txt", "sub/b.txt", "sub/deeper/c.txt"}
    if change.startswith("added"):
        (deeper / "new.txt").write_bytes(b"new")
        expected.add("sub/deeper/new.txt")
        if change.endswith("set back"):
            os.utime(deeper, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime still tells
    elif change == "removed":
        (deeper / "c.txt").unlink()
        expected.remove("sub/deeper/c.txt")
    elif change == "renamed":
        (deeper / "c.txt").rename(deeper / "d.txt")
        expected = expected - {"sub/deeper/c.txt"} | {"sub/deeper/d.txt"}
    else:
        (deeper / "more").mkdir()
        (deeper / "more" / "e.txt").write_bytes(b"e")
        expected.add("sub/deeper/more/e.txt")
    again = hash_tree(data, cache=cache)
    assert set(again.files) == expected and len(walks) == 2


def test_a_linked_folder_that_changed_is_walked(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, walks: list[str]
) -> None:
    data = dataset(tmp_path / "data")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_bytes(b"x")
    (data / "linked").symlink_to(tmp_path / "elsewhere")
    hash_tree(data, cache=cache)
    (tmp_path / "elsewhere" / "y.txt").write_bytes(b"y")  # the link's own folder does not move
    assert "linked/y.txt" in hash_tree(data, cache=cache).files and len(walks) == 2


def test_a_folder_changed_within_the_racy_window_is_walked(
    tmp_path: Path, cache: StatCache, walks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dataset(tmp_path / "data")
    for path in [*data.rglob("*.txt")]:
        os.utime(path, ns=(OLD, OLD))  # the files look old; the folders were just made
    monkeypatch.setattr(statcache, "RACY_NS", 0)
    hash_tree(data, cache=cache)
    monkeypatch.setattr(statcache, "RACY_NS", 3600 * 10**9)  # now every folder counts as just changed
    hash_tree(data, cache=cache)
    assert len(walks) == 2


def test_a_record_missing_some_files_is_never_used_to_list(
    tmp_path: Path, cache: StatCache, no_racy_wait: None, walks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dataset(tmp_path / "data")
    moved = hashing._moved
    monkeypatch.setattr(hashing, "_moved", lambda listing, hashed: {"a.txt"})  # as if a.txt changed while read
    hash_tree(data, cache=cache)
    monkeypatch.setattr(hashing, "_moved", moved)
    again = hash_tree(data, cache=cache)
    assert set(again.files) == {"a.txt", "sub/b.txt", "sub/deeper/c.txt"} and again.stats.hashed_files == 1
    assert len(walks) == 2

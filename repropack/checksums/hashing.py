"""SHA-256 of files and folders, the way every repropack digest is computed.

Files of ``LARGE_FILE`` bytes and more are hashed on a small thread pool (hashlib releases the GIL while
it hashes, and each thread reads into one reused buffer); smaller files are hashed in a plain loop on the
calling thread meanwhile, where a pool would only fight over the GIL. On two cores that beats a single
thread by 1.3-2x, and a pool over every file as well. A stat cache (``repropack.checksums.statcache``) lets
unchanged files skip the read altogether: a tree is listed once (one ``stat`` per file, kept as columns of
integers, not objects) and, when nothing in it moved, its index comes from the cache in one piece.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from repropack.checksums.index import FileDigest, FileIndex, tree_lines
from repropack.checksums.listing import Listing, scan, signed
from repropack.checksums.statcache import Record, StatCache

CHUNK = 1 << 20
LARGE_FILE = 256 << 10
MAX_WORKERS = 8
PROGRESS_EVERY_S = 0.1

ProgressCallback = Callable[[int, int], None]
"""``on_progress(bytes hashed so far, bytes to hash in all)``, called on the calling thread."""


@dataclass(frozen=True)
class HashStats:
    """What one hashing pass read, and what the stat cache spared it."""

    hashed_files: int = 0
    hashed_bytes: int = 0
    cached_files: int = 0
    cached_bytes: int = 0

    def __add__(self, other: HashStats) -> HashStats:
        return HashStats(
            self.hashed_files + other.hashed_files,
            self.hashed_bytes + other.hashed_bytes,
            self.cached_files + other.cached_files,
            self.cached_bytes + other.cached_bytes,
        )


@dataclass(frozen=True)
class TreeHashes:
    index: FileIndex
    stats: HashStats

    @property
    def files(self) -> dict[str, FileDigest]:
        return self.index.files


def sha256_file(path: Path) -> FileDigest:
    digest, _ = _hash_large(os.fspath(path), None)
    return digest


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as a sorted POSIX path relative to it (symlinks followed)."""
    return scan(root).names


def hash_files(
    root: Path, names: list[str], workers: int | None = None, *, on_progress: ProgressCallback | None = None
) -> dict[str, FileDigest]:
    """Hash ``names`` (relative to ``root``), without the stat cache; returns them in sorted order."""
    base = os.fspath(root)
    items = [(name, os.path.join(base, name), os.stat(os.path.join(base, name)).st_size) for name in names]
    hashed = _hash_all(items, workers, _Progress(sum(size for _, _, size in items), on_progress))
    return {name: hashed[name][0] for name in sorted(hashed)}


def hash_tree(
    path: Path,
    *,
    cache: StatCache | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> TreeHashes:
    """Hash the file at ``path`` (named by its own name) or every file under the folder at ``path``,
    reading only the files ``cache`` cannot vouch for, and recording the tree there."""
    with _collector_paused():
        return _hash_tree(os.path.abspath(path), cache, on_progress, workers)


class NameNotUtf8(ValueError):
    """A file whose name is not valid UTF-8 (a dataset's index names every file in UTF-8)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a file name is not UTF-8: {name!r}")
        self.name = name  # as the file system gave it (undecodable bytes as surrogate escapes)


def _check_names(names: list[str]) -> None:
    """NameNotUtf8 for the first name the index could not hold: checked before any file is read."""
    try:
        "\n".join(names).encode()
    except UnicodeEncodeError:
        for name in names:
            try:
                name.encode()
            except UnicodeEncodeError:
                raise NameNotUtf8(name) from None


@dataclass(frozen=True)
class Listed:
    """A tree listed for hashing: its files with their stats, the moment before those stats were taken
    (the racy rule's reference), and the tree's index when the stat cache vouched for every file."""

    listing: Listing
    seen_ns: int
    whole: bytes | None = None


def _list(tree: str, cache: StatCache | None) -> tuple[Listed, dict[str, FileDigest]]:
    """The tree listed, and the files the cache vouches for."""
    seen_ns = time.time_ns()  # before any stat: the racy rule compares the files' times with this moment
    record = cache.lookup(tree) if cache is not None else None
    # no folder moved: the files are the recorded names, stat-ed again without a walk
    relisted = cache.relisted(tree, record) if cache is not None and record is not None else None
    listing = relisted or scan(Path(tree))
    whole, known = cache.vouch(record, listing) if cache is not None else (None, {})
    return Listed(listing, seen_ns, whole), known


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Hashing a tree makes tens of thousands of small objects, none in a reference cycle: the cyclic
    collector would walk every object of the process again and again for nothing (a tenth of a second
    for 20,000 files in the CLI). Reference counting frees them as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _hash_tree(
    tree: str, cache: StatCache | None, on_progress: ProgressCallback | None, workers: int | None
) -> TreeHashes:
    listed, known = _list(tree, cache)
    listing = listed.listing
    if listed.whole is not None:  # nothing moved since the record was made: its index is this tree's
        return _cached(listed.whole, listing)
    _check_names(listing.names)
    lead = (tree if os.path.isdir(tree) else os.path.dirname(tree)) + os.sep
    sizes = listing.columns[2]
    todo = [(name, lead + name, sizes[i]) for i, name in enumerate(listing.names) if name not in known]
    hashed = _hash_all(todo, workers, _Progress(sum(size for _, _, size in todo), on_progress))
    files = {name: hashed[name][0] if name in hashed else known[name] for name in listing.names}
    index = FileIndex(tree_lines(files), listing.names, listing.total_bytes())
    if cache is not None:
        record = Record.of(listing, files, listed.seen_ns, leave_out=_moved(listing, hashed), index=index.data)
        cache.store(tree, record)
    hashed_bytes = sum(digest.size for digest, _ in hashed.values())
    cached_bytes = sum(digest.size for digest in known.values())
    return TreeHashes(index, HashStats(len(hashed), hashed_bytes, len(known), cached_bytes))


def _cached(index: bytes, listing: Listing) -> TreeHashes:
    total = listing.total_bytes()
    return TreeHashes(FileIndex(index, listing.names, total), HashStats(cached_files=len(listing), cached_bytes=total))


def _moved(listing: Listing, hashed: dict[str, _Hashed]) -> set[str]:
    """The files read as they changed: they did not have the listed size, or (large files, read over many
    calls) their stat after reading is not the one listed. They are left out of the cache's record."""
    dev, ino, size, mtime, ctime = listing.columns
    moved = set()
    for i, name in enumerate(listing.names):
        if name in hashed:
            digest, after = hashed[name]
            if digest.size != size[i] or (
                after is not None
                and (
                    after.st_mtime_ns != mtime[i]
                    or after.st_ctime_ns != ctime[i]
                    or after.st_size != size[i]
                    or signed(after.st_ino) != ino[i]
                    or signed(after.st_dev) != dev[i]
                )
            ):  # stored folded
                moved.add(name)
    return moved


# -- the hashing itself ------------------------------------------------------------------------------------
_Hashed = tuple[FileDigest, os.stat_result | None]  # the digest, and the file's stat once read (large files)


class _Progress:
    """Bytes hashed so far, counted by any thread, reported (throttled) on the calling thread."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.callback = callback
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def add(self, size: int) -> None:
        with self.lock:
            self.done += size

    def report(self, *, final: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if final or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.callback(self.done, self.total)


_buffers = threading.local()


def _hash_large(path: str, progress: _Progress | None) -> _Hashed:
    """Stream a file through one reused buffer per thread (no allocation per read)."""
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) != CHUNK:
        buffer = _buffers.buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
            size += read
            if progress is not None:
                progress.add(read)
        after = os.fstat(handle.fileno())
    return FileDigest(digest.hexdigest(), size), after


def _hash_small(path: str, expected_size: int) -> _Hashed:
    """A small file in as few system calls as it takes: open, one read, close. Asking for one byte more
    than listed tells a grown file; fewer bytes than listed, a shrunk one (or a file system's short read):
    either is read on to its end. No stat after reading: a file that changes while it is read gets a new
    change time, which the next listing sees (the stat cache's racy rule covers the same clock tick)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        want = min(expected_size + 1, CHUNK)
        data = os.read(fd, want)
        digest = hashlib.sha256(data)
        size = len(data)
        if size != expected_size:
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
                size += len(chunk)
    finally:
        os.close(fd)
    return FileDigest(digest.hexdigest(), size), None


def default_workers() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, available))


def _hash_all(items: list[tuple[str, str, int]], workers: int | None, progress: _Progress) -> dict[str, _Hashed]:
    """(name, path, size) -> name -> (digest, stat after reading). Large files go to the pool, largest
    first (the longest jobs start early); small ones are hashed here meanwhile."""
    large = sorted((item for item in items if item[2] >= LARGE_FILE), key=lambda item: -item[2])
    small = [item for item in items if item[2] < LARGE_FILE]
    results: dict[str, _Hashed] = {}
    pool = ThreadPoolExecutor(max_workers=workers or default_workers()) if large else None
    try:
        futures: dict[Future[_Hashed], str] = {}
        if pool is not None:
            futures = {pool.submit(_hash_large, path, progress): name for name, path, _ in large}
        for count, (name, path, size) in enumerate(small):
            results[name] = _hash_small(path, size)
            progress.add(results[name][0].size)
            if count % 64 == 0:
                progress.report()
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
            progress.report()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    progress.report(final=True)
    return results

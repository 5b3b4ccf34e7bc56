"""The stat cache: sha256 of dataset files that have not changed since they were last hashed, keyed by
path, device, inode, size, mtime and ctime, in one SQLite file (one row per dataset, replaced in one
transaction). It never vouches for content it did not see: racy timestamps, files that changed while
read and damaged records all mean a re-hash. ``REPROPACK_NO_CACHE=1`` turns it off. The rules are in
docs/architecture.md, "The stat cache"."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from repropack.cache import cache_root, disabled
from repropack.checksums.index import FileDigest, tree_lines
from repropack.checksums.listing import Columns, Listing, columns_bytes, columns_from_bytes, relist
from repropack.runtime.layout import index_entry, index_lines

T = TypeVar("T")

SCHEMA = 2  # 1: one JSON entry per file
APPLICATION_ID = 0x52505354  # "RPST": the file is repropack's stat cache, not some other database
RACY_NS = 2_000_000_000  # 2 s: the coarsest common timestamp granularity (FAT), with room for clock jitter
KEEP_NS = 180 * 24 * 3600 * 10**9  # records not rewritten for this long are dropped (datasets long gone)
BUSY_TIMEOUT_S = 5.0
PAGE_SIZE = 65536  # SQLite's largest: a record of many files is read in a few pages, not hundreds

StatKey = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns

BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# not a database, malformed pages, or a schema that is not ours (no such table or column)
DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_ERROR}


def trusted(key: StatKey, seen_ns: int) -> bool:
    """Whether an entry whose stat was taken at ``seen_ns`` may vouch for the file (the racy rule)."""
    return max(key[3], key[4]) + RACY_NS <= seen_ns


@dataclass(frozen=True)
class Record:
    """One tree as it was hashed: its files' names and stat keys, their index, and when the stats were taken."""

    names: bytes  # the relative names, NUL-separated (a file name cannot hold NUL)
    columns: bytes  # the five stat columns, int64 little-endian, one after the other
    index: bytes  # 'sha256  size  name' lines of exactly these files, in the same order
    seen_ns: int
    folders: bytes = b""  # the folders walked to list them ('.': the tree), NUL-separated
    folder_columns: bytes = b""  # their stat columns, as above

    @classmethod
    def of(
        cls,
        listing: Listing,
        files: dict[str, FileDigest],
        seen_ns: int,
        leave_out: set[str],
        index: bytes | None = None,
    ) -> Record:
        """The record of ``listing`` hashed as ``files`` (whose index is ``index``, when the caller has it),
        less the files the racy rule does not trust yet and those in ``leave_out``."""
        folders = ("\0".join(listing.folders).encode("utf-8", "surrogateescape"), columns_bytes(listing.folder_columns))
        if not leave_out and listing.newest_ns() + RACY_NS <= seen_ns:
            return cls(names_blob(listing), columns_blob(listing), index or tree_lines(files), seen_ns, *folders)
        kept = listing.select(
            [i for i, name in enumerate(listing.names) if name not in leave_out and trusted(listing.key(i), seen_ns)]
        )
        if len(kept) != len(listing):
            folders = (b"", b"")  # the record does not hold every file: the tree must be walked next time
        return cls(
            names_blob(kept),
            columns_blob(kept),
            tree_lines({name: files[name] for name in kept.names}),
            seen_ns,
            *folders,
        )

    def digest(self) -> str:
        digest = hashlib.sha256()
        for part in (
            self.names,
            self.columns,
            self.index,
            str(self.seen_ns).encode(),
            self.folders,
            self.folder_columns,
        ):
            digest.update(b"%d:" % len(part))
            digest.update(part)
        return digest.hexdigest()

    def relisted(self, tree: str) -> Listing | None:
        """The tree listed again from this record's names when none of its folders moved (see
        :func:`repropack.checksums.listing.relist`); None otherwise."""
        if not self.folders:
            return None
        folders = self.folders.decode("utf-8", "surrogateescape").split("\0")
        dev, ino, size, mtime, ctime = _unblob(self.folder_columns, len(folders))
        if max(max(mtime), max(ctime)) + RACY_NS > self.seen_ns:
            return None  # a folder changed in the same clock tick as its stat could look unchanged: walk
        names = self.names.decode("utf-8", "surrogateescape").split("\0") if self.names else []
        listing = relist(Path(tree), names, folders, (dev, ino, size, mtime, ctime))
        if listing is not None:
            listing.encoded_names = self.names
        return listing


def names_blob(listing: Listing) -> bytes:
    if listing.encoded_names is not None:
        return listing.encoded_names
    return "\0".join(listing.names).encode("utf-8", "surrogateescape")


def columns_blob(listing: Listing) -> bytes:
    return columns_bytes(listing.columns)


def _unblob(blob: bytes, count: int) -> Columns:
    try:
        return columns_from_bytes(blob, count)
    except ValueError:
        raise Damaged("a record's names and stat keys do not line up") from None


def vouch(record: Record | None, listing: Listing) -> tuple[bytes | None, dict[str, FileDigest]]:
    """What ``record`` vouches for in ``listing``: the whole index when every file is as recorded and
    trusted (nothing to hash), else the digests of the files that are, one by one."""
    if record is None:
        return None, {}
    if (
        record.names == names_blob(listing)
        and record.columns == columns_blob(listing)
        and listing.newest_ns() + RACY_NS <= record.seen_ns
    ):
        return record.index, {}
    names = record.names.decode("utf-8", "surrogateescape").split("\0") if record.names else []
    lines = index_lines(record.index)
    count = len(names)
    if len(lines) != count:
        raise Damaged("a record's names and index do not line up")
    dev, ino, size, mtime, ctime = _unblob(record.columns, count)
    position = {name: j for j, name in enumerate(names)}
    known: dict[str, FileDigest] = {}
    for i, name in enumerate(listing.names):
        j = position.get(name)
        if j is None:
            continue  # a new file
        recorded = (dev[j], ino[j], size[j], mtime[j], ctime[j])
        key = listing.key(i)
        if recorded == key and trusted(key, record.seen_ns):
            digest, indexed_size, indexed = index_entry(lines[j])
            if indexed != name or indexed_size != key[2]:
                raise Damaged("a record's index does not match its names")
            known[name] = FileDigest(digest, key[2])
    return None, known


def default_path() -> Path:
    return cache_root() / "hashes" / f"stat-v{SCHEMA}.sqlite3"


class Damaged(Exception):
    """The database is not what this module wrote: it is discarded."""


# what reading a damaged record can raise (decoding errors are ValueErrors)
DAMAGE = (Damaged, ValueError, TypeError, IndexError, KeyError)


class StatCache:
    """The cache in one SQLite file. Its methods degrade to "nothing cached"; none raises for the cache."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.discarded = False  # a damaged database was found (and deleted) during this run
        self._conn: sqlite3.Connection | None = None
        self._off = False  # this run goes on without the cache

    @classmethod
    def default(cls) -> StatCache | None:
        """The user's cache, or None when ``REPROPACK_NO_CACHE`` is set."""
        return None if disabled() else cls(default_path())

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def lookup(self, tree: str) -> Record | None:
        """The record of ``tree`` (a dataset's absolute path), checked against its sha256; None when there
        is none or the cache cannot help."""
        return self._guarded(lambda conn: _read(conn, tree), default=None)

    def vouch(self, record: Record | None, listing: Listing) -> tuple[bytes | None, dict[str, FileDigest]]:
        """:func:`vouch`, where a record found damaged is discarded (with the whole cache) and vouches for
        nothing."""
        try:
            return vouch(record, listing)
        except DAMAGE:
            self._discard()
            return None, {}

    def relisted(self, tree: str, record: Record | None) -> Listing | None:
        """:meth:`Record.relisted`, where a record found damaged is discarded and gives nothing."""
        try:
            return record.relisted(tree) if record is not None else None
        except DAMAGE:
            self._discard()
            return None

    def store(self, tree: str, record: Record) -> bool:
        """Replace the record of ``tree``. Returns whether it was written."""
        now = time.time_ns()

        def write(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tree,
                        record.names,
                        record.columns,
                        record.index,
                        record.seen_ns,
                        record.folders,
                        record.folder_columns,
                        record.digest(),
                        now,
                    ),
                )
                conn.execute("DELETE FROM trees WHERE written_ns < ?", (now - KEEP_NS,))
            return True

        return self._guarded(write, default=False)

    # -- the database ------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        # No fsync: transactions stay atomic against a killed run (the journal is still written); a power
        # cut may damage the file, and a damaged cache is discarded, never trusted (each row has its sha256).
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect only in a new, empty file
        try:
            if _identity(conn) != (APPLICATION_ID, SCHEMA):
                with _transaction(conn):  # decided under the write lock: another run may be making it right now
                    found = _identity(conn)
                    if found == (0, 0) and not _has_tables(conn):
                        _create(conn)
                    elif found != (APPLICATION_ID, SCHEMA):
                        raise Damaged(f"not a repropack stat cache (application id {found[0]}, version {found[1]})")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _guarded(self, action: Callable[[sqlite3.Connection], T], *, default: T) -> T:
        """Run ``action`` on the database and give its result, or ``default`` when the cache cannot help:
        busy (another run holds it), unusable (this run goes on without it) or damaged (deleted)."""
        if self._off:
            return default
        try:
            return action(self._connect())
        except DAMAGE:
            self._discard()
        except sqlite3.Error as error:
            code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF  # the primary of an extended code
            if code in DAMAGED_CODES:
                self._discard()
            elif code not in BUSY_CODES:
                self.close()
                self._off = True  # read-only, full, unreadable: not damage; leave the file alone
        except OSError:
            self._off = True  # the cache folder cannot be made
        return default

    def _discard(self) -> None:
        self.close()
        self.discarded = True
        self._off = True
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")


def _read(conn: sqlite3.Connection, tree: str) -> Record | None:
    row = conn.execute(
        "SELECT names, columns, idx, seen_ns, folders, folder_columns, sha256 FROM trees WHERE path = ?", (tree,)
    ).fetchone()
    if row is None:
        return None
    names, columns, index, seen_ns, folders, folder_columns, digest = row
    blobs = (names, columns, index, folders, folder_columns)
    if not all(isinstance(blob, bytes) for blob in blobs) or not isinstance(seen_ns, int):
        raise Damaged(f"the record of {tree} is not what this module writes")
    record = Record(names, columns, index, seen_ns, folders, folder_columns)
    if record.digest() != digest:
        raise Damaged(f"the record of {tree} does not match its sha256")
    return record


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once (IMMEDIATE: two writers queue instead of deadlocking)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _has_tables(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])


def _identity(conn: sqlite3.Connection) -> tuple[int, int]:
    """(application id, schema version) from the file's header, in one statement (one consistent read)."""
    row = conn.execute("SELECT * FROM pragma_application_id, pragma_user_version").fetchone()
    return int(row[0]), int(row[1])


def _create(conn: sqlite3.Connection) -> None:
    """The table and the header's identity; the caller holds the write transaction."""
    conn.execute(
        "CREATE TABLE trees (path TEXT PRIMARY KEY, names BLOB NOT NULL, columns BLOB NOT NULL, "
        "idx BLOB NOT NULL, seen_ns INTEGER NOT NULL, folders BLOB NOT NULL, folder_columns BLOB NOT NULL, "
        "sha256 TEXT NOT NULL, written_ns INTEGER NOT NULL)"
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA}")

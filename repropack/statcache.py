"""The stat cache: sha256 of dataset files that have not changed since they were last hashed.

A file is identified by its absolute path and the facts ``stat`` gives for free: device, inode, size,
modification and change time (DVC keys its cache on inode, size and mtime; git's index adds ctime, which
no user tool can set back). Any difference means the file is read and hashed again. More rules keep the
cache from ever vouching for content it did not see:

- Racy timestamps (git's "racy clean" problem): a file modified within ``RACY_NS`` of the moment its
  stat was taken could change again without its timestamps moving (they tick coarsely on some file
  systems). Such an entry is never trusted; the file is hashed again until it has been quiet that long.
- A file that changed while it was being read (its stat after reading differs from before) is not
  recorded (the caller checks; see ``repropack.hashing.hash_tree``).
- Concurrent runs: one SQLite database; each dataset (a file, or a folder) is one row holding all its
  entries, replaced in one transaction, so a reader sees one writer's complete record or the previous
  one. A busy database means the cache is skipped for this run, never an error.
- Damage: a file that is not SQLite, malformed pages, a foreign schema, or a record whose sha256 does not
  match its bytes means the whole file is deleted (and made afresh by the next run); nothing in it is used.

``REPROPACK_NO_CACHE=1`` turns the cache off (every file is hashed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = 1
APPLICATION_ID = 0x52505354  # "RPST": the file is repropack's stat cache, not some other database
RACY_NS = 2_000_000_000  # 2 s: the coarsest common timestamp granularity (FAT), with room for clock jitter
KEEP_NS = 180 * 24 * 3600 * 10**9  # records not rewritten for this long are dropped (datasets long gone)
BUSY_TIMEOUT_S = 5.0

StatKey = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns
Entry = tuple[int, int, int, int, int, str, int]  # the stat key, the sha256, and when the stat was taken (ns)

BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# not a database, malformed pages, or a schema that is not ours (no such table or column)
DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_ERROR}


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def trusted(key: StatKey, seen_ns: int) -> bool:
    """Whether an entry whose stat was taken at ``seen_ns`` may vouch for the file (the racy rule)."""
    return max(key[3], key[4]) + RACY_NS <= seen_ns


def disabled() -> bool:
    return os.environ.get("REPROPACK_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def default_path() -> Path:
    from repropack.freeze.wheels import cache_root

    return cache_root() / "hashes" / f"stat-v{SCHEMA}.sqlite3"


class Damaged(Exception):
    """The database is not what this module wrote: it is discarded."""


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

    def lookup(self, tree: str, files: Mapping[str, StatKey]) -> dict[str, Entry]:
        """The recorded entries of ``tree`` (a dataset's absolute path) that still vouch for its files:
        name -> entry, for each name in ``files`` whose recorded stat key is its current one exactly and
        whose entry the racy rule trusts. Files missing from the answer must be hashed."""

        def read(conn: sqlite3.Connection) -> dict[str, Entry]:
            row = conn.execute("SELECT body, sha256 FROM trees WHERE path = ?", (tree,)).fetchone()
            if row is None:
                return {}
            body, digest = row
            if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != digest:
                raise Damaged(f"the record of {tree} does not match its sha256")
            return _matching(json.loads(body), files)

        return self._guarded(read, default={})

    def store(self, tree: str, entries: Mapping[str, Entry]) -> bool:
        """Replace the record of ``tree`` with ``entries`` (name -> entry, the sha256 as hashlib's hexdigest
        gives it); entries the racy rule does not trust are left out. Returns whether it was written."""
        kept = {name: entry for name, entry in entries.items() if max(entry[3], entry[4]) + RACY_NS <= entry[6]}
        body = json.dumps(kept, separators=(",", ":")).encode()
        now = time.time_ns()

        def write(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                conn.execute("INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?)",
                             (tree, body, hashlib.sha256(body).hexdigest(), now))
                conn.execute("DELETE FROM trees WHERE written_ns < ?", (now - KEEP_NS,))
            return True

        return self._guarded(write, default=False)

    # -- the database ------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
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
        except (Damaged, ValueError, TypeError, IndexError, KeyError):  # and json's errors: a damaged record
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


def _matching(record: Any, files: Mapping[str, StatKey]) -> dict[str, Entry]:
    """The entries of a decoded record that vouch for ``files``. Entries were checked when they were
    stored and the record's bytes against its sha256; a record of the wrong shape is still damage."""
    if not isinstance(record, dict):
        raise Damaged("a record is not a mapping")
    found: dict[str, Entry] = {}
    for name, entry in record.items():
        key = files.get(name)
        if key is None:
            continue  # the file is gone, or not asked about
        dev, ino, size, mtime_ns, ctime_ns, sha256, seen_ns = entry  # a wrong length raises: damage
        if (dev, ino, size, mtime_ns, ctime_ns) == key and max(mtime_ns, ctime_ns) + RACY_NS <= seen_ns:
            found[name] = (dev, ino, size, mtime_ns, ctime_ns, sha256, seen_ns)
    return found


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
    conn.execute("CREATE TABLE trees (path TEXT PRIMARY KEY, body BLOB NOT NULL, sha256 TEXT NOT NULL, "
                 "written_ns INTEGER NOT NULL)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA}")

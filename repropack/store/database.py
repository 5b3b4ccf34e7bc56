"""The store's database boundary: one small interface, two engines (SQLite from the standard library,
PostgreSQL through psycopg), one SQL dialect.

The store's SQL is the portable subset both engines take (``?`` placeholders, translated for psycopg;
``ON CONFLICT``; ``DOUBLE PRECISION``; ``BIGINT``). The standard library's sqlite3 is used rather than an
ORM: importing SQLAlchemy takes about 0.45 s on this machine, which alone is the whole time budget of
``repropack runs`` over 10,000 runs; sqlite3 takes 0.05 s.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from repropack.errors import BadInput, EnvironmentProblem

Row = tuple[Any, ...]
BUSY_TIMEOUT_S = 60.0


class Conflict(Exception):
    """A unique constraint refused a row (the name is taken): the caller picks another."""


class Database(Protocol):
    """What the store needs from a database. Statements run inside :meth:`transaction`."""

    where: str  # the store's location for messages, without a password

    def transaction(self, *, exclusive: bool = False) -> contextlib.AbstractContextManager[None]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def tables(self) -> set[str]: ...

    def close(self) -> None: ...


class SqliteDatabase:
    """A store in one SQLite file: write-ahead logging, so readers never wait for a writer, and a busy
    timeout, so two recorders take turns instead of failing."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise EnvironmentProblem(
                f"The run store {path} cannot be opened ({exc}).",
                hint="Check that the folder is writable, or point REPROPACK_STORE elsewhere.",
            ) from None
        with self._errors():
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA foreign_keys=ON")

    @contextlib.contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        with self._errors():
            self._connection.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")
            raise
        with self._errors():
            self._connection.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._errors():
            return self._connection.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._errors():
            self._connection.executemany(sql, [tuple(row) for row in rows])

    def tables(self) -> set[str]:
        return {row[0] for row in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        self._connection.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise Conflict(str(exc)) from None
            raise
        except sqlite3.OperationalError as exc:
            full = "disk is full" in str(exc)
            raise EnvironmentProblem(
                f"The run store {self.where} could not be {'written' if full else 'used'} ({exc}).",
                hint="Free some disk space and run again."
                if full
                else "Check the store's file and folder (permissions, disk), or point REPROPACK_STORE elsewhere.",
            ) from None
        except sqlite3.DatabaseError as exc:
            raise EnvironmentProblem(
                f"The run store {self.where} is not a readable SQLite database ({exc}).",
                hint="Point REPROPACK_STORE at another file, or restore this one from a backup.",
            ) from None


class PostgresDatabase:
    """A lab's shared store on a PostgreSQL server (psycopg 3)."""

    def __init__(self, url: str) -> None:
        self.where = redact(url)
        try:
            import psycopg
        except ImportError:
            raise EnvironmentProblem(
                "REPROPACK_STORE names a PostgreSQL server, and psycopg is not installed.",
                hint="Install it: pip install 'repropack[postgres]'.",
            ) from None
        self._psycopg = psycopg
        try:
            self._connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise EnvironmentProblem(
                f"The run store {self.where} cannot be reached ({str(exc).strip().splitlines()[0]}).",
                hint="Check REPROPACK_STORE (host, port, database, user) and that the server is running.",
            ) from None

    @contextlib.contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        with self._errors(), self._connection.transaction():
            if exclusive:  # one migrator at a time, across every client of this server
                self._connection.execute("SELECT pg_advisory_xact_lock(7283945)")
            yield

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._errors():
            cursor = self._connection.execute(_pyformat(sql), tuple(params))
            return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._errors(), self._connection.cursor() as cursor:
            cursor.executemany(_pyformat(sql), [tuple(row) for row in rows])

    def tables(self) -> set[str]:
        rows = self.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {row[0] for row in rows}

    def close(self) -> None:
        self._connection.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        errors = self._psycopg.errors
        try:
            yield
        except errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from None
        except (errors.DiskFull, errors.OutOfMemory) as exc:
            raise EnvironmentProblem(
                f"The run store {self.where} could not be written ({str(exc).strip()}).",
                hint="Ask the server's administrator for space.",
            ) from None
        except self._psycopg.OperationalError as exc:
            raise EnvironmentProblem(
                f"The run store {self.where} stopped answering ({str(exc).strip()}).",
                hint="Check the server, then run again.",
            ) from None


def _pyformat(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (no statement holds a literal '%' or '?')."""
    return sql.replace("%", "%%").replace("?", "%s")


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def connect(location: str) -> Database:
    """The database ``location`` names: ``postgresql://...``, ``sqlite:///PATH``, or a file path."""
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(location)
    if location.startswith("sqlite:"):
        path = location.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise BadInput(f"REPROPACK_STORE={location} names no file.", hint="Write sqlite:///PATH/runs.sqlite.")
        return SqliteDatabase(Path(path))
    if "://" in location:
        raise BadInput(
            f"REPROPACK_STORE={redact(location)} is neither a PostgreSQL URL nor a file.",
            hint="Use postgresql://USER@HOST/DB, sqlite:///PATH or a path; unset it for the default store.",
        )
    return SqliteDatabase(Path(location).expanduser())

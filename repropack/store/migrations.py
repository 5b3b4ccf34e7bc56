"""The store's schema, as numbered migrations: an older store is upgraded in place, a newer one refused.

Each migration runs once, in order, inside one exclusive transaction with the version bump, so an
upgrade interrupted half-way leaves the store as it was. Never edit a released migration: add one.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from repropack.errors import EnvironmentProblem
from repropack.store.database import Database
from repropack.store.records import summary


def _v1_runs_and_outputs(db: Database) -> None:
    db.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            grp TEXT NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            image TEXT NOT NULL,
            image_id TEXT NOT NULL,
            started TEXT NOT NULL,
            recorder TEXT NOT NULL,
            UNIQUE (grp, name)
        )"""
    )
    db.execute("CREATE INDEX runs_started ON runs (started, id)")
    db.execute("CREATE INDEX runs_group ON runs (grp, started, id)")
    db.execute("CREATE INDEX runs_status ON runs (status)")
    db.execute(
        """CREATE TABLE documents (
            run_id TEXT PRIMARY KEY REFERENCES runs (id),
            record TEXT NOT NULL,
            private TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE outputs (
            run_id TEXT NOT NULL REFERENCES runs (id),
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size BIGINT NOT NULL,
            PRIMARY KEY (run_id, path)
        )"""
    )


def _v2_summaries(db: Database) -> None:
    """Each run's summary beside its row, so ``runs`` and ``compare`` over 10,000 runs parse one small
    document per run (in one call), not whole records."""
    db.execute("ALTER TABLE runs ADD COLUMN summary TEXT")
    rows = [
        (json.dumps(summary(json.loads(record)), sort_keys=True), run_id)
        for run_id, record in db.execute("SELECT run_id, record FROM documents")
    ]
    if rows:
        db.executemany("UPDATE runs SET summary = ? WHERE id = ?", rows)


MIGRATIONS: tuple[Callable[[Database], None], ...] = (_v1_runs_and_outputs, _v2_summaries)
LATEST = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    """The store's version, 0 for an empty database; reads only."""
    if "store_meta" not in db.tables():
        return 0
    rows = db.execute("SELECT value FROM store_meta WHERE key = 'schema_version'")
    return int(rows[0][0]) if rows else 0


def upgrade(db: Database, latest: int = LATEST) -> int:
    """Bring the store to version ``latest``; returns the version it had. Refuses a newer store."""
    with db.transaction():
        found = schema_version(db)
    if found == latest:
        return found
    with db.transaction(exclusive=True):
        found = schema_version(db)  # again, under the lock: another process may have upgraded it
        if found > latest:
            raise EnvironmentProblem(
                f"The run store {db.where} has schema version {found}, newer than this repropack knows "
                f"({latest}): a newer repropack wrote it.",
                hint="Upgrade repropack (pip install -U repropack), or point REPROPACK_STORE at another store.",
            )
        db.execute("CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for migration in MIGRATIONS[found:latest]:
            migration(db)
        db.execute(
            "INSERT INTO store_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(latest),),
        )
    return found

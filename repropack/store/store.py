"""The run store: records in the database, their output files and logs as blobs.

``REPROPACK_STORE`` names the database (default: ``runs.sqlite`` in repropack's cache folder) and
``REPROPACK_STORE_BLOBS`` the blob folder (default: ``blobs/`` beside the default database; required
with a PostgreSQL store, and then a folder every user of the store can reach).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any, cast

from repropack.cache import cache_root
from repropack.errors import BadInput
from repropack.store.blobs import BlobStore
from repropack.store.database import Conflict, Database, connect
from repropack.store.migrations import upgrade
from repropack.store.records import RunRecord, Status, summary

STORE_ENV = "REPROPACK_STORE"
BLOBS_ENV = "REPROPACK_STORE_BLOBS"


def default_location() -> tuple[str, Path]:
    configured = os.environ.get(STORE_ENV, "").strip()
    blobs = os.environ.get(BLOBS_ENV, "").strip()
    if not configured:
        root = cache_root() / "store"
        return str(root / "runs.sqlite"), Path(blobs) if blobs else root / "blobs"
    if configured.startswith(("postgresql://", "postgres://")) and not blobs:
        raise BadInput(
            f"{STORE_ENV} names a shared PostgreSQL store, and {BLOBS_ENV} is not set.",
            hint=f"Set {BLOBS_ENV}=DIR to a folder every user of the store can reach (the runs' files live there).",
        )
    if blobs:
        return configured, Path(blobs)
    path = Path(configured.removeprefix("sqlite:").removeprefix("//")).expanduser()
    return configured, path.parent / "blobs"


def _process_token(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (so a reused pid is not taken for the recorder)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def recorder_token() -> str:
    return f"{socket.gethostname()} {os.getpid()} {_process_token(os.getpid())}"


def _recorder_gone(token: str) -> bool:
    """True when the recording process is known to be gone: it ran on this host and no longer runs."""
    host, _, rest = token.partition(" ")
    pid, _, start = rest.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: only it can tell
    return _process_token(int(pid)) != start


class Store:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs
        upgrade(db)

    @classmethod
    def open(cls) -> Store:
        location, blobs = default_location()
        return cls(connect(location), BlobStore(blobs))

    def close(self) -> None:
        self.db.close()

    # -- writing -------------------------------------------------------------------------------------------
    def begin(self, record: RunRecord, private: dict[str, Any], recorder: str | None = None) -> RunRecord:
        """Insert the record as ``running``; its name is made unique in its group (name-2, name-3, ...).
        ``recorder`` names who ends it (default: this process; a cluster's job for a submitted task)."""
        base = record["name"]
        for attempt in range(1, 10_000):
            record["name"] = base if attempt == 1 else f"{base}-{attempt}"
            try:
                with self.db.transaction():
                    self.db.execute(
                        "INSERT INTO runs (id, grp, name, kind, status, image, image_id, started, recorder, summary) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*_columns(record), recorder or recorder_token(), _dump(summary(record))),
                    )
                    self.db.execute(
                        "INSERT INTO documents (run_id, record, private) VALUES (?, ?, ?)",
                        (record["id"], _dump(record), _dump(private)),
                    )
                return record
            except Conflict:
                continue
        raise BadInput(f"The group '{record['group']}' has too many runs named '{base}'.", hint="Name the run.")

    def finish(self, record: RunRecord) -> None:
        """Write the whole record and its outputs in one transaction: all of it or none."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE runs SET grp = ?, name = ?, kind = ?, status = ?, image = ?, image_id = ?, started = ?, "
                "summary = ? WHERE id = ?",
                (*_columns(record)[1:], _dump(summary(record)), record["id"]),
            )
            self.db.execute("UPDATE documents SET record = ? WHERE run_id = ?", (_dump(record), record["id"]))
            self.db.execute("DELETE FROM outputs WHERE run_id = ?", (record["id"],))
            self.db.executemany(
                "INSERT INTO outputs (run_id, path, sha256, size) VALUES (?, ?, ?, ?)",
                [(record["id"], f["path"], f["sha256"], f["size"]) for f in record["outputs"]],
            )

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        self._settle([run_id])
        rows = self.db.execute("SELECT record FROM documents WHERE run_id = ?", (run_id,))
        if not rows:
            raise BadInput(f"There is no run {run_id} in the run store {self.db.where}.")
        return cast(RunRecord, json.loads(rows[0][0]))

    def private(self, run_id: str) -> dict[str, Any]:
        rows = self.db.execute("SELECT private FROM documents WHERE run_id = ?", (run_id,))
        return cast(dict[str, Any], json.loads(rows[0][0])) if rows else {}

    def resolve(self, ref: str) -> RunRecord:
        """A run by id, unique id prefix, or GROUP/NAME."""
        ref = ref.strip()
        if not ref:
            raise BadInput("A run is named by its id (or a unique prefix of it) or by GROUP/NAME, not ''.")
        if "/" in ref:
            group, _, name = ref.rpartition("/")
            rows = self.db.execute("SELECT id FROM runs WHERE grp = ? AND name = ?", (group, name))
            if not rows:
                raise BadInput(
                    f"There is no run named '{name}' in the group '{group}'.",
                    hint="See the group's runs with: repropack runs --group " + (group or "''"),
                )
            return self.get(rows[0][0])
        if not all(c in "0123456789abcdef" for c in ref.lower()):
            raise BadInput(
                f"'{ref}' is not a run id (hexadecimal) or GROUP/NAME.", hint="See them with: repropack runs"
            )
        rows = self.db.execute("SELECT id FROM runs WHERE id LIKE ? ORDER BY id LIMIT 6", (ref.lower() + "%",))
        if not rows:
            raise BadInput(f"No run's id starts with '{ref}'.", hint="See the recorded runs with: repropack runs")
        if len(rows) > 1:
            shown = ", ".join(row[0][:12] for row in rows[:5])
            raise BadInput(f"'{ref}' is the start of more than one run's id ({shown}...).", hint="Give more digits.")
        return self.get(rows[0][0])

    def summaries(
        self,
        *,
        group: str | None = None,
        image: str | None = None,
        status: str | None = None,
        ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run summaries (oldest first), each with its metrics; nothing parses a whole record."""
        texts = self.summary_texts(group=group, image=image, status=status, ids=ids)
        return cast(list[dict[str, Any]], json.loads("[" + ",".join(texts) + "]"))

    def summary_texts(
        self,
        *,
        group: str | None = None,
        image: str | None = None,
        status: str | None = None,
        ids: list[str] | None = None,
    ) -> list[str]:
        """The summaries as stored: canonical JSON (sorted keys), one string per run, oldest first."""
        where, params = _filters(group, image, status, ids)
        self._settle(None)
        return [row[0] for row in self.db.execute(f"SELECT summary FROM runs{where} ORDER BY started, id", params)]

    def group_records(self, group: str) -> list[RunRecord]:
        rows = self.db.execute("SELECT id FROM runs WHERE grp = ? ORDER BY started, id", (group,))
        return [self.get(row[0]) for row in rows]

    def _settle(self, ids: list[str] | None) -> None:
        """Mark ``running`` records whose recorder on this host has died as ``lost`` (kill -9, power cut)."""
        if ids is None:
            rows = self.db.execute("SELECT id, recorder FROM runs WHERE status = 'running'")
        else:
            rows = self.db.execute("SELECT id, recorder FROM runs WHERE status = 'running' AND id = ?", (ids[0],))
        for run_id, token in rows:
            if _recorder_gone(token):
                self.mark(run_id, "lost", f"The recording process ({token.split()[1]}) ended before the run did.")

    def mark(self, run_id: str, status: Status, error: str) -> None:
        """End a running record as ``status`` (killed, lost) when nothing else will finish it."""
        with self.db.transaction():
            rows = self.db.execute(
                "SELECT record FROM documents JOIN runs ON runs.id = documents.run_id "
                "WHERE run_id = ? AND status = 'running'",
                (run_id,),
            )
            if not rows:
                return
            record = cast(RunRecord, json.loads(rows[0][0]))
            record["status"] = status
            record["error"] = error
            self.db.execute(
                "UPDATE runs SET status = ?, summary = ? WHERE id = ? AND status = 'running'",
                (status, _dump(summary(record)), run_id),
            )
            self.db.execute("UPDATE documents SET record = ? WHERE run_id = ?", (_dump(record), run_id))

    def outputs(self, run_id: str) -> list[tuple[str, str, int]]:
        return [
            (row[0], row[1], int(row[2]))
            for row in self.db.execute(
                "SELECT path, sha256, size FROM outputs WHERE run_id = ? ORDER BY path", (run_id,)
            )
        ]

    # -- live logs -------------------------------------------------------------------------------------------
    def live_log(self, run_id: str) -> Path:
        return self.blobs.root / "live" / f"{run_id}.log"

    def live_log_writer(self, run_id: str) -> LiveLog:
        return LiveLog(self.live_log(run_id))


class LiveLog:
    """The log of a running run, appended line by line (``logs --follow`` reads it). A full disk stops the
    writing, never the run: ``problem`` then says why the log is incomplete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        self._handle: Any = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8", errors="replace")
        except OSError as exc:
            self.problem = exc.strerror or str(exc)

    def write(self, line: str) -> None:
        if self._handle is None:
            return
        try:
            self._handle.write(line + "\n")
            self._handle.flush()
        except OSError as exc:
            self.problem = exc.strerror or str(exc)
            self.close()

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    def __enter__(self) -> LiveLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _columns(record: RunRecord) -> tuple[Any, ...]:
    return (
        record["id"],
        record["group"],
        record["name"],
        record["kind"],
        record["status"],
        record["image"],
        record["image_id"],
        record["started"],
    )


def _filters(
    group: str | None, image: str | None, status: str | None, ids: list[str] | None
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if group is not None:
        clauses.append("runs.grp = ?")
        params.append(group)
    if image is not None:
        bare = image.removeprefix("sha256:")
        clauses.append("(runs.image = ? OR runs.image_id LIKE ?)")
        params += [image, f"sha256:{bare}%"]
    if status is not None:
        clauses.append("runs.status = ?")
        params.append(status)
    if ids is not None:
        clauses.append(f"runs.id IN ({', '.join('?' for _ in ids)})")
        params += ids
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)

"""Recorded runs copied into an MLflow tracking store: ``repropack runs export --mlflow TRACKING_URI``.

One MLflow experiment per repropack experiment (the record's ``experiment``, created or reused) and one
MLflow run per ended record: its seed, command, overrides (``set.KEY``), image id, manifest and config
digests and dataset digests (``data.NAME.sha256``) as params; its metrics, with each ``history`` series as
steps; its name, group, status, kind and exit code as ``repropack.*`` tags; its start and end times; its
log as the artifact ``log.txt``. Nothing else of the record goes, and the record holds no host path.

Exporting again adds only what is not there yet: every MLflow run carries the tag ``repropack.run_id``,
and a record whose id is already tagged on an active run of its experiment is skipped. A run left
``RUNNING`` by an export that was interrupted is deleted and exported anew; records still running are
left for a later export (their MLflow run would otherwise stay ``RUNNING`` for ever).

MLflow is an optional extra (``pip install 'repropack[mlflow]'``, the light ``mlflow-skinny``), imported
only here and only when exporting. It is used through ``MlflowClient(tracking_uri=...)``, never through
the process-wide fluent API. A ``file:`` store (or a plain folder) is opted into for the export itself:
MLflow 3 refuses it unless ``MLFLOW_ALLOW_FILE_STORE`` is true, and naming it is the user's choice.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from repropack.errors import BadInput, EnvironmentProblem

if TYPE_CHECKING:
    from repropack.store.records import RunRecord
    from repropack.store.store import Store

RUN_ID_TAG = "repropack.run_id"
LOG_ARTIFACT = "log.txt"
MLFLOW_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "lost": "FAILED", "killed": "KILLED"}
INSTALL_HINT = "Install it with: pip install 'repropack[mlflow]' (the light mlflow-skinny package), then export again."
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"

# MLflow's limits (mlflow.utils.validation): per log_batch call, and on keys and values.
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
_KEY_LENGTH = 250
_PARAM_LENGTH = 6000
_TAG_LENGTH = 8000
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")


@dataclass(frozen=True)
class ExportResult:
    """What one export did. ``experiment_ids`` maps each repropack experiment to its MLflow experiment id,
    ``run_ids`` each considered record's id to its MLflow run id (exported now or already there)."""

    exported: int = 0
    skipped: int = 0  # already in the tracking store
    running: int = 0  # not ended yet: not exported, a later export takes them
    experiment_ids: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)


def export_to_mlflow(store: Store, tracking_uri: str, group: str | None) -> ExportResult:
    """Export the group's recorded runs (every run when ``group`` is None) to the MLflow tracking store at
    ``tracking_uri``, idempotently; see the module's docstring for what is logged."""
    if not tracking_uri.strip():
        raise BadInput("--mlflow needs a tracking URI, such as file:///srv/mlruns or http://mlflow.lab:5000.")
    try:
        from mlflow.entities import ViewType
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise EnvironmentProblem(
            f"Exporting runs to MLflow needs the MLflow client, and this Python cannot import it ({exc}).",
            hint=INSTALL_HINT,
        ) from None
    summaries = store.summaries(group=group)
    if group is not None and not summaries:
        raise BadInput(f"The group '{group}' has no runs.", hint="See the groups with: repropack runs")
    with _file_store_allowed(tracking_uri):
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
        except Exception as exc:  # the store's own error (unknown scheme, missing SQL driver, bad folder)
            raise _unusable(tracking_uri, exc) from None
        exporter = _Exporter(store, client, ViewType.ACTIVE_ONLY)
        for run in summaries:
            if run["status"] == "running":
                exporter.running += 1
                continue
            try:
                exporter.export(store.get(run["id"]))
            except MlflowException as exc:
                raise _refused(tracking_uri, run["id"], exc) from None
    return ExportResult(
        exported=exporter.exported,
        skipped=exporter.skipped,
        running=exporter.running,
        experiment_ids=dict(exporter.experiments),
        run_ids=dict(exporter.run_ids),
    )


class _Exporter:
    def __init__(self, store: Store, client: Any, active_only: Any) -> None:
        self.store = store
        self.client = client
        self.active_only = active_only
        self.experiments: dict[str, str] = {}  # repropack experiment -> MLflow experiment id
        self.there: dict[str, dict[str, list[tuple[str, str]]]] = {}  # experiment id -> run id tag -> runs
        self.run_ids: dict[str, str] = {}
        self.exported = self.skipped = self.running = 0

    def export(self, record: RunRecord) -> None:
        experiment_id = self._experiment(record["experiment"] or "repropack")
        earlier = self.there[experiment_id].get(record["id"], [])
        done = [run_id for run_id, status in earlier if status != "RUNNING"]
        if done:
            self.run_ids[record["id"]] = done[0]
            self.skipped += 1
            return
        for run_id, _ in earlier:  # an export interrupted halfway: redone whole
            self.client.delete_run(run_id)
        log = None
        if record["log_sha256"]:  # read (and checked) before anything is written
            log = self.store.blobs.read(record["log_sha256"], f"the log of run {record['id'][:10]}")
        start = _millis(record["started"])
        run = self.client.create_run(
            experiment_id, start_time=start, tags={RUN_ID_TAG: record["id"]}, run_name=record["name"]
        )
        run_id = run.info.run_id
        from mlflow.entities import Metric, Param, RunTag

        params = [Param(key, _text(value, _PARAM_LENGTH)) for key, value in _params(record).items()]
        tags = [RunTag(key, _text(value, _TAG_LENGTH)) for key, value in _tags(record).items()]
        metrics = [Metric(key, value, start, step) for key, value, step in _metrics(record)]
        for chunk in _chunks(params, _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(tags, _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)
        for chunk in _chunks(metrics, _METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)
        if log is not None:
            self.client.log_text(run_id, log.decode("utf-8", errors="replace"), LOG_ARTIFACT)
        self.client.set_terminated(run_id, status=MLFLOW_STATUS[record["status"]], end_time=_end_millis(record))
        self.there[experiment_id][record["id"]] = [(run_id, "FINISHED")]
        self.run_ids[record["id"]] = run_id
        self.exported += 1

    def _experiment(self, name: str) -> str:
        if name in self.experiments:
            return self.experiments[name]
        found = self.client.get_experiment_by_name(name)
        if found is None:
            experiment_id = str(self.client.create_experiment(name))
        elif found.lifecycle_stage != "active":
            raise BadInput(
                f"The MLflow experiment '{name}' is deleted in that tracking store, so its runs cannot be added.",
                hint=f"Restore it (mlflow experiments restore --experiment-id {found.experiment_id}) or purge it "
                "(mlflow gc), then export again.",
            )
        else:
            experiment_id = str(found.experiment_id)
        self.experiments[name] = experiment_id
        self.there[experiment_id] = self._tagged_runs(experiment_id)
        return experiment_id

    def _tagged_runs(self, experiment_id: str) -> dict[str, list[tuple[str, str]]]:
        """The experiment's active runs that an export made, by the record id they carry."""
        tagged: dict[str, list[tuple[str, str]]] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], run_view_type=self.active_only, max_results=1000, page_token=token
            )
            for run in page:
                record_id = run.data.tags.get(RUN_ID_TAG)
                if record_id:
                    tagged.setdefault(str(record_id), []).append((str(run.info.run_id), str(run.info.status)))
            token = page.token
            if not token:
                return tagged


def _params(record: RunRecord) -> dict[str, str]:
    params: dict[str, str] = {"command": record["command"], "image_id": record["image_id"]}
    if record["seed"] is not None:
        params["seed"] = str(record["seed"])
    params["manifest_digest"] = record["manifest_digest"]
    if record["config_sha256"]:
        params["config_sha256"] = record["config_sha256"]
    for key, value in sorted(record["overrides"].items()):
        params[_key(f"set.{key}")] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    for name, use in sorted(record["datasets"].items()):
        params[_key(f"data.{name}.sha256")] = use["sha256"]
    return params


def _tags(record: RunRecord) -> dict[str, str]:
    tags = {
        "repropack.name": record["name"],
        "repropack.group": record["group"],
        "repropack.status": record["status"],
        "repropack.kind": record["kind"],
    }
    if record["exit_code"] is not None:
        tags["repropack.exit_code"] = str(record["exit_code"])
    return tags


def _metrics(record: RunRecord) -> list[tuple[str, float, int]]:
    """(key, value, step): each history series as steps 0, 1, ...; then the record's final value of the metric,
    one step on, unless it is the series' last value, so MLflow's latest value is the record's."""
    points: list[tuple[str, float, int]] = []
    for name in sorted(set(record["metrics"]) | set(record["history"])):
        key = _key(name)
        series = [float(value) for value in record["history"].get(name, [])]
        points += [(key, value, step) for step, value in enumerate(series)]
        if name in record["metrics"]:
            final = float(record["metrics"][name])
            if not series or series[-1] != final:
                points.append((key, final, len(series)))
    return points


def _key(name: str) -> str:
    """A param or metric name MLflow takes: alphanumerics, '_', '-', '.', ' ' and '/' (others become '_'),
    not resolving to another path, at most 250 characters."""
    key = _BAD_KEY_CHARS.sub("_", name) or "_"
    if posixpath.normpath(key) != key or key.startswith(("/", "..")):
        key = "_" + key.replace("/", "_")
    return key[:_KEY_LENGTH]


def _text(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _millis(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _end_millis(record: RunRecord) -> int:
    """The record's end; a run that ended without one (lost) ends at its start plus its known duration."""
    if record["ended"]:
        return _millis(record["ended"])
    return _millis(record["started"]) + round((record["duration_s"] or 0.0) * 1000)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def _file_store_allowed(tracking_uri: str) -> Iterator[None]:
    """MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is true: naming one is opting in, for
    this export only. A value the user set is kept."""
    scheme = urlparse(tracking_uri).scheme
    if scheme not in ("", "file") or ALLOW_FILE_STORE in os.environ:
        yield
        return
    os.environ[ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        os.environ.pop(ALLOW_FILE_STORE, None)


def _shown(tracking_uri: str) -> str:
    """The URI as a message names it: a server's or database's only by its scheme (it may hold a password)."""
    scheme = urlparse(tracking_uri).scheme
    return tracking_uri if scheme in ("", "file", "sqlite") else f"{scheme}://..."


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _refused(tracking_uri: str, record_id: str, exc: Exception) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"The MLflow tracking store {_shown(tracking_uri)} refused the export of run {record_id[:10]} "
        f"({_first_line(exc)}).",
        hint="The runs before it are exported; fix the store and export again: those are not duplicated.",
    )


def _unusable(tracking_uri: str, exc: Exception) -> EnvironmentProblem:
    scheme = urlparse(tracking_uri).scheme
    hint = "Name a file:///DIR/mlruns folder, an http(s):// tracking server, or a database URI MLflow supports."
    if scheme in ("sqlite", "postgresql", "mysql", "mssql") or scheme.startswith(("postgresql+", "mysql+")):
        hint = (
            "A database store needs MLflow's SQL support too: pip install sqlalchemy alembic (or the full mlflow "
            "package); a file:///DIR/mlruns store needs only repropack[mlflow]."
        )
    return EnvironmentProblem(
        f"The MLflow tracking store {_shown(tracking_uri)} could not be opened ({_first_line(exc)}).", hint=hint
    )

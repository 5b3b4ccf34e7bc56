"""Commands over the run store: ``runs`` (and ``runs export``), ``show``, ``logs``, ``outputs``,
``compare`` and ``report``. None of them needs a Docker engine."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from repropack.cli.app import JsonOpt, app, print_json, say
from repropack.errors import BadInput

if TYPE_CHECKING:
    from repropack.store.records import RunRecord
    from repropack.store.store import Store

runs_app = typer.Typer(
    help="The recorded runs: list, filter, sort (and export).", invoke_without_command=True, no_args_is_help=False
)
app.add_typer(runs_app, name="runs")

RunArg = Annotated[str, typer.Argument(metavar="RUN", help="A run id (or unique prefix), or GROUP/NAME.")]
GroupFilter = Annotated[str | None, typer.Option("--group", metavar="NAME", help="Only this group's runs.")]


def _store() -> Store:
    from repropack.store.store import Store

    return Store.open()


@runs_app.callback()
def runs(
    ctx: typer.Context,
    group: GroupFilter = None,
    image: Annotated[str | None, typer.Option("--image", metavar="REF", help="Only runs of this image.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", metavar="S", help="running, succeeded, failed, killed or lost.")
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", metavar="METRIC", help="Order by a metric (-METRIC: largest first).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the recorded runs (oldest first)."""
    if ctx.invoked_subcommand is not None:
        return
    from repropack.store.records import STATUSES

    if status is not None and status not in STATUSES:
        raise BadInput(f"--status is one of {', '.join(STATUSES)}, not '{status}'.")
    store = _store()
    if as_json and not sort:  # the summaries as stored (canonical JSON), one run a line, none parsed
        texts = store.summary_texts(group=group, image=image, status=status)
        sys.stdout.write("[\n" + ",\n".join("  " + text for text in texts) + "\n]\n" if texts else "[]\n")
        return
    found = store.summaries(group=group, image=image, status=status)
    if sort:
        metric, descending = sort.removeprefix("-"), sort.startswith("-")
        if found and not any(metric in run["metrics"] for run in found):
            known = sorted({name for run in found for name in run["metrics"]})
            raise BadInput(f"--sort {metric}: no listed run has that metric (they have: {', '.join(known) or 'none'}).")
        having = [run for run in found if metric in run["metrics"]]
        having.sort(key=lambda run: run["metrics"][metric], reverse=descending)
        found = having + [run for run in found if metric not in run["metrics"]]
    if as_json:
        lines = ",\n".join("  " + json.dumps(run, sort_keys=True) for run in found)
        sys.stdout.write(f"[\n{lines}\n]\n" if found else "[]\n")
        return
    if not found:
        say("no runs recorded" + (" that match" if group or image or status else " yet"))
        return
    print(_table(found))


@runs_app.command("export", short_help="Export runs to MLflow.")
def export(
    tracking_uri: Annotated[
        str,
        typer.Option(
            "--mlflow", metavar="TRACKING_URI", help="The MLflow tracking store (file:///DIR/mlruns, http://HOST:PORT)."
        ),
    ],
    group: GroupFilter = None,
) -> None:
    """Copy the ended runs into an MLflow tracking store; runs already there are skipped (pip install
    'repropack[mlflow]')."""
    from repropack.report.mlflow_export import export_to_mlflow

    done = export_to_mlflow(_store(), tracking_uri, group)
    experiments = ", ".join(f"{name} (id {eid})" for name, eid in sorted(done.experiment_ids.items()))
    say(
        f"exported {done.exported} run{'' if done.exported == 1 else 's'} to MLflow, {done.skipped} already there"
        + (f", {done.running} still running (export again once they end)" if done.running else "")
        + (f"; experiments: {experiments}" if experiments else "")
    )


def _table(found: list[dict[str, Any]]) -> str:
    header = ("ID", "GROUP", "NAME", "STATUS", "COMMAND", "SEED", "STARTED", "TIME", "METRICS")
    rows = [header]
    for run in found:
        seconds = run["duration_s"]
        rows.append(
            (
                run["id"][:10],
                run["group"] or "-",
                run["name"],
                run["status"],
                run["command"],
                "-" if run["seed"] is None else str(run["seed"]),
                run["started"][:19].replace("T", " "),
                "-" if seconds is None else f"{seconds:.1f}s",
                " ".join([f"{k}={v:.4g}" for k, v in run["metrics"].items()]) or "-",
            )
        )
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    template = "  ".join(f"{{:<{width}}}" for width in widths[:-1]) + "  {}"
    return "\n".join([template.format(*row).rstrip() for row in rows])


@app.command(short_help="One run's record: inputs, status, metrics, outputs.")
def show(run_ref: RunArg, as_json: JsonOpt = False) -> None:
    """One run's page: image, command, seed, overrides, data, status, times, hardware, metrics, outputs."""
    record = _store().resolve(run_ref)
    if as_json:
        print_json(record)
        return
    print(render_record(record))


def render_record(r: RunRecord) -> str:
    hardware, software = r["hardware"], r["software"]
    host = hardware.get("host") or {}
    gpu = hardware.get("gpu") or {}
    lines = [
        f"run {r['id']}",
        f"  name        {r['group'] + '/' if r['group'] else ''}{r['name']}  ({r['kind']})",
        *([f"  description {r['description']}"] if r["description"] else []),
        f"  status      {r['status']}" + (f" (exit code {r['exit_code']})" if r["exit_code"] is not None else ""),
        *([f"  error       {r['error']}"] if r["error"] else []),
        f"  image       {r['image']}",
        f"  image id    {r['image_id']}",
        f"  manifest    {r['manifest_digest']}",
        *([f"  published   {r['reference']}"] if r["reference"] else []),
        f"  command     {r['command']}" + (f": {' '.join(r['argv'])}" if r["argv"] else ""),
        f"  seed        {r['seed']}",
        f"  overrides   {json.dumps(r['overrides'], sort_keys=True) if r['overrides'] else 'none'}",
        *([f"  config      sha256:{r['config_sha256']}"] if r["config_sha256"] else []),
        "  datasets    "
        + (
            "; ".join(
                f"{name} sha256:{use['sha256'][:16]} ({'embedded' if use['embedded'] else 'mounted'}"
                f"{'' if use['as_frozen'] else ', NEW DATA'})"
                for name, use in sorted(r["datasets"].items())
            )
            or "none"
        ),
        f"  requires    gpus: {'all' if r['requirements']['gpus'] else 'none'}, memory: "
        f"{r['requirements']['memory'] or 'no limit'}",
        f"  started     {r['started']}",
        f"  ended       {r['ended'] or '-'}" + (f" ({r['duration_s']:.1f} s)" if r["duration_s"] is not None else ""),
        f"  hardware    {hardware.get('device') or '-'}; {host.get('cpu') or '?'} x{host.get('cpus') or '?'}"
        + (f"; GPU {', '.join(gpu['devices'])}" if gpu.get("devices") else ""),
        f"  software    python {software.get('python') or '?'}"
        + (f", torch {(software.get('torch') or {}).get('version')}" if software.get("torch") else ""),
        "  metrics     " + (", ".join(f"{k}={v:.6g}" for k, v in sorted(r["metrics"].items())) or "none"),
        f"  outputs     {len(r['outputs'])} file{'' if len(r['outputs']) == 1 else 's'}"
        + (f", {sum(f['size'] for f in r['outputs'])} bytes" if r["outputs"] else ""),
        *[f"                {f['path']}  ({f['size']} bytes, sha256:{f['sha256'][:16]})" for f in r["outputs"][:20]],
        *([f"                ... and {len(r['outputs']) - 20} more"] if len(r["outputs"]) > 20 else []),
        f"  re-run      {r['rerun']}",
        f"              repropack rerun {r['id'][:10]}",
    ]
    return "\n".join(lines)


@app.command(short_help="A run's full log (--follow while it runs).")
def logs(
    run_ref: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing while the run runs.")] = False,
) -> None:
    """The run's full log (stdout and stderr, as the container printed them)."""
    store = _store()
    record = store.resolve(run_ref)
    if record["log_sha256"]:
        sys.stdout.write(
            store.blobs.read(record["log_sha256"], f"the log of run {record['id'][:10]}").decode(errors="replace")
        )
        return
    live = store.live_log(record["id"])
    offset = 0
    while True:
        if live.exists():
            with live.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        if not follow:
            return
        record = store.get(record["id"])
        if record["status"] != "running":
            if record["log_sha256"]:  # the rest, from the stored log
                data = store.blobs.read(record["log_sha256"], f"the log of run {record['id'][:10]}")
                sys.stdout.write(data[offset:].decode(errors="replace"))
            return
        time.sleep(0.5)


@app.command(short_help="Write a run's output files into a folder, checked.")
def outputs(
    run_ref: RunArg,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Write the files here (new or empty).")],
) -> None:
    """Write the run's output files into DIR, each checked against its sha256."""
    from repropack.store.outputs import restore

    store = _store()
    record = store.resolve(run_ref)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BadInput(
            f"--output {output} is not an empty folder.", hint="Name a new or empty folder: nothing is overwritten."
        )
    files = store.outputs(record["id"])
    written = restore(store.blobs, files, output, record["id"][:10])
    noun = "file" if len(files) == 1 else "files"
    say(f"{len(files)} {noun} ({written} bytes) of run {record['id'][:10]} in {output}/, each checked by its sha256")


def _selected(store: Store, refs: list[str] | None, group: str | None) -> list[dict[str, Any]]:
    """The summaries of the runs named (in the order given) or of the group's runs (oldest first)."""
    if bool(refs) == (group is not None):
        raise BadInput("Name the runs (RUN...) or a group (--group NAME), one of the two.")
    if group is not None:
        found = store.summaries(group=group)
        if not found:
            raise BadInput(f"The group '{group}' has no runs.", hint="See the groups with: repropack runs")
        return found
    ids: list[str] = []
    for ref in refs or ():
        run_id = store.resolve(ref)["id"]
        if run_id not in ids:
            ids.append(run_id)
    order = {run_id: n for n, run_id in enumerate(ids)}
    return sorted(store.summaries(ids=ids), key=lambda run: order[run["id"]])


@app.command(name="compare", short_help="Parameters and metrics of runs, side by side.")
def compare_runs(
    run_refs: Annotated[list[str] | None, typer.Argument(metavar="[RUN]...", help="Runs to compare.")] = None,
    group: GroupFilter = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="One CSV row per run.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Parameters and metrics side by side; columns that differ are marked."""
    from repropack.report.compare import compare, to_csv, to_text

    if as_csv and as_json:
        raise BadInput("--csv and --json: choose one.")
    table = compare(_selected(_store(), run_refs, group))
    if as_csv:
        sys.stdout.write(to_csv(table))
    elif as_json:
        print_json(table.as_dict())
    else:
        print(to_text(table))


@app.command(short_help="One self-contained HTML page about runs.")
def report(
    run_refs: Annotated[list[str] | None, typer.Argument(metavar="[RUN]...", help="Runs in the report.")] = None,
    group: GroupFilter = None,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The HTML file to write.")] = Path(
        "report.html"
    ),
) -> None:
    """One self-contained HTML page: verdict, metrics per run, plots, differences, re-run commands."""
    from repropack.report.page import write_report

    store = _store()
    records = [store.get(run["id"]) for run in _selected(store, run_refs, group)]
    title = f"group {group}" if group is not None else ", ".join(r["name"] for r in records[:3])
    write_report(records, title, output)
    say(f"report of {len(records)} run{'' if len(records) == 1 else 's'} written to {output}")

"""python -m bench: repropack's speed targets, measured side by side with baselines built in the same run.

Each scenario repeats its measurements and reports medians; the table says, per target, whether it held.
Results: a table on stdout, and JSON in bench/results/latest.json (or --output). Timings are of this
machine as it is (warm page cache, except the data scenario's from-disk row, which empties it when run as
root; other work on it shows up as noise): compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import cluster, data, images, records, startup, verify
from bench.common import PREFIX, REPO, Bench, Row, have_docker

SCENARIOS: dict[str, tuple[Callable[[Bench], list[Row]], bool]] = {  # name -> (run, needs Docker)
    "startup": (startup.scenario, False),
    "data": (data.scenario, False),
    "context": (images.context, True),
    "rebuild": (images.rebuild, True),
    "verify": (verify.scenario, True),
    "size": (images.size, True),
    "records": (records.scenario, False),
    "cluster": (cluster.scenario, True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs per measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="fewer runs of the slow baselines (a first look)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "latest.json", metavar="FILE")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and the images")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    repeat = 1 if args.quick and args.repeat == 3 else max(1, args.repeat)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix=PREFIX))
    bench = Bench(scratch, repeat, args.quick, log)
    started = time.time()
    machine = describe(bench)
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    try:
        no_docker = have_docker(bench) if any(SCENARIOS[name][1] for name in chosen) else None
        for name in chosen:
            run, needs_docker = SCENARIOS[name]
            if needs_docker and no_docker:
                skipped[name] = no_docker
                continue
            log(f"scenario {name}")
            try:
                rows += run(bench)
            except Exception as error:  # one scenario's failure is reported; the others still run
                skipped[name] = f"failed: {error}"
                log(traceback.format_exc())
    finally:
        if not args.keep:
            bench.cleanup()
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            log(f"kept {scratch} and images {', '.join(bench.images)}")
    machine["load_after"] = list(os.getloadavg())
    print(render(rows, skipped, machine, repeat))
    write_json(args.output, rows, skipped, machine, repeat, time.time() - started)
    log(f"wrote {args.output}")
    return 0 if all(row.ok is not False for row in rows) and not skipped else 1


def describe(bench: Bench) -> dict[str, object]:
    engine = (
        bench.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
        if shutil.which("docker")
        else None
    )
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "docker": engine.stdout.decode().strip() if engine is not None and engine.returncode == 0 else None,
        "load_before": list(os.getloadavg()),
        "page_cache": "warm (emptied only for the data scenario's from-disk row, as root)",
    }


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def render(rows: list[Row], skipped: dict[str, str], machine: dict[str, object], repeat: int) -> str:
    header = ("scenario", "measure", "median", "baseline", "ratio", "target", "result")
    table = [header] + [
        (
            row.scenario,
            row.measure,
            _number(row.value, row.unit),
            f"{_number(row.baseline, row.unit)} ({row.baseline_name})" if row.baseline is not None else "-",
            _number(row.ratio)
            + ("" if row.ratio is None or row.scenario == "verify" else "x")
            + (" s" if row.scenario == "verify" and row.ratio is not None else ""),
            row.target,
            {True: "ok", False: "MISSED", None: "-"}[row.ok],
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    lines = [
        f"repropack bench: {machine['cpus']} cores, python {machine['python']}, docker {machine['docker']}, "
        f"{repeat} runs per measurement (medians), page cache warm (but the from-disk row), "
        f"load {machine['load_before']}"
    ]
    for index, line in enumerate(table):
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines += [f"  note [{row.scenario}] {row.measure}: {row.note}" for row in rows if row.note]
    lines += [f"  skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


def write_json(
    path: Path, rows: list[Row], skipped: dict[str, str], machine: dict[str, object], repeat: int, seconds: float
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "repeat": repeat,
        "seconds": round(seconds, 1),
        "command": " ".join(sys.argv),
        "results": [row.as_dict() for row in rows],
        "skipped": skipped,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())

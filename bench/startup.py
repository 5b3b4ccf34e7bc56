"""The CLI's own cost: `repropack freeze` of a small experiment against `python -c pass`, the heaviest
imports on that path (python -X importtime), and `repropack lock` when nothing changed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench.common import Bench, Row, median

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def heaviest_imports(stderr: str, count: int = 8) -> list[tuple[str, float]]:
    """Packages (top-level names, wherever they were imported from) by cumulative import time, in ms."""
    top: dict[str, float] = {}
    for match in IMPORT_LINE.finditer(stderr):
        _self, cumulative, _indent, name = match.groups()
        if "." not in name and not name.startswith("_"):
            top[name] = max(top.get(name, 0.0), int(cumulative) / 1000)
    return sorted(top.items(), key=lambda item: -item[1])[:count]


def scenario(bench: Bench) -> list[Row]:
    spec = bench.experiment("startup-exp")
    cli = bench.repropack()
    out = bench.scratch / "startup-out"
    repeat = max(5, bench.repeat * 2)
    env = {"REPROPACK_CACHE_DIR": str(bench.scratch / "startup-cache")}
    bench.run([*cli, "freeze", spec, "-o", out, "--json"], env=env)  # first run: caches, .pyc files
    freeze, python = [], []
    for _ in range(repeat):
        python.append(bench.timed([sys.executable, "-c", "pass"])[0])
        freeze.append(bench.timed([*cli, "freeze", spec, "-o", out, "--json"], env=env)[0])
    traced = bench.run(
        [sys.executable, "-X", "importtime", "-m", "repropack", "freeze", spec, "-o", out, "--json"], env=env
    )
    imports = heaviest_imports(traced.stderr.decode(errors="replace"))
    ratio = median(freeze) / median(python)
    rows = [
        Row(
            "startup",
            "repropack freeze, small experiment",
            median(freeze),
            "s",
            median(python),
            "python -c pass",
            ratio,
            "lean: report",
            None,
            note="heaviest imports: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in imports[:6]),
            samples=freeze,
            baseline_samples=python,
            extra={"imports_ms": dict(imports)},
        ),
    ]
    rows.append(lock_row(bench, spec, repeat))
    return rows


def lock_row(bench: Bench, spec: Path, repeat: int) -> Row:
    cli = bench.repropack()
    lockfile = spec.with_name("requirements.lock")
    before = (lockfile.read_bytes(), lockfile.stat().st_mtime_ns)
    seconds: list[float] = []
    messages: set[str] = set()
    for _ in range(repeat):
        elapsed, done = bench.timed([*cli, "lock", spec])
        seconds.append(elapsed)
        messages.add(done.stdout.decode(errors="replace").strip())
    untouched = (lockfile.read_bytes(), lockfile.stat().st_mtime_ns) == before
    no_resolver = untouched and all("up to date" in message for message in messages)
    return Row(
        "lock",
        "repropack lock, inputs unchanged",
        median(seconds),
        "s",
        target="no resolver, <= 0.5 s",
        ok=no_resolver and median(seconds) <= 0.5,
        note=f"lockfile untouched: {untouched}; said: {' | '.join(sorted(messages))}",
        samples=seconds,
    )

"""The run report page: recorded runs as one self-contained HTML5 document, through
templates/report.html.j2 (autoescaped). Every value is computed and formatted here; the template only
lays them out. The page has no script and loads nothing (styles inline, plots inline SVG), names no host
path and holds no time of its own rendering: the same runs give the same bytes, so a page can be cited.

The verdict is verify's: per expected metric, the mean over the runs that succeeded (a metric missing from
one of them is not produced), compared with ``compare_metrics``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from repropack import __version__
from repropack.errors import BadInput
from repropack.files import atomic_write
from repropack.report.plots import history_plot, metric_plot
from repropack.store.records import RunRecord
from repropack.verify.reproduce import aggregate, compare_metrics

TEMPLATE = "report.html.j2"
DASH = "\u2014"  # a value that is missing
SHORT_ID = 10
_DIGEST = re.compile(r"(?:sha256:)?[0-9a-f]{40,}")
_DIGEST_SHOWN = 12  # hex digits of a digest shown in the "what differs" table (the whole one in its title)
_MISSING = object()
# the order of the "what differs" rows: each key is one of these or below one
_ORDER = (
    "seed",
    "overrides",
    "image_id",
    "manifest_digest",
    "config_sha256",
    "datasets",
    "software.python",
    "software.torch",
    "hardware.device",
    "software.packages",
)


def render_report(runs: list[RunRecord], title: str) -> str:
    """The report page over ``runs`` (in the order given), titled ``title``."""
    if not runs:
        raise BadInput("There are no runs to report on.", hint="Run the experiment first, or name other runs.")
    expected = next((run["expected"] for run in runs if run["expected"]), {})
    succeeded = [run for run in runs if run["status"] == "succeeded"]
    names = sorted(expected) + sorted({name for run in runs for name in run["metrics"]} - set(expected))
    means, spread = aggregate([run["metrics"] for run in succeeded], names) if succeeded else ({}, {})
    comparison = compare_metrics(expected, means)
    return _template().render(
        version=__version__,
        title=title,
        experiments=sorted({run["experiment"] for run in runs if run["experiment"]}),
        verdict=_verdict(comparison, len(succeeded), len(runs)),
        metrics=[_metric_row(name, runs, expected, means, spread, comparison) for name in names],
        plots=_plots(names, runs, expected),
        runs=[_run_view(run) for run in runs],
        differs=_differs(runs),
    )


def write_report(runs: list[RunRecord], title: str, path: Path) -> None:
    """Render the report and write it to ``path`` atomically (UTF-8)."""
    atomic_write(path, render_report(runs, title).encode("utf-8"))


@functools.cache
def _template() -> jinja2.Template:
    source = resources.files("repropack.templates").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.from_string(source)


@dataclass(frozen=True)
class Verdict:
    word: str  # REPRODUCED, NOT REPRODUCED or "no expected metrics"
    css: str
    detail: str


def _verdict(comparison: dict[str, dict[str, Any]], succeeded: int, total: int) -> Verdict:
    if not comparison:
        return Verdict("no expected metrics", "none", ": the runs' manifest expects no metric values.")
    passed = sum(1 for result in comparison.values() if result["passed"])
    over = f"the mean of {succeeded} succeeded run{_plural(succeeded)} (of {total})"
    detail = f"{passed} of {len(comparison)} expected metric{_plural(len(comparison))} within tolerance, {over}."
    failed = [name for name, result in comparison.items() if not result["passed"]]
    if not failed:
        return Verdict("REPRODUCED", "ok", detail)
    return Verdict("NOT REPRODUCED", "bad", f"{detail} Outside or missing: {', '.join(failed)}.")


def _metric_row(
    name: str,
    runs: list[RunRecord],
    expected: dict[str, Any],
    means: dict[str, float],
    spread: dict[str, Any],
    comparison: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    result = comparison.get(name)
    mean = f"{_number(means[name])} ± {spread[name]['std']:.2g}" if name in means else DASH
    if result is None:
        expected_value, tolerance, passed, css = DASH, DASH, DASH, ""
    else:
        expected_value = _number(result["expected"])
        tolerance = f"± {result['tolerance']:.4g}"
        if float(expected[name]["rel_tol"]):
            tolerance += f" (abs {float(result['abs_tol']):g} + rel {float(result['rel_tol']):g})"
        passed, css = ("yes", "yes") if result["passed"] else ("no", "no")
    values = [_number(run["metrics"][name]) if name in run["metrics"] else DASH for run in runs]
    return {
        "name": name,
        "expected": expected_value,
        "runs": values,
        "mean": mean,
        "tolerance": tolerance,
        "passed": passed,
        "css": css,
    }


def _plots(names: list[str], runs: list[RunRecord], expected: dict[str, Any]) -> list[dict[str, str]]:
    """Per metric its values across the runs, then (when some run logged two or more) its curves."""
    plots: list[dict[str, str]] = []
    for name in names:
        values = [(run["name"], float(run["metrics"][name])) for run in runs if name in run["metrics"]]
        plots.append({"svg": metric_plot(name, values, expected.get(name)), "caption": f"{name} across the runs"})
        curves = [(run["name"], list(run["history"].get(name) or [])) for run in runs]
        if any(len(curve) >= 2 for _, curve in curves):
            drawn = [(label, curve) for label, curve in curves if curve]
            plots.append({"svg": history_plot(name, drawn), "caption": f"{name} during each run"})
    return plots


def _run_view(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run["id"],
        "short_id": run["id"][:SHORT_ID],
        "group": run["group"] or DASH,
        "name": run["name"],
        "status": run["status"],
        "seed": DASH if run["seed"] is None else str(run["seed"]),
        "command": run["command"],
        "started": run["started"],
        "duration": _duration(run["duration_s"]),
        "exit_code": DASH if run["exit_code"] is None else str(run["exit_code"]),
        "rerun": run["rerun"],
    }


def _parameters(run: RunRecord) -> dict[str, Any]:
    """What a run was made of, as dotted keys: the parameters it ran with and the environment it ran in."""
    found: dict[str, Any] = {"seed": run["seed"]}
    found.update({f"overrides.{key}": value for key, value in sorted(run["overrides"].items())})
    found.update(image_id=run["image_id"], manifest_digest=run["manifest_digest"], config_sha256=run["config_sha256"])
    for name, use in sorted(run["datasets"].items()):
        found[f"datasets.{name}.sha256"] = use["sha256"]
    software, hardware = run["software"] or {}, run["hardware"] or {}
    if "python" in software:
        found["software.python"] = software["python"]
    if "torch" in software:
        _flatten("software.torch", software["torch"], found)
    if "device" in hardware:
        found["hardware.device"] = hardware["device"]
    for name, version in sorted((software.get("packages") or {}).items()):
        found[f"software.packages.{name}"] = version
    return found


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in sorted(value.items()):
            _flatten(f"{prefix}.{key}", inner, into)
    else:
        into[prefix] = value


def _differs(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """The keys of :func:`_parameters` whose values are not all equal (a key some run lacks differs), in
    the order listed there (by name within overrides, datasets, torch and packages), a cell per run."""
    each = [_parameters(run) for run in runs]
    keys = sorted({key for found in each for key in found}, key=lambda key: (_place(key), key))
    rows = []
    for key in keys:
        values = [found.get(key, _MISSING) for found in each]
        if len({_identity(value) for value in values}) > 1:
            rows.append({"key": key, "cells": [_cell(value) for value in values]})
    return rows


def _place(key: str) -> int:
    return next(place for place, start in enumerate(_ORDER) if key == start or key.startswith(start + "."))


def _identity(value: Any) -> str:
    """Equal values, equal strings: JSON, so 1 and 1.0 or True and 1 differ as the record holds them."""
    return "\0missing" if value is _MISSING else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _cell(value: Any) -> dict[str, str]:
    if value is _MISSING:
        return {"shown": DASH, "full": ""}
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    if _DIGEST.fullmatch(text):
        cut = text.index(":") + 1 + _DIGEST_SHOWN if ":" in text else _DIGEST_SHOWN
        return {"shown": text[:cut] + "\u2026", "full": text}
    return {"shown": text, "full": ""}


def _number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _plural(count: int) -> str:
    return "" if count == 1 else "s"

"""Runs side by side: one row per run, its parameters (seed, each override) and its metrics.

The columns are a contract (``compare --csv``): ``id, group, name, seed``, one per override key, one
per metric. A column whose values are not all the same is marked as differing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

FIXED = ("id", "group", "name", "seed")


@dataclass(frozen=True)
class Comparison:
    columns: list[str]
    rows: list[dict[str, Any]]
    differs: list[str]  # the parameter and metric columns whose values are not all equal

    def as_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "differs": self.differs}


def compare(summaries: list[dict[str, Any]]) -> Comparison:
    overrides = sorted({key for run in summaries for key in run["overrides"]})
    metrics = sorted({name for run in summaries for name in run["metrics"]})
    metric_columns = [f"metric.{name}" if name in overrides or name in FIXED else name for name in metrics]
    columns = [*FIXED, *overrides, *metric_columns]
    rows = []
    for run in summaries:
        row: dict[str, Any] = {key: run[key] for key in FIXED}
        row.update({key: run["overrides"].get(key) for key in overrides})
        row.update({column: run["metrics"].get(name) for column, name in zip(metric_columns, metrics, strict=True)})
        rows.append(row)
    differs = [column for column in columns[3:] if len({json.dumps(row[column], sort_keys=True) for row in rows}) > 1]
    return Comparison(columns, rows, differs)


def to_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(comparison.columns)
    for row in comparison.rows:
        writer.writerow(["" if row[c] is None else _cell(row[c]) for c in comparison.columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def to_text(comparison: Comparison) -> str:
    """An aligned table; differing columns are marked with '*' in the header, the id shortened."""
    header = [f"{c}*" if c in comparison.differs else c for c in comparison.columns]
    body = [
        [str(row["id"])[:10] if c == "id" else ("-" if row[c] is None else _short(row[c])) for c in comparison.columns]
        for row in comparison.rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    if comparison.differs:
        lines.append("* differs between the runs")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) and value else _cell(value) if value != "" else "-"

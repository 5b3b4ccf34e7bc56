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
    rows: list[list[Any]]  # one per run, in the order of ``columns``
    differs: list[str]  # the parameter and metric columns whose values are not all equal
    overrides: int = 0  # how many columns, after the fixed ones, are overrides (of any JSON type)

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows],
            "differs": self.differs,
        }


def compare(summaries: list[dict[str, Any]]) -> Comparison:
    overrides = sorted({key for run in summaries for key in run["overrides"]})
    metrics = sorted({name for run in summaries for name in run["metrics"]})
    metric_columns = [f"metric.{name}" if name in overrides or name in FIXED else name for name in metrics]
    columns = [*FIXED, *overrides, *metric_columns]
    rows = [
        [
            run["id"],
            run["group"],
            run["name"],
            run["seed"],
            *[run["overrides"].get(key) for key in overrides],
            *[run["metrics"].get(name) for name in metrics],
        ]
        for run in summaries
    ]
    differs = [column for index, column in enumerate(columns) if index >= 3 and _differs([r[index] for r in rows])]
    return Comparison(columns, rows, differs, len(overrides))


def _differs(values: list[Any]) -> bool:
    """Not all the same value of the same type (1, 1.0 and True are three different values here)."""
    try:
        if len(set(values)) > 1:
            return True
    except TypeError:  # a list or a mapping
        return len({json.dumps(value, sort_keys=True) for value in values}) > 1
    return len({type(value) for value in values}) > 1


def to_csv(comparison: Comparison) -> str:
    """The table as CSV: numbers as Python writes them (floats round-trip), a missing value empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(comparison.columns)
    rows = comparison.rows
    overrides = range(len(FIXED), len(FIXED) + comparison.overrides)  # metrics are numbers, seeds whole numbers
    odd = [i for i in overrides if {type(row[i]) for row in rows} - {int, float, str, type(None)}]
    if odd:  # JSON for lists, mappings and booleans (true, not True)
        rows = [[_cell(v) if i in odd and v is not None else v for i, v in enumerate(row)] for row in rows]
    writer.writerows(rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True)


def to_text(comparison: Comparison) -> str:
    """An aligned table; differing columns are marked with '*' in the header, the id shortened."""
    header = [f"{c}*" if c in comparison.differs else c for c in comparison.columns]
    body = [[row[0][:10], *map(_short, row[1:])] for row in comparison.rows]
    widths = [max(map(len, column)) for column in zip(header, *body, strict=True)]
    template = "  ".join(f"{{:<{width}}}" for width in widths[:-1]) + "  {}"
    lines = [template.format(*line).rstrip() for line in [header, *body]]
    if comparison.differs:
        lines.append("* differs between the runs")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else _cell(value)

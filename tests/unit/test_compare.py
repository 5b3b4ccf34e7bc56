"""compare: the CSV contract (id, group, name, seed, one column per override, one per metric), differences."""

from __future__ import annotations

import csv
import io
from typing import Any

from repropack.report.compare import compare, to_csv, to_text


def run(name: str, seed: int | None, overrides: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    return {"id": name * 32, "group": "g", "name": name, "seed": seed, "overrides": overrides, "metrics": metrics}


def test_csv_columns_are_the_contract_and_values_round_trip() -> None:
    table = compare([run("a", 0, {"lr": 0.1, "layers": [1, 2]}, {"acc": 0.1 + 0.2}), run("b", 1, {"lr": 1}, {})])
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert rows[0] == ["id", "group", "name", "seed", "layers", "lr", "acc"]
    assert rows[1] == ["a" * 32, "g", "a", "0", "[1, 2]", "0.1", repr(0.1 + 0.2)]
    assert rows[2] == ["b" * 32, "g", "b", "1", "", "1", ""]


def test_only_columns_that_differ_are_marked() -> None:
    same = compare([run("a", 0, {"lr": 0.1}, {"acc": 0.9}), run("b", 0, {"lr": 0.1}, {"acc": 0.9})])
    assert same.differs == []
    other = compare([run("a", 0, {"lr": 0.1, "h": 1}, {"acc": 0.9}), run("b", 1, {"lr": 0.1, "h": 1.0}, {"acc": 0.8})])
    assert other.differs == ["seed", "h", "acc"]  # 1 and 1.0 are different values, as in the JSON
    assert "seed*" in to_text(other) and "lr*" not in to_text(other)


def test_a_metric_named_like_a_parameter_gets_its_own_column() -> None:
    table = compare([run("a", 0, {"acc": 1}, {"acc": 0.5, "seed": 3.0})])
    assert table.columns == ["id", "group", "name", "seed", "acc", "metric.acc", "metric.seed"]

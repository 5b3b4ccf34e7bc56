"""verify.compare_metrics: |actual - value| <= abs_tol + rel_tol * |value|, metric by metric."""

from __future__ import annotations

import pytest

from repropack.manifest.seal import SCHEMA, digest_of
from repropack.verify.integrity import manifest_checks
from repropack.verify.reproduce import aggregate, compare_metrics


def expect(value: float, abs_tol: float = 0.0, rel_tol: float = 0.0) -> dict[str, float]:
    return {"value": value, "abs_tol": abs_tol, "rel_tol": rel_tol}


# Values exact in binary floating point, so "at the boundary" means exactly at it.
@pytest.mark.parametrize(
    ("spec", "actual", "passed"),
    [
        (expect(0.5, abs_tol=0.25), 0.75, True),  # exactly at +tolerance
        (expect(0.5, abs_tol=0.25), 0.25, True),  # exactly at -tolerance
        (expect(0.5, abs_tol=0.25), 0.75 + 2**-20, False),
        (expect(0.5, abs_tol=0.25), 0.25 - 2**-20, False),
        (expect(-8.0, rel_tol=0.25), -10.0, True),  # rel_tol scales with |value|
        (expect(-8.0, rel_tol=0.25), -10.0 - 2**-10, False),
        (expect(4.0, abs_tol=0.5, rel_tol=0.125), 5.0, True),  # 0.5 + 0.125*4 = 1.0
        (expect(4.0, abs_tol=0.5, rel_tol=0.125), 5.0 + 2**-10, False),
        (expect(1.0), 1.0, True),  # both tolerances 0: an exact match
        (expect(1.0), 1.0 + 2**-40, False),
    ],
)
def test_tolerance_rule(spec: dict[str, float], actual: float, passed: bool) -> None:
    result = compare_metrics({"m": spec}, {"m": actual})["m"]
    assert result["passed"] is passed
    assert result["tolerance"] == spec["abs_tol"] + spec["rel_tol"] * abs(spec["value"])
    assert result["difference"] == abs(actual - spec["value"])


def test_missing_actual_fails() -> None:
    result = compare_metrics({"accuracy": expect(0.9, abs_tol=1.0)}, {"other": 0.9})["accuracy"]
    assert result["passed"] is False
    assert result["actual"] is None and result["difference"] is None


def test_every_expected_metric_is_reported_in_order() -> None:
    results = compare_metrics({"b": expect(1, 0.1), "a": expect(2, 0.1)}, {"a": 2.0, "b": 5.0, "extra": 1.0})
    assert list(results) == ["a", "b"]
    assert (results["a"]["passed"], results["b"]["passed"]) == (True, False)


def test_manifest_checks() -> None:
    manifest: dict[str, object] = {"schema": SCHEMA, "x": 1}
    manifest["sha256"] = digest_of(manifest)
    digest = str(manifest["sha256"])
    good = {c.name: c for c in manifest_checks(digest, manifest, None)}
    assert set(good) == {"manifest", "label"} and all(c.passed for c in good.values())
    wrong_label = {c.name: c for c in manifest_checks("0" * 64, manifest, None)}
    assert wrong_label["label"].passed is False and wrong_label["manifest"].passed is True
    assert f"the embedded manifest is sha256:{digest}" in wrong_label["label"].problems[0]
    tampered = {c.name: c for c in manifest_checks(digest, {**manifest, "x": 2}, None)}
    assert tampered["manifest"].passed is False
    paper = {c.name: c for c in manifest_checks(digest, manifest, {"sha256": "1" * 64})}
    assert paper["paper"].passed is False and "1" * 64 in paper["paper"].problems[0]
    assert {c.name: c for c in manifest_checks(digest, manifest, {"sha256": digest})}["paper"].passed


def test_aggregate_means_and_sample_standard_deviation() -> None:
    means, spread = aggregate([{"a": 1.0, "b": 2.0}, {"a": 3.0}], ["a", "b"])
    assert means == {"a": 2.0}  # 'b' is missing from one run: not averaged, so reported as not produced
    assert spread["a"] == {"values": [1.0, 3.0], "std": pytest.approx(1.4142135623730951)}
    single, single_spread = aggregate([{"a": 5.0}], ["a"])
    assert single == {"a": 5.0} and single_spread["a"]["std"] == 0.0


@pytest.mark.parametrize("actual", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_actual_fails(actual: float) -> None:
    assert compare_metrics({"m": expect(0.5, abs_tol=1e9)}, {"m": actual})["m"]["passed"] is False


@pytest.mark.parametrize(("value", "abs_tol", "actual"), [(0.97, 0.02, 0.99), (1.0, 0.1, 1.1), (0.3, 0.1, 0.4)])
def test_decimal_boundary_as_written_in_a_spec(value: float, abs_tol: float, actual: float) -> None:
    # What a user writes in experiment.yaml (value 0.97, abs_tol 0.02) and reads in metrics.json (0.99)
    # is exactly at the boundary, which the rule says passes.
    assert compare_metrics({"m": expect(value, abs_tol=abs_tol)}, {"m": actual})["m"]["passed"] is True

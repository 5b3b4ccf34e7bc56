"""The run report page: self-contained, byte-stable, and its verdict is verify's comparison."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from repropack.errors import BadInput
from repropack.report.page import render_report, write_report
from repropack.report.plots import history_plot, metric_plot
from repropack.store.records import RunRecord

EXPECTED = {
    "accuracy": {"value": 0.9, "abs_tol": 0.05, "rel_tol": 0.0},
    "loss": {"value": 0.3, "abs_tol": 0.0, "rel_tol": 0.1},  # tolerance 0.03
}


def make_run(number: int = 0, **changes: Any) -> RunRecord:
    """A finished, succeeded run with every key of a record; ``changes`` replace top-level keys."""
    run: dict[str, Any] = {
        "id": f"{number:02d}" + "ab" * 15,
        "name": f"run-{number}",
        "group": "sweep",
        "description": "",
        "kind": "run",
        "status": "succeeded",
        "image": "spiral-mlp:latest",
        "image_id": "sha256:" + "1" * 64,
        "manifest_digest": "sha256:" + "2" * 64,
        "reference": None,
        "experiment": "spiral-mlp",
        "command": "train",
        "argv": ["python", "train.py", "--seed", str(number)],
        "seed": 0,
        "overrides": {"lr": 0.1},
        "config_sha256": "3" * 64,
        "datasets": {"points": {"sha256": "4" * 64, "embedded": True, "as_frozen": True}},
        "requirements": {"gpus": False, "memory": None},
        "started": "2024-01-01T00:00:00+00:00",
        "ended": "2024-01-01T00:01:05+00:00",
        "duration_s": 65.0,
        "exit_code": 0,
        "error": None,
        "hardware": {"device": "cpu", "gpu": {"visible": False}, "host": {"cpus": 8}},
        "software": {
            "python": "3.11.9",
            "torch": {"version": "2.3.1", "deterministic": True},
            "packages": {"numpy": "1.26.4", "torch": "2.3.1"},
            "settings": {"PYTHONHASHSEED": "0"},
        },
        "metrics": {"accuracy": 0.91, "loss": 0.31},
        "expected": copy.deepcopy(EXPECTED),
        "history": {},
        "outputs": [],
        "log_sha256": None,
        "rerun": f"repropack rerun {number:02d}abababab",
    }
    run.update(changes)
    return run  # type: ignore[return-value]


def _section(page: str, anchor: str) -> str:
    """The HTML from the heading with id ``anchor`` to the next h2."""
    start = page.index(f'<h2 id="{anchor}">')
    end = page.find("<h2", start + 1)
    return page[start : end if end != -1 else len(page)]


def _verdict(page: str) -> str:
    match = re.search(r'<p class="verdict [a-z]+"><strong>([^<]*)</strong>', page)
    assert match, page
    return match.group(1)


def test_the_page_loads_nothing_and_refers_only_to_itself() -> None:
    history = {"loss": [0.9, 0.5, 0.31]}
    page = render_report([make_run(0, history=history), make_run(1, seed=1)], "Spiral MLP")
    assert page.startswith("<!DOCTYPE html>\n")
    for needle in ("http://", "https://", "src=", "<link", "@import", "<script", "<iframe", "<object"):
        assert needle not in page, needle
    assert not re.search(r"url\((?!#)", page), "a url() that is not a reference inside the page"
    assert not re.search(r'href="(?!#)', page), "a link out of the page"
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two elements share an id (two plots' ids collided)"
    referred = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert referred and referred <= set(ids)


def test_reproduced_within_tolerance() -> None:
    runs = [
        make_run(0, metrics={"accuracy": 0.87, "loss": 0.29}),
        make_run(1, metrics={"accuracy": 0.93, "loss": 0.32}),
        # a failed run does not count, whatever it printed
        make_run(2, status="failed", exit_code=1, metrics={"accuracy": 0.1, "loss": 9.0}),
    ]
    page = render_report(runs, "ok")
    assert _verdict(page) == "REPRODUCED"
    assert "2 of 2 expected metrics within tolerance, the mean of 2 succeeded runs (of 3)" in page


@pytest.mark.parametrize(
    ("accuracy", "loss"),
    [(0.84, 0.30), (0.90, 0.34), (0.96, 0.30)],  # accuracy low, loss out by more than 10%, accuracy high
)
def test_not_reproduced_when_one_metric_is_out(accuracy: float, loss: float) -> None:
    page = render_report([make_run(0, metrics={"accuracy": accuracy, "loss": loss})], "out")
    assert _verdict(page) == "NOT REPRODUCED"
    table = _section(page, "metrics")
    assert table.count('<td class="no">no</td>') == 1
    assert table.count('<td class="yes">yes</td>') == 1


def test_a_metric_missing_from_a_succeeded_run_is_not_reproduced() -> None:
    runs = [make_run(0), make_run(1, metrics={"accuracy": 0.9})]
    page = render_report(runs, "missing")
    assert _verdict(page) == "NOT REPRODUCED"
    assert "Outside or missing: loss." in page


def test_no_succeeded_run_is_not_reproduced() -> None:
    page = render_report([make_run(0, status="killed", exit_code=None)], "killed")
    assert _verdict(page) == "NOT REPRODUCED"


def test_no_expected_metrics() -> None:
    page = render_report([make_run(0, expected={}), make_run(1, expected={})], "none")
    assert _verdict(page) == "no expected metrics"


def test_expected_comes_from_the_first_run_that_has_it() -> None:
    page = render_report([make_run(0, expected={}, metrics={"accuracy": 0.9, "loss": 0.3}), make_run(1)], "first")
    assert _verdict(page) == "REPRODUCED"


def test_the_metrics_table_has_a_column_per_run() -> None:
    runs = [make_run(n, metrics={"accuracy": 0.9 + n / 100, "loss": 0.3}) for n in range(4)]
    runs[3]["metrics"] = {"accuracy": 0.93}  # no loss: a dash
    table = _section(page := render_report(runs, "columns"), "metrics")
    header = re.search(r"<thead>\s*<tr>(.*?)</tr>", table, re.DOTALL)
    assert header
    cells = re.findall(r"<th[^>]*>(.*?)</th>", header.group(1))
    assert [re.sub(r"<[^>]+>", "", cell) for cell in cells] == [
        "metric",
        "expected",
        "run-0",
        "run-1",
        "run-2",
        "run-3",
        "mean ± std",
        "tolerance",
        "pass",
    ]
    rows = re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", table[table.index("<tbody>") :])
    assert [name for name, _ in rows] == ["accuracy", "loss"]
    accuracy = re.findall(r"<td[^>]*>([^<]*)</td>", rows[0][1])
    assert accuracy == ["0.9", "0.9", "0.91", "0.92", "0.93", "0.915 ± 0.013", "± 0.05", "yes"]
    loss = re.findall(r"<td[^>]*>([^<]*)</td>", rows[1][1])
    assert loss[4] == "\u2014" and loss[5] == "\u2014" and loss[-1] == "no"  # missing in a succeeded run
    assert "(abs 0 + rel 0.1)" in page


def test_metrics_nobody_expected_are_listed_without_a_verdict() -> None:
    page = render_report([make_run(0, metrics={"accuracy": 0.9, "loss": 0.3, "f1": 0.5})], "extra")
    table = _section(page, "metrics")
    rows = dict(re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", table[table.index("<tbody>") :]))
    assert re.findall(r"<td[^>]*>([^<]*)</td>", rows["f1"]) == ["\u2014", "0.5", "0.5 ± 0", "\u2014", "\u2014"]
    assert _verdict(page) == "REPRODUCED"


def test_a_plot_per_metric_and_curves_only_with_history() -> None:
    plain = _section(render_report([make_run(0), make_run(1)], "no curves"), "plots")
    assert plain.count("<svg ") == 2 and plain.count("</svg>") == 2
    assert "training curves" not in plain
    one_value = {"loss": [0.3]}  # a single value is not a curve
    assert render_report([make_run(0, history=one_value)], "t").count("<svg ") == 2
    curves = {"loss": [1.0 / (step + 1) for step in range(20)]}
    page = render_report([make_run(0, history=curves), make_run(1, history=one_value)], "curves")
    plots = _section(page, "plots")
    assert plots.count("<svg ") == 3
    assert 'aria-label="loss training curves"' in plots
    assert 'aria-label="accuracy training curves"' not in plots
    assert re.search(r"<figure>\s*<svg [^>]*>", plots)


def test_what_differs_lists_only_the_keys_that_differ() -> None:
    runs = [make_run(0, seed=0), make_run(1, seed=1)]
    differs = _section(render_report(runs, "seeds"), "differs")
    keys = re.findall(r"<tr><th><code>([^<]*)</code></th>", differs)
    assert keys == ["seed"]
    assert "overrides.lr" not in differs


def test_what_differs_covers_overrides_data_and_environment() -> None:
    other = make_run(1, overrides={"lr": 0.2, "epochs": 3})
    other["datasets"]["points"]["sha256"] = "5" * 64
    other["software"]["torch"]["version"] = "2.4.0"
    other["software"]["packages"]["numpy"] = "2.0.0"
    other["hardware"]["device"] = "cuda"
    other["hardware"]["host"] = {"cpus": 64}  # not a parameter: never listed
    other["software"]["settings"] = {}  # nor this
    differs = _section(render_report([make_run(0), other], "many"), "differs")
    keys = re.findall(r"<tr><th><code>([^<]*)</code></th>", differs)
    assert keys == [
        "overrides.epochs",
        "overrides.lr",
        "datasets.points.sha256",
        "software.torch.version",
        "hardware.device",
        "software.packages.numpy",
    ]
    assert "\u2014" in differs  # run-0 has no epochs override
    assert 'title="' + "5" * 64 + '"' in differs  # a digest is cut, and whole in its title


def test_nothing_differs() -> None:
    page = render_report([make_run(0), make_run(1)], "same")
    assert "(all runs have the same parameters and environment)" in _section(page, "differs")


def test_the_runs_table_and_rerun_commands() -> None:
    page = render_report([make_run(0), make_run(1, seed=None, exit_code=None, duration_s=None)], "runs")
    runs = _section(page, "runs")
    assert ">00abababab<" in runs and "00" + "ab" * 15 in runs
    assert "1 min 05 s" in runs
    assert "<pre><code>repropack rerun 00abababab</code></pre>" in _section(page, "rerun")
    assert "<pre><code>repropack rerun 01abababab</code></pre>" in _section(page, "rerun")


def test_the_same_runs_give_the_same_bytes(tmp_path: Path) -> None:
    runs = [make_run(n, seed=n, history={"loss": [1.0, 0.5, 0.3 + n / 100]}) for n in range(3)]
    first = render_report(runs, "stable")
    assert render_report(copy.deepcopy(runs), "stable") == first
    write_report(runs, "stable", tmp_path / "report.html")
    assert (tmp_path / "report.html").read_bytes() == first.encode()


def test_the_same_runs_give_the_same_bytes_in_another_process(tmp_path: Path) -> None:
    """Nothing of the process reaches the page: not its hash seed, nor a matplotlibrc."""
    rc = tmp_path / "matplotlibrc"
    rc.write_text("font.size: 20\nsvg.fonttype: none\nsvg.hashsalt: other\naxes.grid: True\nlines.linewidth: 4\n")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from test_report import make_run;"
        "from repropack.report.page import render_report;"
        "sys.stdout.write(render_report([make_run(0), make_run(1, history={'loss': [1.0, 0.5]})], 'x'))"
    )
    pages = [
        subprocess.run(
            [sys.executable, "-c", script, str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed, **extra},
        ).stdout
        for seed, extra in (("1", {}), ("2", {"MATPLOTLIBRC": str(rc)}))
    ]
    assert pages[0] == pages[1] == render_report([make_run(0), make_run(1, history={"loss": [1.0, 0.5]})], "x")


def test_html_in_names_and_values_is_escaped() -> None:
    name = '<script>alert("x")</script> & co'
    run = make_run(0, name=name, command="train --flag '<b>'", rerun="repropack rerun 00 && echo <i>")
    page = render_report([run, make_run(1)], '<title> & "quotes"')
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert str(escape(name)) in page
    assert "<h1>&lt;title&gt; &amp; &#34;quotes&#34;</h1>" in page


def test_no_runs_is_bad_input() -> None:
    with pytest.raises(BadInput):
        render_report([], "empty")


def test_plots_are_inline_svg_elements() -> None:
    svg = metric_plot("acc", [("a", 0.9), ("b", float("nan"))], {"value": 0.9, "abs_tol": 0.01, "rel_tol": 0.0})
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg and "xmlns" not in svg
    assert svg == metric_plot("acc", [("a", 0.9), ("b", float("nan"))], {"value": 0.9, "abs_tol": 0.01, "rel_tol": 0})
    assert metric_plot("acc", [], None).startswith("<svg ")
    curves = history_plot("loss", [("a", [1.0, 0.5]), ("b", [0.7])])
    assert curves.startswith("<svg ") and curves.endswith("</svg>")


def test_importing_the_report_does_not_import_matplotlib() -> None:
    code = "import sys, repropack.report.page; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

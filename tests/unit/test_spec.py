"""experiment.yaml: parse, validate (every problem at once, with lines), normalize."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from unit_factories import REMOVE, MakeExperiment

from repropack.errors import BadInput, SpecError
from repropack.experiment.commands import command_fields
from repropack.experiment.model import Dataset, Expected
from repropack.experiment.validate import load_spec

DIGEST = "ab" * 32
PLAIN: dict[str, Any] = {"commands": {"train": "python train.py"}}  # no placeholders to cascade


def spec_error(make_experiment: MakeExperiment, **kwargs: Any) -> SpecError:
    experiment = make_experiment(git_repo=False, **kwargs)
    with pytest.raises(SpecError) as caught:
        load_spec(experiment.spec_path)
    return caught.value


# -- a valid spec -----------------------------------------------------------------------------------------


def test_valid_spec_loads_to_normalized_values(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(git_repo=False)
    spec = load_spec(experiment.spec_path)
    folder = experiment.folder.resolve()
    assert spec.path == folder / "experiment.yaml"
    assert spec.root == folder
    assert (spec.name, spec.python, spec.base, spec.seed, spec.gpu) == (
        "spiral-mlp",
        "3.11",
        "debian-bookworm",
        7,
        "auto",
    )
    assert spec.requirements == folder / "requirements.in"
    assert spec.lockfile == folder / "requirements.lock"
    assert spec.config == folder / "config.json"
    assert spec.datasets == {"points": Dataset("points", folder / "data" / "points.csv", embed=True)}
    assert list(spec.commands) == ["train"]
    assert spec.metrics.file == "metrics.json"
    assert spec.metrics.expected == {"accuracy": Expected(value=0.9, abs_tol=0.05, rel_tol=0.0)}


def test_defaults_for_optional_keys(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(
        git_repo=False,
        seed=REMOVE,
        gpu=REMOVE,
        datasets=REMOVE,
        metrics=REMOVE,
        config=REMOVE,
        commands={"train": "python train.py --out {output}"},
    )
    spec = load_spec(experiment.spec_path)
    assert (spec.seed, spec.gpu, spec.datasets, spec.config) == (0, "auto", {}, None)
    assert spec.metrics.file is None and spec.metrics.expected == {}


def test_dataset_shorthand_directory_and_embed_false(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(
        git_repo=False,
        datasets={"points": "data/points.csv", "all-data": {"path": "data", "embed": False}},
        commands={"train": "python train.py {datasets.points} {datasets.all-data}"},
    )
    spec = load_spec(experiment.spec_path)
    assert list(spec.datasets) == ["all-data", "points"]  # sorted
    assert spec.datasets["points"].embed is True
    assert spec.datasets["all-data"] == Dataset("all-data", experiment.folder.resolve() / "data", embed=False)


def test_valid_digest_reference_base(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(git_repo=False, base=f"registry.example/lab/base@sha256:{DIGEST}")
    assert load_spec(experiment.spec_path).base == f"registry.example/lab/base@sha256:{DIGEST}"


def test_stdout_pattern_is_a_metric_source(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(
        git_repo=False,
        metrics={"stdout": {"loss": r"loss: ([0-9.]+)"}, "expected": {"loss": {"value": 1, "rel_tol": 0.1}}},
    )
    metrics = load_spec(experiment.spec_path).metrics
    assert metrics.file is None
    assert metrics.stdout == {"loss": r"loss: ([0-9.]+)"}
    assert metrics.expected["loss"] == Expected(1.0, 0.0, 0.1)


def test_the_recipe_spec_is_valid() -> None:
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "digits-mlp" / "experiment.yaml"
    if not recipe.exists():
        pytest.skip("recipe not present")
    spec = load_spec(recipe)
    assert spec.name == "digits-mlp"
    assert set(spec.commands) == {"train", "evaluate", "test"}
    assert set(spec.datasets) == {"digits", "weights"}


def test_command_fields_ignores_literal_braces() -> None:
    assert command_fields("echo {{x}} {seed} {datasets.a-b}") == ["seed", "datasets.a-b"]


# -- every problem, at once, with its line ---------------------------------------------------------------


def test_two_problems_are_reported_together_with_lines(make_experiment: MakeExperiment) -> None:
    text = (
        "version: 1\n"
        "name: Spiral MLP\n"
        "python: '3.11'\n"
        "base: debian-bookworm\n"
        "requirements: requirements.in\n"
        "seed: -1\n"
        "commands:\n"
        "  train: python train.py\n"
    )
    error = spec_error(make_experiment, spec_text=text)
    assert len(error.problems) == 2
    message = str(error)
    assert "2 problems" in message
    assert "line 2: name:" in message
    assert "line 6: seed:" in message
    assert error.exit_code == 2


def test_typo_gets_a_suggestion(make_experiment: MakeExperiment) -> None:
    error = spec_error(
        make_experiment,
        spec_text=(
            "version: 1\nname: a\npython: '3.11'\nbase: debian-bookworm\nrequirements: requirements.in\n"
            "commands: {train: x}\ndatasest: {}\n"
        ),
    )
    assert error.problems == ["line 7: datasest: unknown key; did you mean 'datasets'?"]


BAD_SPECS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("version 2", {"version": 2}, ["version:", "reads version 1", "not 2"]),
    ("version true", {"version": True}, ["version:"]),
    ("name with space and capitals", {"name": "Spiral MLP"}, ["name:", "'Spiral MLP' is not usable"]),
    ("name empty", {"name": ""}, ["name: must be a non-empty string"]),
    ("python as a float", {"python": 3.11}, ["python:", 'as a string, "3.11"']),
    ("python 2.7", {"python": "2.7"}, ["python:", "'2.7' is not a Python version"]),
    ("python 3.7", {"python": "3.7"}, ["python:", "3.8 or later"]),
    ("seed negative", {"seed": -1}, ["seed: must be between 0 and 4294967295, not -1"]),
    ("seed too big", {"seed": 2**32}, ["seed: must be between 0"]),
    ("seed string", {"seed": "x"}, ["seed: must be a whole number, not the string 'x'"]),
    ("seed boolean", {"seed": True}, ["seed: must be a whole number, not a boolean (true)"]),
    ("gpu sometimes", {"gpu": "sometimes"}, ["gpu: must be one of auto, none, required, not 'sometimes'"]),
    (
        "negative abs_tol",
        {"metrics": {"file": "m.json", "expected": {"acc": {"value": 1, "abs_tol": -0.1}}}},
        ["metrics.expected.acc.abs_tol: must be at least 0"],
    ),
    (
        "negative rel_tol",
        {"metrics": {"file": "m.json", "expected": {"acc": {"value": 1, "rel_tol": -1}}}},
        ["metrics.expected.acc.rel_tol: must be at least 0"],
    ),
    (
        "missing tolerance",
        {"metrics": {"file": "m.json", "expected": {"acc": {"value": 1}}}},
        ["metrics.expected.acc: give a tolerance"],
    ),
    (
        "missing value",
        {"metrics": {"file": "m.json", "expected": {"acc": {"abs_tol": 1}}}},
        ["metrics.expected.acc: missing required key 'value'"],
    ),
    (
        "non-numeric value",
        {"metrics": {"file": "m.json", "expected": {"acc": {"value": "high", "abs_tol": 0}}}},
        ["metrics.expected.acc.value: must be a number, not the string 'high'"],
    ),
    (
        "boolean value",
        {"metrics": {"file": "m.json", "expected": {"acc": {"value": True, "abs_tol": 0}}}},
        ["metrics.expected.acc.value: must be a number"],
    ),
    (
        "expected without a source",
        {"metrics": {"expected": {"acc": {"value": 1, "abs_tol": 0}}}},
        ["metrics.expected.acc: no source for this metric"],
    ),
    (
        "metrics file escapes with ..",
        {"metrics": {"file": "../x.json"}},
        ["metrics.file: '../x.json' must be a path inside the output folder"],
    ),
    (
        "metrics file absolute",
        {"metrics": {"file": "/abs.json"}},
        ["metrics.file: '/abs.json' must be a path inside the output folder"],
    ),
    (
        "stdout pattern without group",
        {"metrics": {"stdout": {"loss": "loss: [0-9.]+"}}},
        ["metrics.stdout.loss: needs one capturing group"],
    ),
    (
        "stdout pattern not a regex",
        {"metrics": {"stdout": {"loss": "loss: ([0-9.]+"}}},
        ["metrics.stdout.loss: is not a valid regular expression"],
    ),
    ("missing requirements file", {"requirements": "nope.in"}, ["requirements: 'nope.in' does not exist"]),
    ("requirements is a folder", {"requirements": "data"}, ["requirements: 'data' is a directory"]),
    ("missing config file", {"config": "nope.json"}, ["config: 'nope.json' does not exist"]),
    (
        "missing dataset path",
        {"datasets": {"points": {"path": "data/nope.csv"}}, **PLAIN},
        ["datasets.points.path: 'data/nope.csv' does not exist"],
    ),
    (
        "dataset without path",
        {"datasets": {"points": {"embed": True}}, **PLAIN},
        ["datasets.points: missing required key 'path'"],
    ),
    (
        "dataset embed not boolean",
        {"datasets": {"points": {"path": "data", "embed": "yes please"}}, **PLAIN},
        ["datasets.points.embed: must be true or false"],
    ),
    (
        "dataset unknown key",
        {"datasets": {"points": {"path": "data", "emebd": True}}},
        ["datasets.points.emebd: unknown key; did you mean 'embed'?"],
    ),
    ("dataset bad name", {"datasets": {"Points": "data"}, **PLAIN}, ["datasets.Points: dataset names use lower-case"]),
    (
        "unknown placeholder",
        {"commands": {"train": "python train.py {sed}"}},
        ["commands.train: unknown placeholder {sed}; did you mean {seed}?"],
    ),
    (
        "unknown placeholder, no near match",
        {"commands": {"train": "python train.py {zzzzzz}"}},
        ["commands.train: unknown placeholder {zzzzzz}; known: {config}, {output}, {seed}, {datasets.NAME}"],
    ),
    (
        "unknown dataset placeholder",
        {"commands": {"train": "python train.py {datasets.pionts}"}},
        ["commands.train: placeholder {datasets.pionts} names an unknown dataset; did you mean {datasets.points}?"],
    ),
    (
        "config placeholder without config",
        {"config": REMOVE, "commands": {"train": "python train.py {config}"}},
        ["commands.train: uses {config} but the spec has no 'config' file"],
    ),
    (
        "bad placeholder syntax",
        {"commands": {"train": "python train.py {seed"}},
        ["commands.train: bad placeholder syntax"],
    ),
    ("no commands", {"commands": {}}, ["commands: declare at least one command"]),
    ("commands not a mapping", {"commands": ["train"]}, ["commands: must be a mapping of keys to values, not a list"]),
    ("unknown base", {"base": "debian-bookwrom"}, ["base: unknown base image 'debian-bookwrom'", "debian-bookworm"]),
    ("malformed digest", {"base": "lab/base@sha256:abc"}, ["base: 'lab/base@sha256:abc' is neither a catalog name"]),
    ("tag instead of digest", {"base": "ubuntu:22.04"}, ["base: 'ubuntu:22.04' is neither"]),
    ("missing required key", {"name": REMOVE}, ["missing required key 'name'"]),
    ("lockfile is a folder", {"lockfile": "data"}, ["lockfile: 'data' is a directory"]),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [(o, e) for _, o, e in BAD_SPECS], ids=[case for case, _, _ in BAD_SPECS]
)
def test_bad_spec_is_reported(make_experiment: MakeExperiment, overrides: dict[str, Any], expected: list[str]) -> None:
    error = spec_error(make_experiment, **overrides)
    message = str(error)
    for fragment in expected:
        assert fragment in message
    assert error.exit_code == 2
    assert message.startswith("experiment.yaml: 1 problem: ")


def test_problem_lines_point_at_the_offending_key(make_experiment: MakeExperiment) -> None:
    text = (
        "version: 1\nname: a\npython: '3.11'\nbase: debian-bookworm\nrequirements: requirements.in\n"
        "metrics:\n"
        "  file: m.json\n"
        "  expected:\n"
        "    acc:\n"
        "      value: 1\n"
        "      abs_tol: -3\n"
        "commands: {train: x}\n"
    )
    error = spec_error(make_experiment, spec_text=text)
    assert error.problems == ["line 11: metrics.expected.acc.abs_tol: must be at least 0, not -3"]


def test_a_broken_dataset_is_one_problem_not_two(make_experiment: MakeExperiment) -> None:
    # The factory's train command uses {datasets.points}: that must not become a second, misleading problem.
    error = spec_error(make_experiment, datasets={"points": {"path": "data/nope.csv"}})
    (problem,) = error.problems
    assert re.fullmatch(r"line \d+: datasets\.points\.path: 'data/nope\.csv' does not exist .*", problem)


def test_unknown_base_lists_known_ones(make_experiment: MakeExperiment) -> None:
    error = spec_error(make_experiment, base="zzzzzzzz")
    assert "known:" in str(error)
    assert "debian-bookworm" in str(error)


# -- documents that are not a spec at all ----------------------------------------------------------------


def test_empty_file(make_experiment: MakeExperiment) -> None:
    error = spec_error(make_experiment, spec_text="# only a comment\n")
    assert "empty" in str(error)
    assert error.exit_code == 2


def test_list_at_top_level(make_experiment: MakeExperiment) -> None:
    error = spec_error(make_experiment, spec_text="- version: 1\n- name: a\n")
    assert error.problems == ["line 1: the top level must be a mapping of keys, not a list"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"version: 1\nname: caf\xe9\n", "not UTF-8 text"),
        (b"version: 1\nname: [unclosed\npython: '3.11'\n", "is not valid YAML at line"),
        (b"version: 1\n\tname: a\n", "is not valid YAML"),
        (b"version: 1\nname: a\nversion: 1\n", "line 3: duplicate key 'version' (first at line 1)"),
        (b"version: 1\ndatasets:\n  a: x\n  a: y\n", "line 4: duplicate key 'a' (first at line 3)"),
    ],
    ids=["non-utf8", "unclosed-flow", "tab-indent", "duplicate-top-key", "duplicate-nested-key"],
)
def test_unreadable_documents_are_bad_input(make_experiment: MakeExperiment, content: bytes, expected: str) -> None:
    experiment = make_experiment(git_repo=False)
    experiment.spec_path.write_bytes(content)
    with pytest.raises(BadInput) as caught:
        load_spec(experiment.spec_path)
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist") as caught:
        load_spec(tmp_path / "experiment.yaml")
    assert caught.value.exit_code == 2


def test_spec_path_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is a directory"):
        load_spec(tmp_path)

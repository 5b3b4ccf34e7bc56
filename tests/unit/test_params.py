"""``params: {NAME: DEFAULT}``: a flag-driven script varied without editing the spec, through
``{params.NAME}`` in its commands and ``--set NAME=VALUE`` (typed like the default), on the host and in the
image alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from unit_factories import MakeExperiment

from repropack.errors import BadInput, SpecError
from repropack.experiment.validate import load_spec
from repropack.run.local import check_sets
from tests.unit.test_runtime_entrypoint import load_entrypoint

ep = load_entrypoint()
TRAIN = "python train.py --lr {params.lr} --layers {params.layers} --compile {params.compile} --name {params.run}"
PARAMS = {"lr": 0.001, "layers": 4, "compile": False, "run": "base"}


def test_params_are_declared_with_defaults_and_used_in_commands(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(git_repo=False, params=PARAMS, commands={"train": TRAIN})
    spec = load_spec(experiment.spec_path)
    assert spec.params == dict(sorted(PARAMS.items())) and spec.commands["train"] == TRAIN


@pytest.mark.parametrize(
    ("params", "commands", "says"),
    [
        ({}, {"train": "python t.py --lr {params.lr}"}, "{params.lr} names a parameter the spec does not declare"),
        ({"Learning-Rate": 1}, {"train": "python t.py"}, "parameter names use lower-case letters"),
        ({"lr": [1, 2]}, {"train": "python t.py"}, "a parameter's default is a string, a number or true/false"),
    ],
)
def test_bad_params_are_bad_input(
    make_experiment: MakeExperiment, params: dict[str, Any], commands: dict[str, str], says: str
) -> None:
    experiment = make_experiment(git_repo=False, params=params, commands=commands)
    with pytest.raises(SpecError, match=says.replace("{", r"\{").replace("}", r"\}")):
        load_spec(experiment.spec_path)


def manifest() -> Any:
    return {
        "commands": {"train": TRAIN},
        "params": PARAMS,
        "datasets": {},
        "config": {"file": "config.json", "path": "/repro/config/config.json", "content": json.dumps({"epochs": 3})},
    }


def test_the_image_fills_the_params_and_set_overrides_them_typed(tmp_path: Any) -> None:
    sets = ["lr=0.01", "compile=true", "epochs=5"]
    params, rest = ep.command.split_sets(manifest(), sets)
    assert params == {"lr": 0.01, "layers": 4, "compile": True, "run": "base"} and rest == ["epochs=5"]
    (argv,) = ep.command.command_steps(manifest(), "train", None, 7, "/output", params)
    assert argv == ["python", "train.py", "--lr", "0.01", "--layers", "4", "--compile", "true", "--name", "base"]
    (defaults,) = ep.command.command_steps(manifest(), "train", None, 7, "/output")
    assert defaults[2:4] == ["--lr", "0.001"]
    path, applied = ep.command.apply_overrides(manifest(), sets, str(tmp_path))
    assert applied == {"epochs": 5} and json.loads(Path(path).read_text()) == {"epochs": 5}  # the config: its own
    with pytest.raises(ep.Stop, match=r"--set layers=2.5: layers in the spec's params is a whole number \(4\)"):
        ep.command.split_sets(manifest(), ["layers=2.5"])


def test_the_host_checks_a_param_before_anything_runs() -> None:
    check_sets(manifest(), ("lr=0.5", "run=other", "epochs=2"))
    with pytest.raises(BadInput, match=r"--set lr=fast: lr in the spec's params is a number \(0.001\), not text"):
        check_sets(manifest(), ("lr=fast",))
    no_config = {**manifest(), "config": None}
    with pytest.raises(BadInput, match=r"--set epochs: the experiment has no parameter of that name \(it has: "):
        check_sets(no_config, ("epochs=2",))

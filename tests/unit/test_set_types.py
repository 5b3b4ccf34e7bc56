"""``--set KEY=VALUE`` is typed like the value it replaces: JSON when it parses, a string kept as written
for a string, and a value of another type refused (exit 2 on the host, before anything runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from repropack.errors import BadInput
from repropack.run.local import check_sets
from repropack.runtime.command import typed_value

CONFIG = {"epochs": 5, "lr": 0.1, "name": "mlp", "shuffle": True, "layers": [32, 16], "opt": {"beta": 0.9}, "x": None}


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("epochs", "7", 7),
        ("lr", "0.01", 0.01),
        ("lr", "1", 1),  # a whole number is a number
        ("name", "123", "123"),  # a string stays the string written, even when it parses as JSON
        ("name", "big model", "big model"),
        ("shuffle", "false", False),
        ("layers", "[64]", [64]),
        ("opt", '{"beta": 0.5}', {"beta": 0.5}),
        ("x", "anything", "anything"),  # null: any value
    ],
)
def test_a_value_of_the_same_type_is_taken(key: str, raw: str, value: Any) -> None:
    assert typed_value(key, raw, CONFIG[key], "config.json") == value


@pytest.mark.parametrize(
    ("key", "raw", "says"),
    [
        ("epochs", "five", "epochs in config.json is a whole number (5), not text"),
        ("epochs", "2.5", "is a whole number (5), not a number"),
        ("epochs", "true", "is a whole number (5), not true or false"),
        ("lr", "fast", "is a number (0.1), not text"),
        ("shuffle", "1", "is true or false (true), not a whole number"),
        ("layers", "64", "is a JSON list ([32, 16]), not a whole number"),
    ],
)
def test_a_value_of_another_type_names_the_key_the_value_and_the_type(key: str, raw: str, says: str) -> None:
    with pytest.raises(ValueError, match="^--set " + key + "=") as refused:
        typed_value(key, raw, CONFIG[key], "config.json")
    assert says in str(refused.value)


def test_the_host_refuses_it_before_anything_runs() -> None:
    manifest: Any = {"config": {"file": "config.json", "content": json.dumps(CONFIG)}}
    check_sets(manifest, ("epochs=7", "opt.beta=0.5"))
    with pytest.raises(BadInput, match=r"--set epochs=five: epochs in config.json is a whole number \(5\), not text"):
        check_sets(manifest, ("epochs=five",))


def test_a_yaml_config_takes_set_like_a_json_one(tmp_path: Any) -> None:
    from pathlib import Path

    import yaml

    from repropack.freeze.config import freeze_config
    from tests.unit.test_runtime_entrypoint import load_entrypoint

    ep = load_entrypoint()
    source = Path(tmp_path) / "config.yaml"
    source.write_text("# hyper-parameters\nepochs: 5\nmodel:\n  hidden: 32\n  act: relu\n")
    record = freeze_config(source).record()
    assert record["values"] == {"epochs": 5, "model": {"hidden": 32, "act": "relu"}}
    manifest: Any = {"config": {**record, "path": "/repro/config/config.yaml"}, "params": {}}
    check_sets(manifest, ("epochs=7", "model.act=tanh"))
    with pytest.raises(BadInput, match=r"epochs in config\.yaml is a whole number"):
        check_sets(manifest, ("epochs=seven",))
    path, applied = ep.command.apply_overrides(manifest, ["model.hidden=64"], str(tmp_path))
    assert applied == {"model.hidden": 64} and path.endswith("config.yaml")
    assert yaml.safe_load(Path(path).read_text()) == {"epochs": 5, "model": {"hidden": 64, "act": "relu"}}
    dated = Path(tmp_path) / "dated.yaml"
    dated.write_text("when: 2024-01-01\n")  # a date JSON cannot hold: no values, so --set refuses it
    assert freeze_config(dated).record()["values"] is None

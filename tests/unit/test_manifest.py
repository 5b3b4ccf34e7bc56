"""The manifest: canonical bytes, its own digest, and nothing host-specific in it."""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from unit_factories import GIT_ENV, Experiment, MakeExperiment

from repropack.canonical import canonical_json
from repropack.errors import BadInput
from repropack.manifest.model import parse_manifest
from repropack.manifest.seal import SCHEMA, digest_of, seal

Freeze = Callable[..., Any]


def test_same_inputs_give_byte_identical_manifests(experiment: Experiment, freeze_experiment: Freeze) -> None:
    first = freeze_experiment(experiment)
    second = freeze_experiment(experiment)
    assert first.manifest_bytes == second.manifest_bytes
    assert first.digest == second.digest


def test_the_manifest_does_not_depend_on_where_the_experiment_lives(
    make_experiment: MakeExperiment, freeze_experiment: Freeze
) -> None:
    here = make_experiment(where="one")
    there = make_experiment(where="deeper/two")
    assert freeze_experiment(here).manifest_bytes == freeze_experiment(there).manifest_bytes


def test_manifest_bytes_are_canonical_and_sealed(experiment: Experiment, freeze_experiment: Freeze) -> None:
    frozen = freeze_experiment(experiment)
    document = json.loads(frozen.manifest_bytes)
    assert frozen.manifest_bytes == canonical_json(document)
    assert document["sha256"] == frozen.digest == digest_of(document)
    assert document["schema"] == SCHEMA
    assert parse_manifest(frozen.manifest_bytes, "manifest.json") == document


def test_manifest_records_the_frozen_facts(experiment: Experiment, freeze_experiment: Freeze) -> None:
    document = json.loads(freeze_experiment(experiment).manifest_bytes)
    assert document["experiment"] == {"name": "spiral-mlp", "python": "3.11", "seed": 7, "gpu": "auto"}
    assert document["code"]["folder"] == "exp"
    assert document["code"]["dirty"] is False
    assert "train.py" in document["code"]["files"]
    assert "data/points.csv" not in document["code"]["files"]  # shipped as data, not as code
    assert document["dependencies"]["packages"] == {"numpy": "1.26.4"}
    assert document["dependencies"]["lockfile"] == "requirements.lock"
    assert document["base"]["name"] == "debian-bookworm"
    assert document["base"]["image_id"] is None  # no engine
    assert document["config"]["path"] == "/repro/config/config.json"
    assert document["datasets"]["points"]["path"] == "/repro/data/points/points.csv"
    assert document["metrics"]["expected"] == {"accuracy": {"value": 0.9, "abs_tol": 0.05, "rel_tol": 0.0}}


def test_a_one_byte_change_in_the_code_changes_the_digest(experiment: Experiment, freeze_experiment: Freeze) -> None:
    before = freeze_experiment(experiment).digest
    experiment.write("train.py", "print('accuracy: 0.8')\n")
    experiment.commit("edit")
    assert freeze_experiment(experiment).digest != before


def test_no_host_paths_or_user_names(
    make_experiment: MakeExperiment, freeze_experiment: Freeze, tmp_path: Path
) -> None:
    outside = tmp_path / "shared-data" / "extra.bin"  # a dataset named by absolute path, outside the repo
    outside.parent.mkdir()
    outside.write_bytes(b"extra")
    experiment = make_experiment(
        origin="https://someone:s3cr3t-token@git.example/lab/exp.git",
        datasets={"points": "data/points.csv", "extra": {"path": str(outside), "embed": False}},
    )
    experiment.write("train.py", "print('dirty')\n")
    frozen = freeze_experiment(experiment, allow_dirty=True)  # the diff is recorded too
    data = frozen.manifest_bytes
    assert str(tmp_path).encode() not in data
    assert str(tmp_path.resolve()).encode() not in data
    assert str(Path.home()).encode() not in data or str(Path.home()) == "/"
    user = getpass.getuser()
    if user not in _keys(json.loads(data)):  # a user called 'code' would match a key; nothing to check then
        assert not re.search(rf"(?<![\w-]){re.escape(user)}(?![\w-])", data.decode()), user
    assert GIT_ENV["GIT_AUTHOR_NAME"].encode() not in data
    assert GIT_ENV["GIT_AUTHOR_EMAIL"].encode() not in data
    assert b"s3cr3t-token" not in data and b"someone" not in data
    assert json.loads(data)["code"]["source"] == "https://git.example/lab/exp.git"
    assert json.loads(data)["datasets"]["extra"]["path"] == "/repro/data/extra/extra.bin"
    for value in _strings(json.loads(data)):
        assert not (value.startswith("/") and os.path.exists(value) and value != "/"), value


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in _keys(item)}
    if isinstance(value, list):
        return {k for item in value for k in _keys(item)}
    return set()


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_digest_of_ignores_the_sha256_field() -> None:
    document = {"schema": SCHEMA, "a": 1}
    assert digest_of(document) == digest_of({**document, "sha256": "anything"})
    assert digest_of(document) != digest_of({**document, "a": 2})


def test_seal_adds_the_digest() -> None:
    data, digest = seal({"schema": SCHEMA, "b": [1, 2]})
    assert json.loads(data)["sha256"] == digest
    assert data.endswith(b"}\n")


def test_parse_manifest_rejects_tampered_content() -> None:
    data, _ = seal({"schema": SCHEMA, "experiment": {"seed": 7}})
    tampered = data.replace(b'"seed": 7', b'"seed": 8')
    assert tampered != data
    with pytest.raises(BadInput, match="has been modified") as caught:
        parse_manifest(tampered, "m.json")
    assert caught.value.exit_code == 2


def test_parse_manifest_rejects_a_missing_digest() -> None:
    with pytest.raises(BadInput, match="has been modified"):
        parse_manifest(canonical_json({"schema": SCHEMA}), "m.json")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (seal({"schema": "repropack.manifest.seal/v2"})[0], "is not a repropack manifest"),
        (seal({"no": "schema"})[0], "is not a repropack manifest"),
        (b"[1, 2]", "is not a repropack manifest"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
    ids=["other-schema", "no-schema", "list", "not-json", "not-utf8"],
)
def test_parse_manifest_rejects_what_is_not_a_manifest(data: bytes, expected: str) -> None:
    with pytest.raises(BadInput, match=expected):
        parse_manifest(data, "m.json")

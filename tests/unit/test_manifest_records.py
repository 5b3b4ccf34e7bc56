"""One typed manifest: the TypedDicts of repropack.runtime.records, the JSON Schema beside them, and the one
parser both the host and the image's runtime read a manifest with."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import subprocess
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from unit_factories import REMOVE, Experiment, MakeExperiment

import repropack
from repropack.canonical import canonical_json
from repropack.errors import BadInput
from repropack.manifest.model import REQUIRED_KEYS, parse_manifest
from repropack.manifest.seal import SCHEMA, seal
from repropack.runtime import RUNTIME_FILES, records

RUNTIME = Path(repropack.__file__).parent / "runtime"
Freeze = Callable[..., Any]


def schema() -> dict[str, Any]:
    return dict(json.loads((RUNTIME / "manifest.schema.json").read_text()))


# -- every manifest the factories build fits the schema and the parser ------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-config": {
        "config": REMOVE,
        "commands": {"train": "python train.py --data {datasets.points} --seed {seed}", "evaluate": "python e.py"},
    },
    "mounted-data": {"datasets": {"points": {"path": "data/points.csv", "embed": False}}},
    "folder-data": {"datasets": {"points": {"path": "data"}}},
    "no-data-stdout-metrics": {
        "datasets": REMOVE,
        "commands": {"train": "python train.py"},
        "metrics": {
            "stdout": {"accuracy": "accuracy: ([0-9.]+)"},
            "expected": {"accuracy": {"value": 1, "rel_tol": 0.1}},
        },
        "gpu": "none",
    },
    "origin": {"origin": "https://host.example/lab/x.git"},
    "dirty": {},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_factory_manifest_fits_the_schema_and_the_parser(
    make_experiment: MakeExperiment, freeze_experiment: Freeze, variant: str
) -> None:
    experiment = make_experiment(**VARIANTS[variant])
    if variant == "dirty":
        experiment.write("train.py", "print('accuracy: 0.95')\n")
    frozen = freeze_experiment(experiment, allow_dirty=variant == "dirty")
    document = json.loads(frozen.manifest_bytes)
    validator = jsonschema.Draft202012Validator(schema())
    assert [error.message for error in validator.iter_errors(document)] == []
    assert parse_manifest(frozen.manifest_bytes, "manifest.json") == document
    assert records.parse_manifest_document(document, "manifest.json") == document
    if variant == "dirty":
        assert document["code"]["dirty"] is True and isinstance(document["code"]["diff"], str)


def test_the_schema_is_draft_2020_12_and_well_formed() -> None:
    document = schema()
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["properties"]["schema"]["const"] == SCHEMA


# -- the schema and the TypedDicts cannot drift apart -----------------------------------------------------

JSON_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def fragment(tp: Any) -> dict[str, Any]:
    """The JSON Schema fragment the manifest's schema must have for the Python type ``tp``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        shape = fragment(inner)
        if "$ref" in shape:
            return {"anyOf": [shape, {"type": "null"}]}
        return {**shape, "type": [shape["type"], "null"]}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # one of several shapes: str | list[str]
        return {"anyOf": [fragment(a) for a in args]}
    if typing.is_typeddict(tp):
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if typing.get_origin(tp) is list:
        return {"type": "array", "items": fragment(args[0])}
    if typing.get_origin(tp) is dict:
        assert args[0] is str
        return {"type": "object"} if args[1] is Any else {"type": "object", "additionalProperties": fragment(args[1])}
    return {"type": JSON_TYPE[tp]}


def record_schema(record: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(record)
    assert record.__required_keys__ == set(hints) and not record.__optional_keys__  # total records
    return {
        "type": "object",
        "properties": {key: fragment(tp) for key, tp in hints.items()},
        "required": sorted(hints),
        "additionalProperties": False,
    }


def typed_records() -> dict[str, Any]:
    found = {}
    pending = [records.Manifest]
    while pending:
        record = pending.pop()
        found[record.__name__] = record
        for tp in typing.get_type_hints(record).values():
            stack = [tp]
            while stack:
                current = stack.pop()
                if typing.is_typeddict(current) and current.__name__ not in found:
                    pending.append(current)
                stack += [a for a in typing.get_args(current) if a is not Any]
    return found


def test_the_schema_is_exactly_the_typed_records() -> None:
    document = schema()
    nested = {name: record for name, record in typed_records().items() if name != "Manifest"}
    assert sorted(document["$defs"]) == sorted(nested)
    for name, record in nested.items():
        assert document["$defs"][name] == record_schema(record), name
    root = {k: v for k, v in document.items() if k not in ("$schema", "title", "description", "$defs")}
    root["properties"] = {**root["properties"], "schema": {"type": "string"}}  # its const is checked above
    assert root == record_schema(records.Manifest)
    assert set(records.Manifest.__required_keys__) == set(records.ManifestBody.__required_keys__) | {"sha256"}
    assert set(REQUIRED_KEYS) == set(records.Manifest.__required_keys__) - {"schema"}


# -- the parser names the key path (host: bad input; runtime: exit 1) -------------------------------------


@pytest.fixture
def document(experiment: Experiment, freeze_experiment: Freeze) -> dict[str, Any]:
    return dict(json.loads(freeze_experiment(experiment).manifest_bytes))


def resealed(document: dict[str, Any]) -> bytes:
    """The document sealed again, so only its structure is wrong, not its digest."""
    return seal({k: v for k, v in document.items() if k != "sha256"})[0]


BROKEN: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("nested-missing", lambda d: d["experiment"].pop("seed"), "experiment.seed is missing"),
    (
        "dataset-wrong-type",
        lambda d: d["datasets"]["points"].update(sha256=5),
        "datasets.points.sha256 must be a string, not an integer",
    ),
    (
        "bool-is-not-a-number",
        lambda d: d["datasets"]["points"].update(files=True),
        "datasets.points.files must be an integer, not true",
    ),
    (
        "code-file-missing-mode",
        lambda d: d["code"]["files"]["train.py"].pop("mode"),
        "code.files.train.py.mode is missing",
    ),
    ("record-is-null", lambda d: d.update(metrics=None), "metrics must be an object, not null"),
    ("config-wrong-type", lambda d: d.update(config="c.json"), "config must be an object or null, not a string"),
    ("config-record-missing", lambda d: d["config"].pop("content"), "config.content is missing"),
    (
        "list-item-wrong-type",
        lambda d: d["runtime"]["entrypoint"].append(1),
        "runtime.entrypoint.3 must be a string, not an integer",
    ),
    ("unknown-field", lambda d: d["layout"].update(extra="/x"), "layout.extra is not a field of the manifest"),
    ("expected-value", lambda d: d["metrics"]["expected"]["accuracy"].update(value="0.9"), "must be a number"),
]


@pytest.mark.parametrize(("change", "said"), [(c, s) for _, c, s in BROKEN], ids=[i for i, _, _ in BROKEN])
def test_the_host_refuses_a_malformed_manifest_naming_the_key(
    document: dict[str, Any], change: Callable[[dict[str, Any]], object], said: str
) -> None:
    change(document)
    with pytest.raises(BadInput) as raised:
        parse_manifest(resealed(document), "img:/repro/manifest.json")
    message = str(raised.value)
    assert message.startswith("img:/repro/manifest.json is not a well-formed repropack manifest: ")
    assert said in message and "\n" not in message
    assert raised.value.exit_code == 2
    with pytest.raises(records.ManifestError, match="^m.json: .*" + said.split(" ", 1)[0].replace(".", r"\.")):
        records.parse_manifest_document(document, "m.json")


def test_a_missing_top_level_key_keeps_its_message(document: dict[str, Any]) -> None:
    del document["datasets_sha256"]
    with pytest.raises(BadInput, match="lacks datasets_sha256: it was written by another version of repropack"):
        parse_manifest(resealed(document), "m.json")


def test_a_well_formed_manifest_with_a_wrong_digest_is_still_modified(document: dict[str, Any]) -> None:
    document["experiment"]["seed"] = "7"  # malformed too, but the digest speaks first
    with pytest.raises(BadInput, match="has been modified"):
        parse_manifest(canonical_json(document), "m.json")


def load_entrypoint() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("repro_entrypoint_records_test", RUNTIME / "entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("change", "said"), [(c, s) for _, c, s in BROKEN[:3]], ids=[i for i, _, _ in BROKEN[:3]])
def test_the_runtime_exits_1_on_a_malformed_manifest(
    document: dict[str, Any],
    change: Callable[[dict[str, Any]], object],
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ep = load_entrypoint()
    broken = copy.deepcopy(document)
    change(broken)
    path = tmp_path / "manifest.json"
    path.write_bytes(resealed(broken))
    monkeypatch.setattr(ep.layout, "MANIFEST", str(path))
    monkeypatch.setattr(ep, "execute", lambda *_: pytest.fail("a malformed manifest must not run"))
    assert ep.main(["train"]) == 1
    err = capsys.readouterr().err
    assert err == f"repropack runtime: cannot read the manifest {path} ({said}).\n"


def test_the_runtime_parses_a_good_manifest_and_runs_on(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ep = load_entrypoint()
    path = tmp_path / "manifest.json"
    path.write_bytes(canonical_json(document))
    seen: list[Any] = []
    monkeypatch.setattr(ep.layout, "MANIFEST", str(path))
    monkeypatch.setattr(ep, "execute", lambda manifest, argv: seen.append((manifest, argv)) or 0)
    assert ep.main(["train"]) == 0
    assert seen == [(document, ["train"])]


# -- the runtime's files ship, and run as the image runs them -----------------------------------------------


def test_every_runtime_module_ships_and_is_python_3_8() -> None:
    modules = {p.name for p in RUNTIME.glob("*.py") if p.name != "__init__.py"}
    shipped = {target.rpartition("/")[2] for target in RUNTIME_FILES}
    assert modules | {"manifest.schema.json"} == shipped
    for name in modules:
        ast.parse((RUNTIME / name).read_text(), name, feature_version=(3, 8))


def test_the_entrypoint_runs_as_a_script_under_isolated_mode() -> None:
    """``python -I /repro/runtime/entrypoint.py``: its own folder is off sys.path, the siblings still load;
    no /repro/manifest.json here, so it stops with exit 1 (or runs the image's, where there is one)."""
    if Path("/repro/manifest.json").exists():
        pytest.skip("this machine has a /repro/manifest.json")
    done = subprocess.run(
        [sys.executable, "-I", str(RUNTIME / "entrypoint.py"), "train"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("repropack runtime: cannot read the manifest /repro/manifest.json (")

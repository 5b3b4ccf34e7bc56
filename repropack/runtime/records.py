"""The manifest's records, typed, and the one parser that checks a document is a manifest.

Standard library only and Python 3.8-compatible: the image's runtime imports it as a sibling file
(``/repro/runtime/records.py``) and the host as ``repropack.runtime.records``, so both read a manifest
the same way. The structure is spelled twice, as TypedDicts (for mypy) and as the JSON Schema beside
this file (``manifest.schema.json``, which the parser walks); the unit tests keep the two equal.
"""

from __future__ import annotations

import json
import os
from typing import Any, TypedDict, cast

SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.schema.json")


class ExperimentRecord(TypedDict):
    name: str
    python: str
    seed: int
    gpu: str  # "auto", "required" or "none"


class CodeFileRecord(TypedDict):
    sha256: str
    mode: str  # "0755" or "0644"


class CodeRecord(TypedDict):
    commit: str
    folder: str  # the experiment folder relative to the repository root ("." for the root)
    source: str | None  # the origin remote, without credentials
    dirty: bool
    diff: str | None
    diff_sha256: str | None
    sha256: str
    files: dict[str, CodeFileRecord]  # path relative to the code folder -> its facts


class BaseRecord(TypedDict):
    name: str | None  # the catalog name, None for a plain digest reference
    reference: str
    image_id: str | None  # None when frozen without a Docker engine
    python: str
    cuda: str | None
    layers: list[str]
    setup: list[str]
    config: dict[str, Any] | None  # what an image built on it inherits


class DependenciesRecord(TypedDict):
    lockfile: str
    sha256: str
    inputs_sha256: str
    count: int
    packages: dict[str, str]  # name -> version
    hashes: dict[str, list[str]]  # name -> the wheels' sha256s


class ConfigRecord(TypedDict):
    file: str
    path: str
    sha256: str
    content: str
    values: dict[str, Any] | None  # a YAML config's mapping as JSON (for --set); None for a JSON config


class DatasetRecord(TypedDict):
    embed: bool
    kind: str  # "file" or "directory"
    mount: str
    path: str
    sha256: str  # the sha256 of its index
    files: int
    bytes: int
    index: str  # the index's path in the image


class ExpectedRecord(TypedDict):
    value: float
    abs_tol: float
    rel_tol: float


class MetricsRecord(TypedDict):
    file: str | None
    stdout: dict[str, str]  # metric -> the pattern that finds it in the command's output
    expected: dict[str, ExpectedRecord]


class LayoutRecord(TypedDict):
    code: str
    config: str
    data: str
    manifest: str
    output: str
    python: str


class RuntimeRecord(TypedDict):
    entrypoint: list[str]
    files: dict[str, str]  # path in the runtime folder -> sha256


class TestsRecord(TypedDict):
    command: str  # the command that runs the experiment's own tests
    at_build: bool  # run in the new image before it was tagged (false: built with --no-test)


class ManifestBody(TypedDict):
    """The manifest as built, before it is sealed with its own digest."""

    schema: str
    repropack: str
    experiment: ExperimentRecord
    code: CodeRecord
    base: BaseRecord
    dependencies: DependenciesRecord
    config: ConfigRecord | None
    datasets: dict[str, DatasetRecord]
    datasets_sha256: str
    commands: dict[str, str | list[str]]  # a list: steps run in order
    params: dict[str, Any]  # NAME -> default ({params.NAME} in commands; --set NAME=VALUE)
    tests: TestsRecord | None
    artifacts: list[str]  # paths (globs) a command makes, in its working folder or the output, hashed per run
    metrics: MetricsRecord
    layout: LayoutRecord
    runtime: RuntimeRecord


class Manifest(ManifestBody):
    """A sealed manifest: /repro/manifest.json."""

    sha256: str


class ManifestError(ValueError):
    """A document is not shaped as a manifest; ``problem`` names the key path and what is wrong."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


_schema: dict[str, Any] | None = None
JSON_TYPES = {
    "null": "null",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}


def load_schema() -> dict[str, Any]:
    global _schema
    if _schema is None:
        with open(SCHEMA_FILE, "rb") as handle:
            _schema = cast("dict[str, Any]", json.load(handle))
    return _schema


def parse_manifest_document(document: object, source: str) -> Manifest:
    """``document`` (parsed JSON) as a Manifest, once every key and JSON type is checked; else ManifestError."""
    schema = load_schema()
    problem = _problem(document, schema, schema, ())
    if problem is not None:
        raise ManifestError(source, problem)
    return cast(Manifest, document)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else type(value).__name__


def _name(path: tuple[str, ...]) -> str:
    return ".".join(path) or "the manifest"


def _types(node: dict[str, Any]) -> list[str]:
    types = node.get("type", list(JSON_TYPES))
    return [types] if isinstance(types, str) else list(types)


def _fits(kind: str, types: list[str]) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def _problem(value: object, node: dict[str, Any], root: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """What is wrong with ``value`` at ``path`` by the schema ``node`` (the subset of JSON Schema the
    manifest's schema uses: $ref, anyOf, type, const, properties, required, additionalProperties, items)."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rpartition("/")[2]]
    kind = _kind(value)
    if "anyOf" in node:
        branches = [root["$defs"][b["$ref"].rpartition("/")[2]] if "$ref" in b else b for b in node["anyOf"]]
        types = [t for branch in branches for t in _types(branch)]
        fitting = [branch for branch in branches if _fits(kind, _types(branch))]
        problems = [_problem(value, branch, root, path) for branch in fitting]
        if problems and None not in problems:
            return problems[0]
    else:
        types = _types(node)
    if not _fits(kind, types):
        wanted = " or ".join(JSON_TYPES[t] for t in types)
        shown = json.dumps(value) if kind in ("boolean", "null") else JSON_TYPES.get(kind, kind)
        return f"{_name(path)} must be {wanted}, not {shown}"
    if "anyOf" in node:
        return None
    if "const" in node and value != node["const"]:
        return f"{_name(path)} must be {json.dumps(node['const'])}"
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for key in node.get("required", ()):
            if key not in value:
                return f"{_name((*path, key))} is missing"
        extra = node.get("additionalProperties", True)
        for key in sorted(value):
            if key in properties:
                problem = _problem(value[key], properties[key], root, (*path, key))
            elif extra is False:
                problem = f"{_name((*path, key))} is not a field of the manifest"
            elif isinstance(extra, dict):
                problem = _problem(value[key], extra, root, (*path, key))
            else:
                problem = None
            if problem is not None:
                return problem
    if isinstance(value, list) and "items" in node:
        for number, item in enumerate(value):
            problem = _problem(item, node["items"], root, (*path, str(number)))
            if problem is not None:
                return problem
    return None

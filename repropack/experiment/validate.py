"""Reading and validating an experiment.yaml against version 1 of the format: every problem at once, with its line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from repropack.errors import SpecError
from repropack.experiment.checker import Checker, kind
from repropack.experiment.commands import check_artifacts, check_commands, check_metrics, check_params
from repropack.experiment.model import (
    DATASET_KEYS,
    DIGEST_REFERENCE,
    GPU_MODES,
    IDENTIFIER,
    IMAGE_NAME,
    PYTHON_VERSION,
    REQUIRED_EXAMPLES,
    REQUIRED_KEYS,
    SEED_LIMIT,
    SPEC_VERSION,
    TOP_KEYS,
    Dataset,
    Spec,
)
from repropack.experiment.yamldoc import Located, load_yaml
from repropack.files import read_text


def load_spec(path: Path, *, lockfile_may_be_missing: bool = False) -> Spec:
    """Read, validate and normalize ``path``; raise :class:`SpecError` listing every problem.

    A lockfile the spec names explicitly must exist (``freeze`` and ``build`` only create the default
    one): a typo there would otherwise make a second lockfile. ``repropack lock`` passes
    ``lockfile_may_be_missing`` because creating it is its job.
    """
    text = read_text(path, "experiment spec")
    doc = load_yaml(text, path.name)
    return validate(doc, path.resolve(), lockfile_may_be_missing=lockfile_may_be_missing)


def validate(doc: Located, spec_path: Path, *, lockfile_may_be_missing: bool = False) -> Spec:
    """Check the loaded document against version 1 of the format; see README.md for the reference."""
    source = spec_path.name
    if doc.value is None:
        raise SpecError(source, ["the file is empty; start from the example in README.md"])
    if not isinstance(doc.value, dict):
        raise SpecError(
            source, [f"line {doc.line() or 1}: the top level must be a mapping of keys, not {kind(doc.value)}"]
        )
    raw: dict[str, Any] = doc.value
    check = Checker(doc, spec_path.parent, source)
    check.unknown_keys(raw, TOP_KEYS, ())
    for key in REQUIRED_KEYS:
        if key not in raw:
            check.problems.append(f"missing required key '{key}' (for example {REQUIRED_EXAMPLES[key]})")

    _check_version(check, raw)
    name = _check_name(check, raw)
    python = _check_python(check, raw)
    base = _check_base(check, raw)
    if python and base:
        _check_base_python(check, base, python)
    requirements = check.existing_file(raw["requirements"], ("requirements",)) if "requirements" in raw else None
    lockfile = _check_lockfile(check, raw, may_be_missing=lockfile_may_be_missing)
    config = check.existing_file(raw["config"], ("config",)) if "config" in raw else None
    seed = _check_seed(check, raw)
    gpu = _check_gpu(check, raw)
    datasets = _check_datasets(check, raw)
    # A dataset that is declared but invalid has its own problem; its placeholder is not a second one.
    declared = frozenset(raw["datasets"]) if isinstance(raw.get("datasets"), dict) else frozenset()
    params = check_params(check, raw)
    commands = check_commands(
        check, raw, datasets, has_config="config" in raw, declared=declared | {f"params.{name}" for name in params}
    )
    metrics = check_metrics(check, raw)
    artifacts = check_artifacts(check, raw)

    if check.problems:
        raise SpecError(source, check.problems)
    assert name and python and base and requirements and lockfile and commands is not None
    return Spec(
        path=spec_path,
        name=name,
        python=python,
        base=base,
        requirements=requirements,
        lockfile=lockfile,
        config=config,
        seed=seed,
        datasets=datasets,
        commands=commands,
        metrics=metrics,
        gpu=gpu,
        params=params,
        artifacts=artifacts,
    )


def _check_version(check: Checker, raw: dict[str, Any]) -> None:
    value = raw.get("version", SPEC_VERSION)
    if value != SPEC_VERSION or isinstance(value, bool) or not isinstance(value, int):
        shown = str(value) if isinstance(value, int) and not isinstance(value, bool) else kind(value)
        check.problem(
            ("version",), f"this repropack reads version {SPEC_VERSION}, not {shown}; write version: {SPEC_VERSION}"
        )


def _check_name(check: Checker, raw: dict[str, Any]) -> str | None:
    if "name" not in raw:
        return None
    name = check.text(raw["name"], ("name",))
    if name is not None and len(name) > 100:
        check.problem(("name",), f"is {len(name)} characters long; an image name has at most 100")
        return None
    if name is not None and not IMAGE_NAME.match(name):
        check.problem(
            ("name",),
            f"'{name}' is not usable as an image name: use lower-case letters and digits, "
            "separated by '.', '_' or '-' (for example spiral-mlp)",
        )
        return None
    return name


def _check_python(check: Checker, raw: dict[str, Any]) -> str | None:
    if "python" not in raw:
        return None
    value = raw["python"]
    if isinstance(value, float):
        meant = "3.10" if str(value) == "3.1" else str(value)  # unquoted 3.10 is the number 3.1
        check.problem(
            ("python",), f'write the version as a string, "{meant}" (unquoted, YAML reads it as the number {value})'
        )
        return None
    text = check.text(value, ("python",))
    if text is None:
        return None
    match = PYTHON_VERSION.match(text)
    if not match or not 8 <= int(match.group(1)) <= 20:
        check.problem(("python",), f"'{text}' is not a Python version like \"3.11\" (major.minor, 3.8 or later)")
        return None
    return text


def _check_base(check: Checker, raw: dict[str, Any]) -> str | None:
    if "base" not in raw:
        return None
    text = check.text(raw["base"], ("base",))
    if text is None:
        return None
    if "@" in text or "/" in text or ":" in text:
        if not DIGEST_REFERENCE.match(text):
            check.problem(
                ("base",),
                f"'{text}' is neither a catalog name nor an image reference pinned by digest "
                "(REPOSITORY@sha256:<64 hex digits>)",
            )
            return None
        return text
    if text == "cuda":  # the CUDA base that matches the locked torch, chosen at freeze time
        return text
    from repropack.bases.catalog import load_catalog  # data lookup; kept lazy for start-up time

    catalog = load_catalog()
    if text not in catalog:
        nearest = sorted(catalog, key=lambda known: (-difflib.SequenceMatcher(None, text, known).ratio(), known))
        check.problem(
            ("base",),
            f"unknown base image '{text}'; known: {', '.join(nearest)} (nearest first), 'cuda', or "
            "REPOSITORY@sha256:<digest> (details: repropack base list)",
        )
        return None
    return text


def _check_base_python(check: Checker, base: str, python: str) -> None:
    """A catalog base brings its own Python; the spec's must be the same (found here, with a line)."""
    from repropack.bases.catalog import load_catalog

    entry = load_catalog().get(base)
    if entry is None or entry.python == python:
        return
    same = sorted(name for name, b in load_catalog().items() if b.python == python)
    choices = f"bases with Python {python}: {', '.join(same)}" if same else f"no base has Python {python}"
    check.problem(
        ("python",),
        f"'{python}' but the base {base} has Python {entry.python}; write python: \"{entry.python}\", or pick "
        f"another base ({choices})",
    )


def _check_lockfile(check: Checker, raw: dict[str, Any], *, may_be_missing: bool) -> Path | None:
    if "lockfile" not in raw:
        return check.root / "requirements.lock"
    text = check.text(raw["lockfile"], ("lockfile",))
    if text is None:
        return None
    path = (check.root / text).resolve()
    if path.is_dir():
        check.problem(("lockfile",), f"'{text}' is a directory; name a file")
        return None
    # Only the default lockfile may be missing (freeze and build make it): a named one that is not there
    # is more likely a typo than a wish for a second lockfile.
    if not path.exists() and not may_be_missing and path != (check.root / "requirements.lock").resolve():
        check.problem(
            ("lockfile",),
            f"'{text}' does not exist (looked for it relative to the spec's folder); make it with "
            f"'repropack lock {check.spec_name}', or remove the key to use requirements.lock",
        )
        return None
    return path


def _check_seed(check: Checker, raw: dict[str, Any]) -> int:
    value = raw.get("seed", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        check.problem(("seed",), f"must be a whole number, not {kind(value)}")
        return 0
    if not 0 <= value < SEED_LIMIT:
        check.problem(("seed",), f"must be between 0 and {SEED_LIMIT - 1}, not {value}")
        return 0
    return value


def _check_gpu(check: Checker, raw: dict[str, Any]) -> str:
    value = raw.get("gpu", "auto")
    if not isinstance(value, str) or value not in GPU_MODES:
        shown = repr(value) if isinstance(value, str) else kind(value)
        check.problem(("gpu",), f"must be one of {', '.join(GPU_MODES)}, not {shown}")
        return "auto"
    return str(value)


def _check_datasets(check: Checker, raw: dict[str, Any]) -> dict[str, Dataset]:
    if "datasets" not in raw or raw["datasets"] is None:
        return {}
    mapping = check.mapping(raw["datasets"], ("datasets",), "points: {path: data/points.csv}")
    result: dict[str, Dataset] = {}
    for name, entry in (mapping or {}).items():
        where = ("datasets", name)
        if not IDENTIFIER.match(name):
            check.problem(where, "dataset names use lower-case letters, digits, '_' and '-', starting with a letter")
            continue
        if isinstance(entry, str):
            entry = {"path": entry}
        body = check.mapping(entry, where, "{path: data/points.csv, embed: true}")
        if body is None:
            continue
        check.unknown_keys(body, DATASET_KEYS, where)
        if "path" not in body:
            check.problem(where, "missing required key 'path'")
            continue
        embed = body.get("embed", True)
        if not isinstance(embed, bool):
            check.problem((*where, "embed"), f"must be true or false, not {kind(embed)}")
            continue
        path = check.existing_file(body["path"], (*where, "path"), directory_ok=True)
        if path is not None:
            result[name] = Dataset(name=name, path=path, embed=embed)
    return dict(sorted(result.items()))

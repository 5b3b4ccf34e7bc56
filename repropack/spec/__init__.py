"""experiment.yaml, version 1: parse, validate (every problem at once, with its line), normalize.

The result is a :class:`Spec`, the only thing later stages read. Paths in it are absolute on this host;
nothing host-specific leaves this module except through explicit, relative fields.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from repropack.errors import SpecError
from repropack.files import read_text
from repropack.spec.yamldoc import Located, load_yaml

SPEC_VERSION = 1
GPU_MODES = ("auto", "none", "required")
TOP_KEYS = (
    "version",
    "name",
    "python",
    "base",
    "requirements",
    "lockfile",
    "config",
    "seed",
    "datasets",
    "commands",
    "metrics",
    "gpu",
)
REQUIRED_KEYS = ("version", "name", "python", "base", "requirements", "commands")
REQUIRED_EXAMPLES = {
    "version": "version: 1",
    "name": "name: spiral-mlp",
    "python": 'python: "3.11"',
    "base": "base: debian-bookworm",
    "requirements": "requirements: requirements.in",
    "commands": "commands: {train: python train.py}",
}
DATASET_KEYS = ("path", "embed")
METRICS_KEYS = ("file", "stdout", "expected")
EXPECTED_KEYS = ("value", "abs_tol", "rel_tol")
PLACEHOLDERS = ("config", "output", "seed")

# Docker's rules for a repository name component (lower case) and for a tag.
NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
TAG_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
IMAGE_NAME = re.compile(rf"^{NAME_COMPONENT}$")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_-]*$")
PYTHON_VERSION = re.compile(r"^3\.(\d{1,2})$")
DIGEST_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$")
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path  # absolute, on this host
    embed: bool


@dataclass(frozen=True)
class Expected:
    value: float
    abs_tol: float
    rel_tol: float

    def tolerance(self) -> float:
        """The allowed |actual - value|: abs_tol + rel_tol * |value|."""
        return self.abs_tol + self.rel_tol * abs(self.value)


@dataclass(frozen=True)
class Metrics:
    file: str | None
    stdout: dict[str, str] = field(default_factory=dict)
    expected: dict[str, Expected] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    path: Path  # the experiment.yaml, absolute
    name: str
    python: str
    base: str
    requirements: Path
    lockfile: Path
    config: Path | None
    seed: int
    datasets: dict[str, Dataset]
    commands: dict[str, str]
    metrics: Metrics
    gpu: str

    @property
    def root(self) -> Path:
        """The experiment's folder: the code shipped is this folder of its git repository."""
        return self.path.parent


def load_spec(path: Path, *, lockfile_may_be_missing: bool = False) -> Spec:
    """Read, validate and normalize ``path``; raise :class:`SpecError` listing every problem.

    A lockfile the spec names explicitly must exist (``freeze`` and ``build`` only create the default
    one): a typo there would otherwise make a second lockfile. ``repropack lock`` passes
    ``lockfile_may_be_missing`` because creating it is its job.
    """
    text = read_text(path, "experiment spec")
    doc = load_yaml(text, path.name)
    return validate(doc, path.resolve(), lockfile_may_be_missing=lockfile_may_be_missing)


class _Checker:
    """Collects problems as 'line N: key: message' strings while the spec is being read."""

    def __init__(self, doc: Located, root: Path, spec_name: str = "experiment.yaml") -> None:
        self.doc = doc
        self.root = root
        self.spec_name = spec_name
        self.problems: list[str] = []

    def problem(self, path: tuple[str, ...], message: str) -> None:
        line = self.doc.line(*path)
        where = f"line {line}: " if line is not None else ""
        key = ".".join(path)
        self.problems.append(f"{where}{key + ': ' if key else ''}{message}")

    def unknown_keys(self, mapping: dict[str, Any], allowed: tuple[str, ...], path: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                suggestion = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(allowed)}"
                self.problem((*path, key), f"unknown key; {suggestion}")

    def mapping(self, value: Any, path: tuple[str, ...], example: str = "") -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        shape = f" (for example {example})" if example else ""
        self.problem(path, f"must be a mapping of keys to values, not {_kind(value)}{shape}")
        return None

    def text(self, value: Any, path: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        self.problem(path, f"must be a non-empty string, not {_kind(value)}")
        return None

    def number(self, value: Any, path: tuple[str, ...], *, minimum: float | None = None) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            self.problem(path, f"must be a number, not {_kind(value)}")
            return None
        if not math.isfinite(value):
            self.problem(path, f"must be a finite number, not {value}")
            return None
        if minimum is not None and value < minimum:
            self.problem(path, f"must be at least {minimum}, not {value}")
            return None
        return float(value)

    def existing_file(self, value: Any, path: tuple[str, ...], *, directory_ok: bool = False) -> Path | None:
        text = self.text(value, path)
        if text is None:
            return None
        resolved = (self.root / text).resolve() if not Path(text).is_absolute() else Path(text)
        if not resolved.exists():
            self.problem(path, f"'{text}' does not exist (looked for it relative to the spec's folder)")
            return None
        if resolved.is_dir() and not directory_ok:
            self.problem(path, f"'{text}' is a directory; name a file")
            return None
        return resolved


def validate(doc: Located, spec_path: Path, *, lockfile_may_be_missing: bool = False) -> Spec:
    """Check the loaded document against version 1 of the format; see README.md for the reference."""
    source = spec_path.name
    if doc.value is None:
        raise SpecError(source, ["the file is empty; start from the example in README.md"])
    if not isinstance(doc.value, dict):
        raise SpecError(
            source, [f"line {doc.line() or 1}: the top level must be a mapping of keys, not {_kind(doc.value)}"]
        )
    raw: dict[str, Any] = doc.value
    check = _Checker(doc, spec_path.parent, source)
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
    commands = _check_commands(check, raw, datasets, has_config="config" in raw, declared=declared)
    metrics = _check_metrics(check, raw)

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
    )


def _check_version(check: _Checker, raw: dict[str, Any]) -> None:
    value = raw.get("version", SPEC_VERSION)
    if value != SPEC_VERSION or isinstance(value, bool) or not isinstance(value, int):
        shown = str(value) if isinstance(value, int) and not isinstance(value, bool) else _kind(value)
        check.problem(
            ("version",), f"this repropack reads version {SPEC_VERSION}, not {shown}; write version: {SPEC_VERSION}"
        )


def _check_name(check: _Checker, raw: dict[str, Any]) -> str | None:
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


def _check_python(check: _Checker, raw: dict[str, Any]) -> str | None:
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


def _check_base(check: _Checker, raw: dict[str, Any]) -> str | None:
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


def _check_base_python(check: _Checker, base: str, python: str) -> None:
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


def _check_lockfile(check: _Checker, raw: dict[str, Any], *, may_be_missing: bool) -> Path | None:
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


def _check_seed(check: _Checker, raw: dict[str, Any]) -> int:
    value = raw.get("seed", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        check.problem(("seed",), f"must be a whole number, not {_kind(value)}")
        return 0
    if not 0 <= value < SEED_LIMIT:
        check.problem(("seed",), f"must be between 0 and {SEED_LIMIT - 1}, not {value}")
        return 0
    return value


def _check_gpu(check: _Checker, raw: dict[str, Any]) -> str:
    value = raw.get("gpu", "auto")
    if not isinstance(value, str) or value not in GPU_MODES:
        shown = repr(value) if isinstance(value, str) else _kind(value)
        check.problem(("gpu",), f"must be one of {', '.join(GPU_MODES)}, not {shown}")
        return "auto"
    return str(value)


def _check_datasets(check: _Checker, raw: dict[str, Any]) -> dict[str, Dataset]:
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
            check.problem((*where, "embed"), f"must be true or false, not {_kind(embed)}")
            continue
        path = check.existing_file(body["path"], (*where, "path"), directory_ok=True)
        if path is not None:
            result[name] = Dataset(name=name, path=path, embed=embed)
    return dict(sorted(result.items()))


def command_fields(command: str) -> list[str]:
    """The placeholder names in a command (``{{`` and ``}}`` stand for literal braces)."""
    return [fname for _, fname, _, _ in string.Formatter().parse(command) if fname is not None]


def _check_commands(
    check: _Checker,
    raw: dict[str, Any],
    datasets: dict[str, Dataset],
    *,
    has_config: bool,
    declared: frozenset[str] = frozenset(),
) -> dict[str, str] | None:
    if "commands" not in raw:
        return None
    mapping = check.mapping(raw["commands"], ("commands",), "train: python train.py")
    if mapping is None:
        return None
    if not mapping:
        check.problem(("commands",), "declare at least one command, for example train")
    result: dict[str, str] = {}
    for name, command in mapping.items():
        where = ("commands", name)
        if not IDENTIFIER.match(name):
            check.problem(where, "command names use lower-case letters, digits, '_' and '-', starting with a letter")
            continue
        text = check.text(command, where)
        if text is None:
            continue
        try:
            fields = command_fields(text)
        except ValueError as exc:
            check.problem(where, f"bad placeholder syntax ({exc}); write literal braces as {{{{ and }}}}")
            continue
        for fname in fields:
            problem = _placeholder_problem(fname, datasets, has_config=has_config, declared=declared)
            if problem:
                check.problem(where, problem)
        result[name] = text
    return dict(sorted(result.items()))


def _placeholder_problem(
    fname: str, datasets: dict[str, Dataset], *, has_config: bool, declared: frozenset[str] = frozenset()
) -> str | None:
    if fname == "config" and not has_config:
        return "uses {config} but the spec has no 'config' file"
    if fname in PLACEHOLDERS:
        return None
    if fname.startswith("datasets."):
        dataset = fname.removeprefix("datasets.")
        if dataset in datasets or dataset in declared:
            return None
        near = difflib.get_close_matches(dataset, list(datasets), n=1)
        hint = f"did you mean {{datasets.{near[0]}}}?" if near else f"declared: {', '.join(datasets) or 'none'}"
        return f"placeholder {{{fname}}} names an unknown dataset; {hint}"
    known = ", ".join("{" + p + "}" for p in (*PLACEHOLDERS, "datasets.NAME"))
    near = difflib.get_close_matches(fname, list(PLACEHOLDERS), n=1)
    return f"unknown placeholder {{{fname}}}; " + (f"did you mean {{{near[0]}}}?" if near else f"known: {known}")


def _check_metrics(check: _Checker, raw: dict[str, Any]) -> Metrics:
    if "metrics" not in raw or raw["metrics"] is None:
        return Metrics(file=None)
    body = check.mapping(raw["metrics"], ("metrics",), "file: metrics.json")
    if body is None:
        return Metrics(file=None)
    check.unknown_keys(body, METRICS_KEYS, ("metrics",))
    file = _check_metrics_file(check, body)
    stdout = _check_stdout_patterns(check, body)
    expected: dict[str, Expected] = {}
    entries = (
        check.mapping(body.get("expected") or {}, ("metrics", "expected"), "accuracy: {value: 0.9, abs_tol: 0.01}")
        or {}
    )
    for name, entry in entries.items():
        parsed = _check_expected(check, ("metrics", "expected", name), entry)
        if parsed is not None:
            expected[name] = parsed
        if file is None and name not in stdout:
            check.problem(
                ("metrics", "expected", name),
                "no source for this metric: set metrics.file, or a metrics.stdout pattern with this name",
            )
    return Metrics(file=file, stdout=dict(sorted(stdout.items())), expected=dict(sorted(expected.items())))


def _check_metrics_file(check: _Checker, body: dict[str, Any]) -> str | None:
    if "file" not in body:
        return None
    text = check.text(body["file"], ("metrics", "file"))
    if text is None:
        return None
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in text:
        check.problem(("metrics", "file"), f"'{text}' must be a path inside the output folder, like metrics.json")
        return None
    return str(pure)


def _check_stdout_patterns(check: _Checker, body: dict[str, Any]) -> dict[str, str]:
    patterns = check.mapping(body.get("stdout") or {}, ("metrics", "stdout"), "loss: 'loss: ([0-9.]+)'") or {}
    result: dict[str, str] = {}
    for name, pattern in patterns.items():
        where = ("metrics", "stdout", name)
        text = check.text(pattern, where)
        if text is None:
            continue
        try:
            compiled = re.compile(text)
        except re.error as exc:
            check.problem(where, f"is not a valid regular expression ({exc})")
            continue
        if compiled.groups < 1:
            check.problem(where, "needs one capturing group around the number, like 'loss: ([0-9.]+)'")
            continue
        result[name] = text
    return result


def _check_expected(check: _Checker, where: tuple[str, ...], entry: Any) -> Expected | None:
    body = check.mapping(entry, where, "{value: 0.9, abs_tol: 0.01}")
    if body is None:
        return None
    check.unknown_keys(body, EXPECTED_KEYS, where)
    if "value" not in body:
        check.problem(where, "missing required key 'value'")
        return None
    if "abs_tol" not in body and "rel_tol" not in body:
        check.problem(where, "give a tolerance: abs_tol, rel_tol or both (0 for an exact match)")
        return None
    value = check.number(body["value"], (*where, "value"))
    abs_tol = check.number(body.get("abs_tol", 0), (*where, "abs_tol"), minimum=0)
    rel_tol = check.number(body.get("rel_tol", 0), (*where, "rel_tol"), minimum=0)
    if value is None or abs_tol is None or rel_tol is None:
        return None
    return Expected(value=value, abs_tol=abs_tol, rel_tol=rel_tol)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {_short(value)!r}"
    return f"{type(value).__name__} {_short(repr(value))}"


def _short(text: str, limit: int = 40) -> str:
    """A value as a message shows it: a whole file read as one string must not become the message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."

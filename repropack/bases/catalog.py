"""The base image catalog and the torch -> CUDA table, as data plus plain functions (cog-style).

The data lives in base_images/catalog.yaml and base_images/torch_cuda.yaml, shipped inside the package as
``repropack.base_images``. When nothing matches, the errors list the nearest valid choices.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import yaml

from repropack.errors import BadInput

_DATA_PACKAGE = "repropack.base_images"
_CATALOG_FILE = "catalog.yaml"
_TORCH_CUDA_FILE = "torch_cuda.yaml"
_MAJOR_MINOR = re.compile(r"^(\d+)\.(\d+)(?:$|[.+a-z])")
_CUDA_TAG = re.compile(r"^cu(\d+)(\d)$")  # cu121 -> 12.1, cu118 -> 11.8, cu92 -> 9.2


@dataclass(frozen=True)
class BaseImage:
    name: str
    reference: str
    python: str
    cuda: str | None
    digest: str | None
    recipe: str | None
    setup: tuple[str, ...]

    def describe(self) -> str:
        """'cuda12.4-ubuntu22.04 (Python 3.10, CUDA 12.4)', for lists of choices."""
        return f"{self.name} (Python {self.python}, {f'CUDA {self.cuda}' if self.cuda else 'no CUDA'})"


def parse_catalog(data: object, source: str = _CATALOG_FILE) -> dict[str, BaseImage]:
    """Check and convert the loaded YAML of a catalog; every problem found is reported at once."""
    if not isinstance(data, dict) or not data:
        raise BadInput(f"{source}: expected a mapping of base image names to entries.")
    catalog: dict[str, BaseImage] = {}
    problems: list[str] = []
    for name, entry in data.items():
        if not isinstance(entry, dict):
            problems.append(f"{name}: expected a mapping")
            continue
        unknown = sorted(set(entry) - {"reference", "digest", "python", "cuda", "recipe", "setup"})
        problems += [f"{name}: unknown key {key!r}" for key in unknown]
        for key, optional in (("reference", False), ("python", False), ("cuda", True), ("digest", True)):
            value = entry.get(key)
            if not (isinstance(value, str) and value) and not (optional and value is None):
                problems.append(f"{name}: {key} must be a quoted string{' or null' if optional else ''}")
        recipe = entry.get("recipe")
        setup = entry.get("setup") or []
        if recipe is not None and not isinstance(recipe, str):
            problems.append(f"{name}: recipe must be a string or null")
        if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
            problems.append(f"{name}: setup must be a list of shell lines")
            setup = []
        if not problems:
            catalog[str(name)] = BaseImage(
                name=str(name),
                reference=entry["reference"],
                python=entry["python"],
                cuda=entry.get("cuda"),
                digest=entry.get("digest"),
                recipe=recipe,
                setup=tuple(setup),
            )
    if problems:
        raise BadInput(f"{source}: {'; '.join(problems)}.")
    return catalog


@lru_cache(maxsize=1)
def _packaged_catalog() -> dict[str, BaseImage]:
    return parse_catalog(_load_yaml(_CATALOG_FILE), _CATALOG_FILE)


@lru_cache(maxsize=1)
def _torch_cuda_table() -> dict[str, tuple[str, ...]]:
    data = _load_yaml(_TORCH_CUDA_FILE)
    table = data.get("torch") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not all(
        isinstance(minor, str) and isinstance(cudas, list) and cudas and all(isinstance(c, str) for c in cudas)
        for minor, cudas in table.items()
    ):
        raise BadInput(f"{_TORCH_CUDA_FILE}: expected torch: a mapping of quoted minor versions to CUDA lists.")
    return {minor: tuple(cudas) for minor, cudas in table.items()}


def _load_yaml(filename: str) -> Any:
    text = files(_DATA_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BadInput(f"{filename} is not valid YAML: {error}") from error


def load_catalog() -> dict[str, BaseImage]:
    """All base images in the packaged catalog, by name (a fresh dict: callers may change it)."""
    return dict(_packaged_catalog())


def lookup(name: str, *, catalog: Mapping[str, BaseImage] | None = None) -> BaseImage:
    """The catalog entry called ``name``; else BadInput listing the known names, nearest first."""
    catalog = load_catalog() if catalog is None else catalog
    if name in catalog:
        return catalog[name]
    by_similarity = sorted(catalog, key=lambda known: (-_similarity(name, known), known))
    raise BadInput(
        f"Unknown base image {name!r}. Known base images, nearest first: {', '.join(by_similarity)}. "
        "Use one of these names as the experiment's base image."
    )


def _similarity(typed: str, known: str) -> float:
    # Whole-name similarity, plus similarity to the start of the known name: 'cuda12.5' is nearest to
    # 'cuda12.4-...' and 'cuda12.6-...', not to whatever shares the most scattered characters.
    whole = difflib.SequenceMatcher(None, typed, known).ratio()
    start = difflib.SequenceMatcher(None, typed, known[: len(typed)]).ratio()
    return whole + start


def _major_minor(version: str, what: str) -> str:
    match = _MAJOR_MINOR.match(version.strip())
    if match is None:
        raise BadInput(f"Cannot read a major.minor version from {what} {version!r}.")
    return f"{match.group(1)}.{match.group(2)}"


def _version_key(version: str) -> tuple[int, int]:
    major, minor = _major_minor(version, "version").split(".")
    return int(major), int(minor)


def torch_cuda(torch_version: str) -> str | None:
    """The CUDA version a pinned torch build uses, or None for a CPU build.

    '2.5.1+cu121' -> '12.1' and '2.13.0+cpu' -> None (the local version tag decides); '2.5.1' (no tag) -> the
    CUDA of the wheel PyPI serves on Linux for that minor release, the first entry of torch_cuda.yaml.
    """
    public, _, local = torch_version.strip().partition("+")
    minor = _major_minor(public, "torch version")
    if local:
        if local == "cpu":
            return None
        tag = _CUDA_TAG.match(local)
        if tag is None:
            raise BadInput(
                f"torch {torch_version}: repropack knows CUDA (+cuXYZ) and CPU (+cpu) builds of torch, not "
                f"+{local}. Lock a CUDA or CPU build of torch instead."
            )
        return f"{int(tag.group(1))}.{tag.group(2)}"
    table = _torch_cuda_table()
    if minor not in table:
        known = ", ".join(sorted(table, key=_version_key))
        raise BadInput(
            f"torch {torch_version}: repropack does not know which CUDA torch {minor} uses. Known torch "
            f"releases: {known}. Pin a build with a local version tag (for example torch=={public}+cu126 or "
            f"torch=={public}+cpu), or add {minor} to base_images/torch_cuda.yaml."
        )
    return table[minor][0]


def _nearest(python: str, cuda: str, candidates: Iterable[BaseImage], limit: int = 4) -> list[BaseImage]:
    """CUDA bases, closest first: same CUDA, then same Python, then by CUDA and Python distance."""
    wanted_cuda, wanted_python = _version_key(cuda), _version_key(python)

    def distance(version: str, wanted: tuple[int, int]) -> int:
        major, minor = _version_key(version)
        return abs((major * 100 + minor) - (wanted[0] * 100 + wanted[1]))

    def closeness(base: BaseImage) -> tuple[int, int, int, str]:
        assert base.cuda is not None
        rank = 0 if base.cuda == cuda else 1 if base.python == python else 2
        return rank, distance(base.cuda, wanted_cuda), distance(base.python, wanted_python), base.name

    return sorted((base for base in candidates if base.cuda is not None), key=closeness)[:limit]


def _choices(bases: Iterable[BaseImage]) -> str:
    return "; ".join(base.describe() for base in bases)


def choose_cuda_base(python: str, cuda: str, *, catalog: Mapping[str, BaseImage] | None = None) -> BaseImage:
    """The catalog's CUDA base with this Python and CUDA (major.minor); else BadInput naming the nearest."""
    catalog = load_catalog() if catalog is None else catalog
    python, cuda = _major_minor(python, "Python version"), _major_minor(cuda, "CUDA version")
    matches = sorted(
        (base for base in catalog.values() if base.cuda == cuda and base.python == python),
        key=lambda base: base.name,
    )
    if matches:
        return matches[0]
    raise BadInput(
        f"No base image in the catalog has Python {python} with CUDA {cuda}. Nearest choices: "
        f"{_choices(_nearest(python, cuda, catalog.values()))}. Use one of these as the base image and lock "
        "the dependencies under its Python, or lock a torch build for a CUDA version listed here."
    )


def check_base_matches(
    base: BaseImage,
    python: str,
    torch_version: str | None,
    *,
    catalog: Mapping[str, BaseImage] | None = None,
) -> None:
    """BadInput when the locked dependencies cannot run on ``base``.

    That is: the lockfile's Python differs from the base's, or ``base`` is a CUDA base and the locked torch
    is built for another CUDA. A CPU torch on a CUDA base is fine, and so is a CUDA torch on a base without
    CUDA (torch's wheels bring their CUDA libraries; the GPU driver comes from the host).
    """
    catalog = load_catalog() if catalog is None else catalog
    python = _major_minor(python, "Python version")
    if _major_minor(base.python, "Python version") != python:
        same_python = sorted(b.name for b in catalog.values() if b.python == python)
        hint = (
            f"Base images with Python {python}: {', '.join(same_python)}."
            if same_python
            else (f"No base image in the catalog has Python {python}.")
        )
        raise BadInput(
            f"Base image {base.name} has Python {base.python}, but the dependencies were locked for Python "
            f"{python}. {hint} Choose one of them, or lock the dependencies again under Python {base.python}."
        )
    if base.cuda is None or torch_version is None:
        return
    wanted = torch_cuda(torch_version)
    if wanted is None or _major_minor(base.cuda, "CUDA version") == wanted:
        return
    public = torch_version.partition("+")[0]
    valid = sorted((b for b in catalog.values() if b.cuda == wanted and b.python == python), key=lambda b: b.name)
    others = [b for b in catalog.values() if b.name != base.name]
    choices = (
        f"Valid choices: {_choices(valid)}"
        if valid
        else (
            f"No base image has Python {python} with CUDA {wanted}; nearest: "
            f"{_choices(_nearest(python, wanted, others))}"
        )
    )
    raise BadInput(
        f"Base image {base.name} has CUDA {base.cuda}, but the locked torch {torch_version} is built for "
        f"CUDA {wanted}. {choices}. Use such a base, or lock "
        f"torch=={public}+cu{base.cuda.replace('.', '')} to match {base.name}."
    )

"""The ``files`` and ``packages`` checks: every entry in the layers above the recorded base, explained.

Every file, folder, link and whiteout above the base must be what repropack puts there: ``/repro`` by the
manifest (code, runtime, config, dataset indexes, embedded data), ``/repro/venv`` by the hash-pinned
wheels (:mod:`repropack.verify.venv_contents`), and nothing else anywhere. The layers are read from the
merged filesystems of the image and its local base (:mod:`repropack.verify.filesystem`), or from the
image's own layers (:mod:`repropack.verify.layers`); nothing in the image runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from repropack.cache import cache_root, disabled
from repropack.canonical import canonical_json, sha256_hex
from repropack.engine.client import Engine
from repropack.errors import EnvironmentProblem
from repropack.freeze.lockfile import LockedPackage
from repropack.freeze.wheelhouse import ensure_packages
from repropack.runtime.layout import INDEXES, ROOT, RUNTIME, VENV, index_entry, index_lines
from repropack.runtime.records import Manifest
from repropack.verify import filesystem as rootfs
from repropack.verify import venv_contents
from repropack.verify.checks import Check
from repropack.verify.checks import make_check as _check
from repropack.verify.layers import Entry, UpperLayers, read_upper_layers


def expected_files(manifest: Manifest, indexes: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """Folder in the image -> {absolute file path: sha256} for everything the manifest pins.

    ``indexes``: the datasets' index files as read from the image, by path; only those whose sha256 is
    the manifest's are used (a tampered index is reported by :func:`layer_checks` as a changed file)."""
    layout = manifest["layout"]
    folders: dict[str, dict[str, str]] = {
        layout["code"]: {f"{layout['code']}/{p}": r["sha256"] for p, r in manifest["code"]["files"].items()},
        RUNTIME: {f"{RUNTIME}/{p}": h for p, h in manifest["runtime"]["files"].items()},
    }
    config = manifest.get("config")
    folders[layout["config"]] = {config["path"]: config["sha256"]} if config else {}
    datasets = manifest["datasets"]
    if datasets:
        folders[INDEXES] = {ds["index"]: ds["sha256"] for ds in datasets.values()}
    for dataset in datasets.values():
        index = indexes.get(dataset["index"])
        if dataset["embed"] and index is not None and hashlib.sha256(index).hexdigest() == dataset["sha256"]:
            entries = (index_entry(line) for line in index_lines(index))
            folders[dataset["mount"]] = {f"{dataset['mount']}/{path}": digest for digest, _size, path in entries}
    return folders


def _locked_wheels(manifest: Manifest) -> list[Path]:
    """The wheels whose hashes the lock pins, from the wheelhouse (fetched by those hashes when missing)."""
    dependencies = manifest["dependencies"]
    hashes = dependencies.get("hashes")
    if not isinstance(hashes, dict) or set(hashes) != set(dependencies["packages"]):
        raise _Unexplained(
            "the manifest does not record the lock's wheel hashes (built by an older repropack); "
            "rebuild the image to verify it"
        )
    packages = tuple(
        LockedPackage(
            name,
            version,
            tuple(hashes[name]),
            f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes[name]),
        )
        for name, version in sorted(dependencies["packages"].items())
    )
    try:
        found = ensure_packages(packages)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(
            "verify reads each installed file's sha256 from the hash-pinned wheels themselves, and a locked wheel "
            f"could not be had: {exc.message}",
            hint="Give this machine access to the package index (or put the wheels in the wheelhouse, "
            "~/.cache/repropack/wheels), then verify again; nothing was run.",
        ) from None
    return [path for name in sorted(found) for path in found[name]]


class _Unexplained(Exception):
    pass


Reader = Callable[[Engine, str, Manifest, Callable[[str], bool]], UpperLayers]


def layer_checks(engine: Engine, image: str, manifest: Manifest, *, read: Reader | None = None) -> list[Check]:
    """Every file, folder, link and whiteout in every layer above the recorded base, explained.

    ``/repro`` by the manifest, ``/repro/venv`` by the locked wheels (:mod:`repropack.verify.venv_contents`), and
    nothing else anywhere. Two checks come out: ``files`` (all but the environment) and ``packages``.
    ``read``: how the upper layers are read (:func:`read_upper`, unless a test compares the readers)."""
    python = str(manifest["base"].get("python") or manifest["experiment"]["python"])
    venv_problems: list[str] = []
    try:
        wheels = _locked_wheels(manifest)
    except _Unexplained as exc:
        venv_problems.append(str(exc))
        wheels = []
    upper = (read or read_upper)(
        engine, image, manifest, lambda path: path.startswith(INDEXES + "/") or path == f"{VENV}/pyvenv.cfg"
    )
    indexes = {path: data for path, data in upper.kept.items() if path.startswith(INDEXES + "/")}
    pinned = {path: digest for folder in expected_files(manifest, indexes).values() for path, digest in folder.items()}
    pinned[manifest["layout"]["manifest"]] = sha256_hex(canonical_json(manifest))
    venv = venv_contents.environment(wheels, python)
    folders = {ROOT, *(str(folder) for folder in manifest["layout"].values()), INDEXES, RUNTIME, VENV} | venv.folders
    folders |= {ds["mount"] for ds in manifest["datasets"].values() if ds["embed"]}
    folders -= {manifest["layout"]["output"], manifest["layout"]["python"], manifest["layout"]["manifest"]}
    for path in [*pinned, *venv.files, *venv.links]:
        folder = path.rpartition("/")[0]
        while folder.startswith("/repro") and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    file_problems: list[str] = []
    for path, entry in sorted(upper.entries.items()):
        in_venv = path == VENV or path.startswith(VENV + "/")
        problems = venv_problems if in_venv else file_problems
        problem = _explain(path, entry, pinned, venv, folders, upper.kept)
        if problem:
            problems.append(f"{path}: {problem}")
    file_problems += [f"{path}: missing" for path in sorted(set(pinned) - set(upper.entries))]
    venv_problems += [
        f"{path}: missing"
        for path in sorted((set(venv.files) | set(venv.links) | {f"{VENV}/pyvenv.cfg"}) - set(upper.entries))
    ]
    return [
        _check(
            "files",
            "every file, folder and link in the layers above the base is explained: /repro by the "
            "manifest, /repro/venv by the locked wheels; nothing else anywhere",
            _by_path(file_problems),
        ),
        _check(
            "packages",
            f"every file of /repro/venv matches the RECORD of the hash-pinned wheel it comes from "
            f"({len(wheels)} wheels), or is one of the few the installer and the venv create",
            _by_path(venv_problems),
        ),
    ]


def read_upper(engine: Engine, image: str, manifest: Manifest, keep: Callable[[str], bool]) -> UpperLayers:
    """What the layers above the recorded base (and the catalog's setup steps) hold: from the merged
    filesystems of the image and a local copy of its base when there is one (:mod:`repropack.verify.filesystem`),
    else from the image's own layers (:mod:`repropack.verify.layers`)."""
    base = manifest["base"]
    candidates = [str(ref) for ref in (base.get("image_id"), base.get("reference")) if ref]
    listings = rootfs.Listings(None if disabled() else cache_root() / "base-listings", engine.version())
    upper = rootfs.read_upper_files(engine, image, base_depth(manifest), keep, candidates=candidates, listings=listings)
    return upper if upper is not None else read_upper_from_layers(engine, image, manifest, keep)


def read_upper_from_layers(engine: Engine, image: str, manifest: Manifest, keep: Callable[[str], bool]) -> UpperLayers:
    """What the layers above the base hold, from the image's own layers (``docker save``)."""
    return read_upper_layers(engine, image, base_depth(manifest), keep)


def base_depth(manifest: Manifest) -> int:
    """How many of an image's first layers are its base's: the recorded base's and one per setup step."""
    return len(manifest["base"].get("layers") or []) + len(manifest["base"].get("setup") or [])


def _by_path(problems: list[str]) -> list[str]:
    """``PATH: problem`` lines in path order (a folder before what is beside it: ``a`` before ``a.b/c``)."""
    return sorted(problems, key=lambda line: (line.partition(": ")[0], line))


def _explain(
    path: str,
    entry: Entry,
    pinned: dict[str, str],
    venv: venv_contents.Expected,
    folders: set[str],
    kept: dict[str, bytes],
) -> str | None:
    """None when ``path`` is what repropack puts there; else what is wrong with it."""
    if entry.kind in ("whiteout", "opaque"):
        return "deleted (a whiteout in a layer above the base)"
    if entry.kind == "dir":
        return None if path in folders else "a folder nothing explains"
    if entry.kind == "symlink":
        target = venv.links.get(path)
        return None if target is not None and entry.target == target else f"a link (to {entry.target}) nothing explains"
    if entry.kind != "file":
        return f"a {entry.kind} nothing explains"
    expected = pinned.get(path, venv.files.get(path))
    if expected is not None:
        return None if entry.sha256 == expected else "sha256 differs"
    if path in venv.free_files:
        return None
    if path == f"{VENV}/pyvenv.cfg":
        content = kept.get(path, b"")
        good = venv.pyvenv is not None and venv.pyvenv.fullmatch(content.decode(errors="replace"))
        return None if good and hashlib.sha256(content).hexdigest() == entry.sha256 else "not what the venv writes"
    if path.startswith(VENV + "/"):
        return "not from a locked wheel"
    if path.startswith("/repro/"):
        return "not in the manifest"
    return "added outside /repro in a layer above the base"

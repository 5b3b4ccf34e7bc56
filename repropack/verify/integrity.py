"""Integrity: is an image exactly what its manifest says? Checked from outside, before anything runs.

Nothing in the image runs: its configuration comes from the engine's inspect, its files from the engine's
export of a never-started container's filesystem set beside its local base's
(:mod:`repropack.verify.filesystem`), or from the image's own layers (``docker save``,
:mod:`repropack.verify.layers`) when no local image has the base's layers; so nothing in the image can
influence the answer. Every file, folder, link and whiteout in the layers above the recorded base must be
explained: ``/repro`` by the manifest, ``/repro/venv`` by the hash-pinned wheels
(:mod:`repropack.verify.venv_contents`); each mismatch is named, e.g. ``/repro/code/train.py: sha256
differs``.

The two checks that read the image's files are remembered per image id: an image id is the sha256 of
the image's configuration, which names every layer by the digest of its content, so the same id is the
same bytes. Only passing results are kept, keyed on the image id and the manifest's digest (and this
module's check version); a damaged record is deleted, and ``REPROPACK_NO_CACHE=1`` checks afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repropack import __version__
from repropack.cache import cache_root, disabled
from repropack.canonical import canonical_json, record_seal, sha256_hex
from repropack.engine import Engine
from repropack.errors import EnvironmentProblem
from repropack.files import atomic_write
from repropack.freeze.base_image import CONFIG_FIELDS, inherited_config
from repropack.freeze.lockfile import LockedPackage
from repropack.freeze.wheelhouse import ensure_packages
from repropack.image.dockerfile import manifest_labels
from repropack.manifest.seal import digest_of
from repropack.runtime.layout import IMAGE_ENV, INDEXES, ROOT, RUNTIME, VENV, index_entry, index_lines
from repropack.verify import filesystem as rootfs
from repropack.verify import venv_contents
from repropack.verify.layers import Entry, UpperLayers, read_upper_layers

CHUNK = 1 << 20
MAX_NAMED = 20  # a report names at most this many mismatches per check, then counts the rest
CACHE_VERSION = 3  # raise when a cached check changes what it checks: older records then no longer count
CACHED_CHECKS = ("files", "packages")
CACHED_NOTE = " (cached: it held on an earlier verify of this image id)"
KEEP_S = 180 * 24 * 3600  # records not rewritten for this long are dropped
CREATED_LABEL = "org.opencontainers.image.created"
CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    problems: tuple[str, ...] = field(default_factory=tuple)
    cached: bool = False  # the result of an earlier verify of the same image id, not checked again now

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "detail": self.detail, "problems": list(self.problems), "cached": self.cached}


def _check(name: str, detail: str, problems: list[str]) -> Check:
    shown = problems[:MAX_NAMED]
    if len(problems) > MAX_NAMED:
        shown.append(f"... and {len(problems) - MAX_NAMED} more")
    return Check(name, not problems, detail, tuple(shown))


def manifest_checks(label_digest: str | None, manifest: dict[str, Any], paper: dict[str, Any] | None) -> list[Check]:
    """The embedded manifest against its own digest, the image label, and the paper's copy."""
    recomputed = digest_of(manifest)
    checks = [
        _check(
            "manifest",
            "the embedded manifest matches its own sha256",
            [] if manifest.get("sha256") == recomputed else ["/repro/manifest.json: content differs from its sha256"],
        ),
        _check(
            "label",
            "the io.repropack.manifest.digest label names the embedded manifest",
            []
            if label_digest == recomputed
            else [f"label says sha256:{label_digest}, the embedded manifest is sha256:{recomputed}"],
        ),
    ]
    if paper is not None:
        theirs = paper.get("sha256")
        checks.append(
            _check(
                "paper",
                "the paper manifest's copy is the embedded manifest",
                []
                if theirs == recomputed
                else [f"the paper cites sha256:{theirs}, the image holds sha256:{recomputed}"],
            )
        )
    return checks


def expected_files(manifest: dict[str, Any], indexes: dict[str, bytes]) -> dict[str, dict[str, str]]:
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


def image_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The configuration repropack's template gives an image built from ``manifest``: the base image's
    (as recorded at freeze time), with the Dockerfile's ENV, WORKDIR, ENTRYPOINT, CMD and LABELs over it."""
    base = dict(manifest["base"].get("config") or {})
    expected = {key: base.get(key) or None for key in CONFIG_FIELDS}
    env = dict(item.partition("=")[::2] for item in base.get("Env") or [])
    env.update(IMAGE_ENV)
    expected["Env"] = sorted(f"{key}={value}" for key, value in env.items())
    expected["Labels"] = {**(base.get("Labels") or {}), **manifest_labels(manifest)}
    expected["WorkingDir"] = manifest["layout"]["code"]
    expected["Entrypoint"] = list(manifest["runtime"]["entrypoint"])
    expected["Cmd"] = None  # CMD [] after the base's
    return expected


def config_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    """The image's configuration is exactly what the template writes for this manifest: a changed
    entrypoint, environment variable (LD_PRELOAD, PYTHONPATH, ...), user or working folder could make it
    run something else."""
    actual = inherited_config(engine.inspect(image).get("Config") or {})
    expected = image_config(manifest)
    problems: list[str] = []
    if not manifest["base"].get("config"):
        problems.append("the manifest records no base image configuration (frozen without a Docker engine)")
    if actual["Env"] is not None:
        actual["Env"] = sorted(actual["Env"])
    labels = dict(actual["Labels"] or {})
    if CREATED.fullmatch(labels.get(CREATED_LABEL, "")):
        expected["Labels"][CREATED_LABEL] = labels[CREATED_LABEL]  # the build's time: any such timestamp
    for key in CONFIG_FIELDS:
        if key in ("Env", "Labels"):
            problems += _differences(key, _pairs(actual[key]), _pairs(expected[key]))
        elif actual[key] != expected[key]:
            problems.append(f"{key} is {json.dumps(actual[key])}, repropack writes {json.dumps(expected[key])}")
    return _check(
        "config",
        "the image's configuration (entrypoint, environment, user, labels, ...) is what "
        "repropack writes for this manifest",
        problems,
    )


def _pairs(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return dict(str(item).partition("=")[::2] for item in value or [])


def _differences(field_name: str, actual: dict[str, str], expected: dict[str, str]) -> list[str]:
    problems = [
        f"{field_name} {key}={actual[key]!r}: repropack sets no such value"
        for key in sorted(set(actual) - set(expected))
    ]
    problems += [
        f"{field_name} {key} is missing (repropack sets {expected[key]!r})"
        for key in sorted(set(expected) - set(actual))
    ]
    problems += [
        f"{field_name} {key}={actual[key]!r}, repropack sets {expected[key]!r}"
        for key in sorted(set(actual) & set(expected))
        if actual[key] != expected[key]
    ]
    return problems


def base_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    recorded = list(manifest["base"].get("layers") or [])
    layers = engine.layers(image)
    if not recorded:
        problems = ["the manifest records no base layers (frozen without a Docker engine)"]
    elif layers[: len(recorded)] != recorded:
        problems = [f"the image is not built on the recorded base {manifest['base']['reference']}"]
    else:
        problems = []
    return _check("base", "the image starts with the recorded base image's layers", problems)


def _locked_wheels(manifest: dict[str, Any]) -> list[Path]:
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


Reader = Callable[[Engine, str, dict[str, Any], Callable[[str], bool]], UpperLayers]


def layer_checks(engine: Engine, image: str, manifest: dict[str, Any], *, read: Reader | None = None) -> list[Check]:
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
    folders = {ROOT, *manifest["layout"].values(), INDEXES, RUNTIME, VENV} | venv.folders
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


def read_upper(engine: Engine, image: str, manifest: dict[str, Any], keep: Callable[[str], bool]) -> UpperLayers:
    """What the layers above the recorded base (and the catalog's setup steps) hold: from the merged
    filesystems of the image and a local copy of its base when there is one (:mod:`repropack.verify.filesystem`),
    else from the image's own layers (:mod:`repropack.verify.layers`)."""
    base = manifest["base"]
    candidates = [str(ref) for ref in (base.get("image_id"), base.get("reference")) if ref]
    listings = rootfs.Listings(None if disabled() else cache_root() / "base-listings", engine.version())
    upper = rootfs.read_upper_files(engine, image, base_depth(manifest), keep, candidates=candidates, listings=listings)
    return upper if upper is not None else read_upper_from_layers(engine, image, manifest, keep)


def read_upper_from_layers(
    engine: Engine, image: str, manifest: dict[str, Any], keep: Callable[[str], bool]
) -> UpperLayers:
    """What the layers above the base hold, from the image's own layers (``docker save``)."""
    return read_upper_layers(engine, image, base_depth(manifest), keep)


def base_depth(manifest: dict[str, Any]) -> int:
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


def image_checks(
    engine: Engine, image: str, manifest: dict[str, Any], *, cache: IntegrityCache | None = None
) -> list[Check]:
    """Every check of the image against ``manifest`` (whose own digest was checked already).

    ``image`` must be an image id (``sha256:...``) for ``cache`` to be used: a tag can move."""
    digest = str(manifest.get("sha256", ""))
    remembered = cache.get(image, digest) if cache is not None else {}
    checks = [config_check(engine, image, manifest), base_check(engine, image, manifest)]
    if all(name in remembered for name in CACHED_CHECKS):
        checks += [remembered[name] for name in CACHED_CHECKS]
    else:
        checks += layer_checks(engine, image, manifest)
    if cache is not None:
        cache.put(image, digest, [c for c in checks if c.name in CACHED_CHECKS and c.passed and not c.cached])
    return checks


class IntegrityCache:
    """Passing results of the costly checks, one small JSON file per (image id, manifest digest)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def default(cls) -> IntegrityCache | None:
        return None if disabled() else cls(cache_root() / "integrity")

    def _path(self, image: str, digest: str) -> Path | None:
        image_hex = image.removeprefix("sha256:")
        if not (IMAGE_ID.fullmatch(image) and HEX64.fullmatch(digest)):
            return None  # not an image id (a tag can move): nothing is remembered for it
        return self.folder / f"{image_hex}-{digest[:16]}.json"

    def _body(self, image: str, digest: str, checks: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "repropack": __version__,
            "image_id": image,
            "manifest_sha256": digest,
            "checks": checks,
        }

    def get(self, image: str, digest: str) -> dict[str, Check]:
        """Check name -> the passing result recorded for this image id and manifest; {} when none."""
        path = self._path(image, digest)
        if path is None:
            return {}
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            record = None
        try:
            body = self._body(image, digest, record["checks"])
            if record != {**body, "sha256": record_seal(body)}:
                raise ValueError("the record is not this image's, or not intact")
            return {
                name: Check(name, True, str(entry["detail"]) + CACHED_NOTE, (), cached=True)
                for name, entry in record["checks"].items()
                if name in CACHED_CHECKS and entry["passed"] is True
            }
        except (TypeError, KeyError, ValueError):
            with contextlib.suppress(OSError):
                os.unlink(path)  # damaged, stale or foreign: not trusted, and not kept
            return {}

    def put(self, image: str, digest: str, checks: list[Check]) -> None:
        """Remember passing ``checks`` beside those already remembered; a cache that cannot be written
        is no error."""
        path = self._path(image, digest)
        passed = {c.name: {"passed": True, "detail": c.detail} for c in checks if c.passed and not c.cached}
        if path is None or not passed:
            return
        known = {
            name: {"passed": True, "detail": c.detail.removesuffix(CACHED_NOTE)}
            for name, c in self.get(image, digest).items()
        }
        body = self._body(image, digest, {**known, **passed})
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps({**body, "sha256": record_seal(body)}, sort_keys=True).encode())
            cutoff = time.time() - KEEP_S
            for old in self.folder.glob("*.json"):  # images long gone: their records need not stay
                if old.stat().st_mtime < cutoff:
                    old.unlink()


IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
HEX64 = re.compile(r"[0-9a-f]{64}")

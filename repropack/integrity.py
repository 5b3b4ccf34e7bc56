"""Integrity: is an image exactly what its manifest says? Checked from outside, before anything runs.

Files are read through the engine's archive API from a container that is created but never started,
so nothing in the image can influence the answer. Each check names every mismatch it finds, e.g.
``/repro/code/train.py: sha256 differs``.

The package check reads the top of the environment's site-packages and its dist-info folders, not the
packages' own folders (see ``hidden_folders``). The two checks that read the image's files (every pinned
file, and the installed packages) are remembered per image id: an image id is the sha256 of the image's
configuration, which names every layer by the digest of its content, so the same id is the same bytes.
Only passing results are kept, keyed on the image id and the manifest's digest (and this module's check
version); a damaged record is deleted, and ``REPROPACK_NO_CACHE=1`` checks everything afresh.
"""

from __future__ import annotations

import contextlib
import email.parser
import hashlib
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from repropack import __version__
from repropack.cachedir import cache_root, disabled
from repropack.canonical import atomic_write
from repropack.engine import Engine, ImageFiles
from repropack.errors import EnvironmentProblem
from repropack.freeze.data import INDEX_ROOT
from repropack.freeze.lock import normalize
from repropack.hashing import index_entry, index_lines
from repropack.manifest import digest_of

CHUNK = 1 << 20
MAX_NAMED = 20  # a report names at most this many mismatches per check, then counts the rest
CACHE_VERSION = 2  # raise when a cached check changes what it checks: older records then no longer count
CACHED_CHECKS = ("files", "packages")
CACHED_NOTE = " (cached: it held on an earlier verify of this image id)"
KEEP_S = 180 * 24 * 3600  # records not rewritten for this long are dropped


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
        _check("manifest", "the embedded manifest matches its own sha256",
               [] if manifest.get("sha256") == recomputed else
               ["/repro/manifest.json: content differs from its sha256"]),
        _check("label", "the io.repropack.manifest.digest label names the embedded manifest",
               [] if label_digest == recomputed else
               [f"label says sha256:{label_digest}, the embedded manifest is sha256:{recomputed}"]),
    ]
    if paper is not None:
        theirs = paper.get("sha256")
        checks.append(_check("paper", "the paper manifest's copy is the embedded manifest",
                             [] if theirs == recomputed else
                             [f"the paper cites sha256:{theirs}, the image holds sha256:{recomputed}"]))
    return checks


def _sha256(content: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: content.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def expected_files(manifest: dict[str, Any], indexes: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """Folder in the image -> {absolute file path: sha256} for everything the manifest pins.

    ``indexes``: the datasets' index files as read from the image, by path; only those whose sha256 is
    the manifest's are used (a tampered index is reported by :func:`file_check` as a changed file)."""
    layout = manifest["layout"]
    folders: dict[str, dict[str, str]] = {
        layout["code"]: {f"{layout['code']}/{p}": r["sha256"] for p, r in manifest["code"]["files"].items()},
        "/repro/runtime": {f"/repro/runtime/{p}": h for p, h in manifest["runtime"]["files"].items()},
    }
    config = manifest.get("config")
    folders[layout["config"]] = {config["path"]: config["sha256"]} if config else {}
    datasets = manifest["datasets"]
    if datasets:
        folders[INDEX_ROOT] = {ds["index"]: ds["sha256"] for ds in datasets.values()}
    for dataset in datasets.values():
        index = indexes.get(dataset["index"])
        if dataset["embed"] and index is not None and hashlib.sha256(index).hexdigest() == dataset["sha256"]:
            entries = (index_entry(line) for line in index_lines(index))
            folders[dataset["mount"]] = {f"{dataset['mount']}/{path}": digest for digest, _size, path in entries}
    return folders


def _read_indexes(files: ImageFiles) -> dict[str, bytes]:
    return {path: content.read() for path, _member, content in files.walk(INDEX_ROOT) if content is not None}


def file_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    problems: list[str] = []
    with engine.files(image) as files:
        for folder, expected in expected_files(manifest, _read_indexes(files)).items():
            seen: set[str] = set()
            for path, member, content in files.walk(folder):
                if member.isdir():
                    continue
                if content is None:
                    problems.append(f"{path}: not a regular file")
                    continue
                seen.add(path)
                if path not in expected:
                    problems.append(f"{path}: not in the manifest")
                elif _sha256(content) != expected[path]:
                    problems.append(f"{path}: sha256 differs")
            problems += [f"{path}: missing" for path in sorted(set(expected) - seen)]
    return _check("files", "every file under /repro/code, /repro/config, /repro/runtime, the datasets' indexes "
                  "and the embedded data matches its sha256", sorted(problems))


def hidden_folders(manifest: dict[str, Any]) -> tuple[str, ...]:
    """Folders the package check need not read: each locked distribution's import package by its usual
    name, and auditwheel's ``NAME.libs`` beside it, at the top of site-packages.

    Only the names at the top of site-packages and the dist-info folders there decide the check, so leaving
    any other folder unread cannot change its answer, only its cost: torch's own folder is 750 of the 910 MB
    of a torch environment, and the engine can only list a folder by sending all it holds."""
    python = manifest["base"].get("python")
    if not python:
        return ()
    site = f"{_venv(manifest)}/lib/python{python}/site-packages"
    names = {normalize(name).replace("-", "_") for name in manifest["dependencies"]["packages"]}
    return tuple(sorted(f"{site}/{name}{suffix}" for name in names for suffix in ("", ".libs")))


@dataclass(frozen=True)
class Installed:
    """The distributions at the top of an environment's site-packages, as pip records them."""

    versions: dict[str, list[str]]  # normalized name -> every version a dist-info says (one, unless tampered)
    without_metadata: list[str]  # dist-info entries with no METADATA file: nothing pip would leave


def _is_top_level(parts: list[str], depth: int) -> bool:
    """``parts[-depth]`` is an entry of a site-packages folder: vendored dist-info (setuptools/_vendor/...)
    belongs to its package, not to the environment."""
    return len(parts) > depth and parts[-depth - 1] == "site-packages"


def _read_environment(files: ImageFiles, lib: str, hidden: tuple[str, ...]) -> tuple[Installed, set[str]]:
    """What ``lib`` holds, and which of ``hidden`` read as folders at their own paths."""
    versions: dict[str, list[str]] = {}
    infos: set[str] = set()
    described: set[str] = set()
    covered: set[str] = set()
    parser = email.parser.BytesParser()
    for path, member, content in files.walk(lib):
        parts = path.split("/")
        if member.isdir() and path in hidden:
            covered.add(path)
        if _is_top_level(parts, 1) and parts[-1].endswith(".dist-info"):
            infos.add(path)
        elif (content is not None and parts[-1] == "METADATA" and parts[-2].endswith(".dist-info")
              and _is_top_level(parts, 2)):
            headers = parser.parsebytes(content.read(), headersonly=True)
            versions.setdefault(normalize(str(headers["Name"])), []).append(str(headers["Version"]))
            described.add(path.rpartition("/")[0])
    return Installed(versions, sorted(infos - described)), covered


def installed_packages(engine: Engine, image: str, venv: str, hidden: tuple[str, ...] = ()) -> Installed:
    """Every distribution installed in the image's environment (from its dist-info folders).

    ``hidden`` folders are not read (see ``hidden_folders``). The engine resolves them inside the image, so
    one that is a link could cover something else, a dist-info folder say: unless every one read as a
    folder at its own path, the environment is read again in full."""
    if hidden:
        with contextlib.suppress(EnvironmentProblem):  # e.g. a hidden path is a file: it cannot be covered
            with engine.files(image, hidden) as files:
                installed, covered = _read_environment(files, f"{venv}/lib", hidden)
            if covered == set(hidden):
                return installed
    with engine.files(image) as files:
        return _read_environment(files, f"{venv}/lib", ())[0]


def package_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    locked = {normalize(name): version for name, version in manifest["dependencies"]["packages"].items()}
    environment = installed_packages(engine, image, _venv(manifest), hidden_folders(manifest))
    installed = {name: found[0] for name, found in environment.versions.items()}
    problems = [
        f"{name}: installed but not in the lockfile ({installed[name]})"
        for name in sorted(set(installed) - set(locked))
    ]
    problems += [f"{name}: in the lockfile but not installed" for name in sorted(set(locked) - set(installed))]
    problems += [
        f"{name}: installed {installed[name]}, locked {locked[name]}"
        for name in sorted(set(locked) & set(installed)) if installed[name] != locked[name]
    ]
    problems += [
        f"{name}: installed more than once ({', '.join(sorted(found))})"
        for name, found in sorted(environment.versions.items()) if len(found) > 1
    ]
    problems += [f"{path}: a dist-info folder without METADATA" for path in environment.without_metadata]
    return _check("packages", "the installed Python packages are exactly the lockfile's", problems)


def _venv(manifest: dict[str, Any]) -> str:
    return str(manifest["layout"]["python"]).removesuffix("/bin/python")


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


def config_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    """The image's entrypoint is repropack's runtime: a changed entrypoint could report anything."""
    config = engine.inspect(image).get("Config") or {}
    expected = manifest["runtime"]["entrypoint"]
    problems = [] if config.get("Entrypoint") == expected else [
        f"entrypoint is {config.get('Entrypoint')}, the manifest says {expected}"
    ]
    return _check("entrypoint", "the image runs repropack's runtime", problems)


def image_checks(
    engine: Engine, image: str, manifest: dict[str, Any], *, cache: IntegrityCache | None = None
) -> list[Check]:
    """Every check of the image against ``manifest`` (whose own digest was checked already).

    ``image`` must be an image id (``sha256:...``) for ``cache`` to be used: a tag can move."""
    digest = str(manifest.get("sha256", ""))
    remembered = cache.get(image, digest) if cache is not None else {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="repropack-packages") as pool:
        # the package check reads beside the others (its own container, its own stream)
        packages = remembered.get("packages")
        pending = None if packages is not None else pool.submit(package_check, engine, image, manifest)
        checks = [
            config_check(engine, image, manifest),
            base_check(engine, image, manifest),
            remembered.get("files") or file_check(engine, image, manifest),
        ]
        checks.append(pending.result() if pending is not None else remembered["packages"])
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
        return {"version": CACHE_VERSION, "repropack": __version__, "image_id": image, "manifest_sha256": digest,
                "checks": checks}

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
            if record != {**body, "sha256": _digest(body)}:
                raise ValueError("the record is not this image's, or not intact")
            return {name: Check(name, True, str(entry["detail"]) + CACHED_NOTE, (), cached=True)
                    for name, entry in record["checks"].items() if name in CACHED_CHECKS and entry["passed"] is True}
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
        known = {name: {"passed": True, "detail": c.detail.removesuffix(CACHED_NOTE)}
                 for name, c in self.get(image, digest).items()}
        body = self._body(image, digest, {**known, **passed})
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps({**body, "sha256": _digest(body)}, sort_keys=True).encode())
            cutoff = time.time() - KEEP_S
            for old in self.folder.glob("*.json"):  # images long gone: their records need not stay
                if old.stat().st_mtime < cutoff:
                    old.unlink()


IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
HEX64 = re.compile(r"[0-9a-f]{64}")


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

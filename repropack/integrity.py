"""Integrity: is an image exactly what its manifest says? Checked from outside, before anything runs.

Files are read through the engine's archive API from a container that is created but never started,
so nothing in the image can influence the answer. Each check names every mismatch it finds, e.g.
``/repro/code/train.py: sha256 differs``.
"""

from __future__ import annotations

import email.parser
import hashlib
from dataclasses import dataclass, field
from typing import IO, Any

from repropack.engine import Engine
from repropack.freeze.lock import normalize
from repropack.manifest import digest_of

CHUNK = 1 << 20
MAX_NAMED = 20  # a report names at most this many mismatches per check, then counts the rest


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    problems: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "detail": self.detail, "problems": list(self.problems)}


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


def expected_files(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Folder in the image -> {absolute file path: sha256} for everything the manifest pins."""
    layout = manifest["layout"]
    folders: dict[str, dict[str, str]] = {
        layout["code"]: {f"{layout['code']}/{p}": r["sha256"] for p, r in manifest["code"]["files"].items()},
        "/repro/runtime": {f"/repro/runtime/{p}": h for p, h in manifest["runtime"]["files"].items()},
    }
    config = manifest.get("config")
    folders[layout["config"]] = {config["path"]: config["sha256"]} if config else {}
    for dataset in manifest["datasets"].values():
        if dataset["embed"]:
            folders[dataset["mount"]] = {f"{dataset['mount']}/{p}": r["sha256"] for p, r in dataset["files"].items()}
    return folders


def file_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    problems: list[str] = []
    with engine.files(image) as files:
        for folder, expected in expected_files(manifest).items():
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
    return _check("files", "every file under /repro/code, /repro/config, /repro/runtime and the embedded data "
                  "matches its sha256", sorted(problems))


def installed_packages(engine: Engine, image: str, venv: str) -> dict[str, str]:
    """Name -> version of every distribution installed in the image's environment (from dist-info)."""
    found: dict[str, str] = {}
    parser = email.parser.BytesParser()
    with engine.files(image) as files:
        for path, _member, content in files.walk(f"{venv}/lib"):
            parts = path.split("/")
            # only top-level distributions: packages vendor others' dist-info (setuptools/_vendor/...)
            if content is not None and path.endswith(".dist-info/METADATA") and parts[-3] == "site-packages":
                headers = parser.parsebytes(content.read(), headersonly=True)
                found[normalize(str(headers["Name"]))] = str(headers["Version"])
    return found


def package_check(engine: Engine, image: str, manifest: dict[str, Any]) -> Check:
    locked = {normalize(name): version for name, version in manifest["dependencies"]["packages"].items()}
    venv = manifest["layout"]["python"].removesuffix("/bin/python")
    installed = installed_packages(engine, image, venv)
    problems = [
        f"{name}: installed but not in the lockfile ({installed[name]})"
        for name in sorted(set(installed) - set(locked))
    ]
    problems += [f"{name}: in the lockfile but not installed" for name in sorted(set(locked) - set(installed))]
    problems += [
        f"{name}: installed {installed[name]}, locked {locked[name]}"
        for name in sorted(set(locked) & set(installed)) if installed[name] != locked[name]
    ]
    return _check("packages", "the installed Python packages are exactly the lockfile's", problems)


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


def image_checks(engine: Engine, image: str, manifest: dict[str, Any]) -> list[Check]:
    return [
        config_check(engine, image, manifest),
        base_check(engine, image, manifest),
        file_check(engine, image, manifest),
        package_check(engine, image, manifest),
    ]

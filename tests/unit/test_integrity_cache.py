"""verify remembers passing file and package checks per image id (and manifest), says so, and never
trusts a failing, foreign or damaged record."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from repropack.integrity import CACHED_NOTE, IntegrityCache, image_checks

IMAGE = "sha256:" + "1" * 64
OTHER_IMAGE = "sha256:" + "2" * 64
ENTRYPOINT = ["/usr/bin/python3", "/repro/runtime/entry.py"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_manifest(digest: str = "a" * 64) -> dict[str, Any]:
    return {
        "sha256": digest,
        "layout": {"code": "/repro/code", "config": "/repro/config", "python": "/repro/venv/bin/python"},
        "code": {"files": {"train.py": {"sha256": sha(b"print(1)\n")}}},
        "runtime": {"files": {"entry.py": sha(b"runtime")}, "entrypoint": ENTRYPOINT},
        "config": None,
        "datasets": {},
        "dependencies": {"packages": {"numpy": "2.0"}},
        "base": {"layers": ["sha256:base"], "reference": "debian"},
    }


class FakeFiles:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.content = files

    def walk(self, folder: str) -> Iterator[tuple[str, tarfile.TarInfo, IO[bytes] | None]]:
        for path, data in sorted(self.content.items()):
            if path.startswith(folder + "/"):
                member = tarfile.TarInfo(path.rsplit("/", 1)[1])
                member.size = len(data)
                yield path, member, io.BytesIO(data)


class FakeEngine:
    """The engine calls integrity makes, with a count of how often the image's files were read."""

    def __init__(self) -> None:
        self.content = {
            "/repro/code/train.py": b"print(1)\n",
            "/repro/runtime/entry.py": b"runtime",
            "/repro/venv/lib/python3.11/site-packages/numpy-2.0.dist-info/METADATA": b"Name: numpy\nVersion: 2.0\n\n",
        }
        self.reads = 0

    def inspect(self, image: str) -> dict[str, Any]:
        return {"Config": {"Entrypoint": ENTRYPOINT}, "RootFS": {"Layers": ["sha256:base", "sha256:top"]}}

    def layers(self, image: str) -> list[str]:
        return list(self.inspect(image)["RootFS"]["Layers"])

    @contextlib.contextmanager
    def files(self, image: str) -> Iterator[FakeFiles]:
        self.reads += 1
        yield FakeFiles(self.content)


@pytest.fixture
def cache(tmp_path: Path) -> IntegrityCache:
    return IntegrityCache(tmp_path / "integrity")


def run(engine: FakeEngine, cache: IntegrityCache | None, image: str = IMAGE,
        manifest: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    checks = image_checks(engine, image, manifest or make_manifest(), cache=cache)  # type: ignore[arg-type]
    return {check.name: check.as_dict() for check in checks}


def test_a_second_verify_of_the_same_image_reads_nothing_and_says_so(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    first = run(engine, cache)
    assert engine.reads == 2  # files, then packages
    assert all(c["passed"] and not c["cached"] for c in first.values())
    second = run(engine, cache)
    assert engine.reads == 2
    assert all(c["passed"] for c in second.values())
    assert second["files"]["cached"] and second["packages"]["cached"]
    assert second["files"]["detail"].endswith(CACHED_NOTE)
    assert not second["entrypoint"]["cached"] and not second["base"]["cached"]  # cheap: always checked


def test_failing_checks_are_not_remembered(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    engine.content["/repro/code/train.py"] = b"tampered\n"
    assert not run(engine, cache)["files"]["passed"]
    again = run(engine, cache)
    assert engine.reads == 3  # the files again; the packages came from the cache
    assert not again["files"]["passed"] and not again["files"]["cached"]
    assert again["packages"]["cached"]  # that one passed, and was remembered


def test_results_belong_to_one_image_id_and_one_manifest(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    run(engine, cache)
    assert not run(engine, cache, image=OTHER_IMAGE)["files"]["cached"]
    assert not run(engine, cache, manifest=make_manifest("b" * 64))["files"]["cached"]
    assert engine.reads == 6


def test_a_tag_is_never_cached(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    run(engine, cache, image="lab/exp:latest")
    run(engine, cache, image="lab/exp:latest")
    assert engine.reads == 4
    assert not list(cache.folder.glob("*")) if cache.folder.exists() else True


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: "garbage{" + text,
        lambda text: text.replace('"passed": true', '"passed": false'),
        lambda text: text.replace("every file", "every other file"),  # the record's digest no longer matches
        lambda text: json.dumps({**json.loads(text), "image_id": OTHER_IMAGE}),
        lambda text: "[]",
    ],
    ids=["garbage", "flipped", "edited", "foreign", "wrong-shape"],
)
def test_a_damaged_record_is_ignored_and_removed(cache: IntegrityCache, damage: Any) -> None:
    engine = FakeEngine()
    run(engine, cache)
    (record,) = cache.folder.glob("*.json")
    text = record.read_text()
    damaged = damage(text)
    assert damaged != text
    record.write_text(damaged)
    again = run(engine, cache)
    assert engine.reads == 4
    assert not again["files"]["cached"] and again["files"]["passed"]
    assert record.read_text() != damaged  # replaced by the fresh, passing checks
    assert run(engine, cache)["files"]["cached"]


def test_no_cache_means_every_check_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REPROPACK_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("REPROPACK_NO_CACHE", "1")
    assert IntegrityCache.default() is None
    monkeypatch.delenv("REPROPACK_NO_CACHE")
    default = IntegrityCache.default()
    assert default is not None and default.folder == tmp_path / "integrity"
    engine = FakeEngine()
    run(engine, None)
    run(engine, None)
    assert engine.reads == 4


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    engine = FakeEngine()
    checks = run(engine, IntegrityCache(tmp_path / "file" / "integrity"))
    assert all(c["passed"] for c in checks.values())


def test_records_of_long_gone_images_are_dropped(cache: IntegrityCache) -> None:
    import os

    engine = FakeEngine()
    run(engine, cache, image=OTHER_IMAGE)
    (old,) = cache.folder.glob("*.json")
    os.utime(old, (0, 0))
    run(engine, cache)
    assert not old.exists() and len(list(cache.folder.glob("*.json"))) == 1

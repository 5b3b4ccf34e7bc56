"""verify remembers passing file and package checks per image id (and manifest), says so, and never
trusts a failing, foreign or damaged record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from image_fakes import IMAGE, OTHER_IMAGE, FakeEngine, make_manifest

from repropack.verify.integrity import image_checks
from repropack.verify.integrity_cache import CACHED_NOTE, IntegrityCache


@pytest.fixture
def cache(tmp_path: Path) -> IntegrityCache:
    return IntegrityCache(tmp_path / "integrity")


def run(
    engine: FakeEngine, cache: IntegrityCache | None, image: str = IMAGE, manifest: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    if manifest is not None:
        engine.manifest = manifest
    checks = image_checks(engine, image, engine.manifest, cache=cache)  # type: ignore[arg-type]
    return {check.name: check.as_dict() for check in checks}


def test_a_second_verify_of_the_same_image_reads_nothing_and_says_so(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    first = run(engine, cache)
    assert engine.reads == 1  # the layers are read once, for the files and the packages
    assert all(c["passed"] and not c["cached"] for c in first.values()), first
    second = run(engine, cache)
    assert engine.reads == 1
    assert all(c["passed"] for c in second.values())
    assert second["files"]["cached"] and second["packages"]["cached"]
    assert second["files"]["detail"].endswith(CACHED_NOTE)
    assert not second["config"]["cached"] and not second["base"]["cached"]  # cheap: always checked


def test_failing_checks_are_not_remembered(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    engine.content["/repro/code/train.py"] = b"tampered\n"
    assert not run(engine, cache)["files"]["passed"]
    again = run(engine, cache)
    assert engine.reads == 2  # read again: one of the two checks it gives was not remembered
    assert not again["files"]["passed"] and not again["files"]["cached"]
    assert again["packages"]["passed"] and not again["packages"]["cached"]
    (record,) = cache.folder.glob("*.json")
    assert set(json.loads(record.read_text())["checks"]) == {"packages"}  # only the passing one is kept


def test_results_belong_to_one_image_id_and_one_manifest(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    run(engine, cache)
    assert not run(engine, cache, image=OTHER_IMAGE)["files"]["cached"]
    assert not run(engine, cache, manifest=make_manifest("b" * 64))["files"]["cached"]
    assert engine.reads == 3


def test_a_tag_is_never_cached(cache: IntegrityCache) -> None:
    engine = FakeEngine()
    run(engine, cache, image="lab/exp:latest")
    run(engine, cache, image="lab/exp:latest")
    assert engine.reads == 2
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
    assert engine.reads == 2
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
    assert engine.reads == 2


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

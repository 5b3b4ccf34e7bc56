"""`repropack base build`: an existing base is kept unless --force; debootstrap's lines go to the log,
not the screen (--verbose shows them), and a failed bootstrap names its last lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from repropack.bases import build as base_build
from repropack.errors import EnvironmentProblem


class FakeEngine:
    def __init__(self, existing: str | None) -> None:
        self.existing = existing
        self.imported: list[str] = []

    def image_id(self, reference: str) -> str | None:
        return self.existing

    def import_rootfs(self, tarball: Path, reference: str, changes: list[str]) -> str:
        self.imported.append(reference)
        return "sha256:" + "b" * 64


def bootstrap(lines: int, fail: bool = False) -> Any:
    def make(recipe: str, tarball: Path, on_output: Any) -> None:
        for n in range(lines):
            on_output(f"I: Retrieving package {n}")
        if fail:
            raise EnvironmentProblem("debootstrap failed (exit status 1).")
        tarball.write_bytes(b"x" * 2**20)

    return make


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine(None)
    monkeypatch.setattr(base_build.Engine, "connect", classmethod(lambda cls: fake))
    return fake


def test_an_existing_base_is_kept_unless_forced(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.existing = "sha256:" + "a" * 64
    monkeypatch.setattr(base_build, "make_rootfs_tar", bootstrap(3))
    kept = base_build.build_base("debian-bookworm", on_line=lambda line: None)
    assert (kept.built, kept.image_id, engine.imported) == (False, engine.existing, [])
    made = base_build.build_base("debian-bookworm", on_line=lambda line: None, force=True)
    assert made.built and engine.imported == ["repropack/base:debian-bookworm"]


def test_debootstraps_lines_go_to_the_log_not_the_screen(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(base_build, "make_rootfs_tar", bootstrap(570))
    shown: list[str] = []
    base_build.build_base("debian-bookworm", on_line=shown.append, log=tmp_path / "base.log")
    assert len(shown) == 2 and shown[0].startswith("bootstrapping debian-bookworm") and "importing 1 MiB" in shown[1]
    assert len((tmp_path / "base.log").read_text().splitlines()) == 570
    loud: list[str] = []
    base_build.build_base("debian-bookworm", on_line=loud.append, force=True, verbose=True)
    assert len(loud) == 572


def test_a_failed_bootstrap_names_its_last_lines(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_build, "make_rootfs_tar", bootstrap(10, fail=True))
    with pytest.raises(EnvironmentProblem, match=r"debootstrap's last lines: .*Retrieving package 9"):
        base_build.build_base("debian-bookworm", on_line=lambda line: None)

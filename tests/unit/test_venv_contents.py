"""The expected /repro/venv comes from the hash-pinned wheels alone: RECORD hashes, pip's own files, the
console scripts pip writes, the interpreter links; a wheel that cannot be had stops verify (exit 3)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest
from image_fakes import IMAGE, FakeEngine

from repropack.errors import EnvironmentProblem
from repropack.verify import venv_contents
from repropack.verify.integrity import image_checks

SITE = "/repro/venv/lib/python3.11/site-packages"


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def make_wheel(folder: Path) -> tuple[Path, dict[str, bytes]]:
    """tinypkg 1.0: a module, a console script entry point and a .data/scripts file."""
    files = {
        "tinypkg/__init__.py": b"def main():\n    print('hi')\n",
        "tinypkg-1.0.data/scripts/tiny-tool": b"#!python\nprint('tool')\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/entry_points.txt": b"[console_scripts]\ntiny = tinypkg:main\n",
    }
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in files.items())
    record += "tinypkg-1.0.dist-info/RECORD,,\n"
    wheel = folder / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("tinypkg-1.0.dist-info/RECORD", record)
    return wheel, files


def test_every_installed_file_comes_from_the_wheels_record(tmp_path: Path) -> None:
    wheel, files = make_wheel(tmp_path)
    expected = venv_contents.environment([wheel], "3.11")
    assert expected.files[f"{SITE}/tinypkg/__init__.py"] == hashlib.sha256(files["tinypkg/__init__.py"]).hexdigest()
    tool = b"#!/repro/venv/bin/python\nprint('tool')\n"  # pip rewrites the #!python line
    assert expected.files["/repro/venv/bin/tiny-tool"] == hashlib.sha256(tool).hexdigest()
    script = venv_contents.script_text("tinypkg", "main")
    assert expected.files["/repro/venv/bin/tiny"] == hashlib.sha256(script).hexdigest()
    assert script.startswith(b"#!/repro/venv/bin/python\n") and b"from tinypkg import main\n" in script
    assert expected.files[f"{SITE}/tinypkg-1.0.dist-info/INSTALLER"] == hashlib.sha256(b"pip\n").hexdigest()
    assert expected.free_files == {f"{SITE}/tinypkg-1.0.dist-info/RECORD"}
    assert expected.links["/repro/venv/bin/python3"] == "/usr/bin/python3"
    assert f"{SITE}/tinypkg" in expected.folders
    assert not any(path.endswith(".pyc") for path in expected.files)  # installed with --no-compile


def wheel_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_house: bool) -> tuple[FakeEngine, bytes]:
    """A fake image whose venv holds tinypkg, installed as pip does; the wheel in the wheelhouse or not."""
    monkeypatch.setenv("REPROPACK_CACHE_DIR", str(tmp_path / "cache"))
    wheel, files = make_wheel(tmp_path)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if in_house:
        house = tmp_path / "cache" / "wheels"
        (house / "ab").mkdir(parents=True)
        (house / "ab" / wheel.name).write_bytes(wheel.read_bytes())
        (house / "index.json").write_text(f'{{"{digest}": "ab/{wheel.name}"}}')
    engine = FakeEngine()
    engine.manifest["dependencies"] = {"packages": {"tinypkg": "1.0"}, "hashes": {"tinypkg": [digest]}}
    engine.content.update(
        {
            f"{SITE}/tinypkg/__init__.py": files["tinypkg/__init__.py"],
            f"{SITE}/tinypkg-1.0.dist-info/METADATA": files["tinypkg-1.0.dist-info/METADATA"],
            f"{SITE}/tinypkg-1.0.dist-info/entry_points.txt": files["tinypkg-1.0.dist-info/entry_points.txt"],
            f"{SITE}/tinypkg-1.0.dist-info/RECORD": b"anything\n",
            f"{SITE}/tinypkg-1.0.dist-info/INSTALLER": b"pip\n",
            f"{SITE}/tinypkg-1.0.dist-info/REQUESTED": b"",
            "/repro/venv/bin/tiny": venv_contents.script_text("tinypkg", "main"),
            "/repro/venv/bin/tiny-tool": b"#!/repro/venv/bin/python\nprint('tool')\n",
        }
    )
    engine.config = FakeEngine(engine.manifest).config
    return engine, files["tinypkg/__init__.py"]


def packages_problems(engine: FakeEngine) -> list[str]:
    checks = {c.name: c for c in image_checks(engine, IMAGE, engine.manifest, cache=None)}  # type: ignore[arg-type]
    assert checks["files"].passed, checks["files"].problems
    return list(checks["packages"].problems)


def test_an_installed_package_as_pip_leaves_it_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = wheel_engine(tmp_path, monkeypatch, in_house=True)
    assert packages_problems(engine) == []
    del engine.content["/repro/venv/bin/tiny"]
    assert packages_problems(engine) == ["/repro/venv/bin/tiny: missing"]


@pytest.mark.parametrize(
    ("path", "content", "named"),
    [
        (f"{SITE}/tinypkg/__init__.py", b"import os\n", "sha256 differs"),
        ("/repro/venv/bin/tiny", b"#!/bin/sh\n", "sha256 differs"),
        (f"{SITE}/tinypkg/__pycache__/__init__.cpython-311.pyc", b"\x00", "not from a locked wheel"),
    ],
    ids=["module edited", "console script edited", "unchecked pyc"],
)
def test_a_changed_package_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, content: bytes, named: str
) -> None:
    engine, _ = wheel_engine(tmp_path, monkeypatch, in_house=True)
    engine.content[path] = content
    assert f"{path}: {named}" in packages_problems(engine)


def test_a_rewritten_record_does_not_explain_an_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = wheel_engine(tmp_path, monkeypatch, in_house=True)
    edited = b"import os\n"
    engine.content[f"{SITE}/tinypkg/__init__.py"] = edited
    engine.content[f"{SITE}/tinypkg-1.0.dist-info/RECORD"] = f"tinypkg/__init__.py,{record_hash(edited)},10\n".encode()
    assert f"{SITE}/tinypkg/__init__.py: sha256 differs" in packages_problems(engine)


def test_a_wheel_that_cannot_be_had_stops_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = wheel_engine(tmp_path, monkeypatch, in_house=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no package index: the pinned wheel cannot be fetched
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(EnvironmentProblem) as raised:
        image_checks(engine, IMAGE, engine.manifest, cache=None)  # type: ignore[arg-type]
    assert raised.value.exit_code == 3
    assert "a locked wheel could not be had" in raised.value.message

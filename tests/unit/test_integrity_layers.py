"""The file, package and configuration checks name each way an image can differ from its manifest.

A fake image (``image_fakes``) stands in for the engine: each case adds a layer, or changes the
configuration, the way a tamperer would; the real images are in tests/integration/test_tamper_suite.py."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import Any

import pytest
from image_fakes import IMAGE, FakeEngine, layer_tar

from repropack.verify import layers
from repropack.verify.integrity import image_checks

SITE = "/repro/venv/lib/python3.11/site-packages"


@pytest.fixture(params=[True, False], ids=["base-local", "base-absent"])
def local_base(request: pytest.FixtureRequest) -> bool:
    """Each check is tried both ways integrity reads an image: the merged filesystems of the image and its
    local base, and (no local base) the image's own layers."""
    return bool(request.param)


def problems(engine: FakeEngine) -> dict[str, list[str]]:
    checks = image_checks(engine, IMAGE, engine.manifest, cache=None)  # type: ignore[arg-type]
    return {check.name: list(check.problems) for check in checks}


def test_the_untouched_fake_passes() -> None:
    assert all(not found for found in problems(FakeEngine()).values())


def add_layer(files: dict[str, bytes | str]) -> Callable[[FakeEngine], None]:
    return lambda engine: engine.extra_layers.append(files)


def set_config(key: str, value: Any) -> Callable[[FakeEngine], None]:
    return lambda engine: engine.config.__setitem__(key, value)


def add_env(item: str) -> Callable[[FakeEngine], None]:
    return lambda engine: engine.config.__setitem__("Env", [*engine.config["Env"], item])


CASES: list[tuple[str, Callable[[FakeEngine], None], str, str]] = [
    (
        "code edited",
        add_layer({"/repro/code/train.py": b"print(2)\n"}),
        "files",
        "/repro/code/train.py: sha256 differs",
    ),
    ("code added", add_layer({"/repro/code/evil.py": b"x"}), "files", "/repro/code/evil.py: not in the manifest"),
    (
        "runtime edited",
        add_layer({"/repro/runtime/entry.py": b"other"}),
        "files",
        "/repro/runtime/entry.py: sha256 differs",
    ),
    ("manifest rewritten", add_layer({"/repro/manifest.json": b"{}"}), "files", "/repro/manifest.json: sha256 differs"),
    (
        "a .pth file",
        add_layer({f"{SITE}/evil.pth": b"import os"}),
        "packages",
        f"{SITE}/evil.pth: not from a locked wheel",
    ),
    (
        "sitecustomize",
        add_layer({f"{SITE}/sitecustomize.py": b"import os"}),
        "packages",
        f"{SITE}/sitecustomize.py: not from a locked wheel",
    ),
    (
        "stdlib edited",
        add_layer({"/usr/lib/python3.11/os.py": b"x"}),
        "files",
        "/usr/lib/python3.11/os.py: added outside /repro in a layer above the base",
    ),
    (
        "interpreter swapped",
        add_layer({"/usr/bin/python3": b"#!/bin/sh\n"}),
        "files",
        "/usr/bin/python3: added outside /repro in a layer above the base",
    ),
    (
        "ld.so.preload",
        add_layer({"/etc/ld.so.preload": b"/tmp/x.so"}),
        "files",
        "/etc/ld.so.preload: added outside /repro",
    ),
    (
        "venv link retargeted",
        add_layer({"/repro/venv/bin/python3": "/tmp/python"}),
        "packages",
        "/repro/venv/bin/python3: a link (to /tmp/python) nothing explains",
    ),
    (
        "pyvenv.cfg edited",
        add_layer({"/repro/venv/pyvenv.cfg": b"home = /tmp\n"}),
        "packages",
        "/repro/venv/pyvenv.cfg: not what the venv writes",
    ),
    (
        "a whiteout of a package file",
        add_layer({"/repro/venv/bin/.wh.python": b""}),
        "packages",
        "/repro/venv/bin/python: deleted|/repro/venv/bin/python: missing",
    ),
    ("a whiteout of a base file", add_layer({"/usr/bin/.wh.python3": b""}), "files", "/usr/bin/python3: deleted"),
    (
        "an opaque folder",
        add_layer({"/usr/bin/.wh..wh..opq": b""}),
        "files",
        "/usr/bin/.wh..wh..opq: deleted|/usr/bin/python3: deleted",
    ),
    ("PYTHONPATH", add_env("PYTHONPATH=/tmp"), "config", "Env PYTHONPATH='/tmp': repropack sets no such value"),
    ("LD_PRELOAD", add_env("LD_PRELOAD=/tmp/x.so"), "config", "Env LD_PRELOAD="),
    ("PATH", add_env("PATH=/tmp:/usr/bin"), "config", "Env PATH='/tmp:/usr/bin', repropack sets"),
    ("the manifest path", add_env("REPRO_MANIFEST=/tmp/m.json"), "config", "Env REPRO_MANIFEST="),
    ("User", set_config("User", "0"), "config", 'User is "0", repropack writes null'),
    ("WorkingDir", set_config("WorkingDir", "/tmp"), "config", 'WorkingDir is "/tmp"'),
    ("Entrypoint", set_config("Entrypoint", ["/bin/sh"]), "config", 'Entrypoint is ["/bin/sh"]'),
    ("Cmd", set_config("Cmd", ["evaluate"]), "config", 'Cmd is ["evaluate"]'),
    ("Volumes", set_config("Volumes", {"/repro/code": {}}), "config", "Volumes is"),
    ("Healthcheck", set_config("Healthcheck", {"Test": ["CMD", "x"]}), "config", "Healthcheck is"),
    ("OnBuild", set_config("OnBuild", ["RUN x"]), "config", "OnBuild is"),
]


@pytest.mark.parametrize(("change", "check", "named"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_each_change_is_named_by_its_check(
    change: Callable[[FakeEngine], None], check: str, named: str, local_base: bool
) -> None:
    """``named``: what the report says, or ``FROM LAYERS|FROM FILESYSTEMS`` where the two readings put it
    differently (a whiteout is seen in a layer; in the merged filesystem, only what it hides is gone)."""
    engine = FakeEngine(local_base=local_base)
    change(engine)
    found = problems(engine)
    expected = named.split("|")[0 if not local_base else -1]
    assert any(expected in problem for problem in found[check]), found
    assert engine.reads == 1 and engine.base_reads == (1 if local_base else 0)
    assert all(not listed for name, listed in found.items() if name != check), found


def test_a_label_added_or_changed_is_named() -> None:
    engine = FakeEngine()
    engine.config["Labels"] = {**engine.config["Labels"], "io.repropack.manifest.digest": "sha256:0", "x": "y"}
    found = problems(engine)["config"]
    assert any(p.startswith("Labels io.repropack.manifest.digest='sha256:0'") for p in found), found
    assert "Labels x='y': repropack sets no such value" in found


def test_a_missing_pinned_file_is_named() -> None:
    engine = FakeEngine()
    del engine.content["/repro/runtime/entry.py"]
    assert "/repro/runtime/entry.py: missing" in problems(engine)["files"]


def test_a_fifo_or_device_in_a_layer_is_named() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        for name, kind in (("repro/code/pipe", tarfile.FIFOTYPE), ("etc/zero", tarfile.CHRTYPE)):
            member = tarfile.TarInfo(name)
            member.type = kind
            layer.addfile(member)
    buffer.seek(0)
    entries, _ = layers._read_layer(buffer, keep=lambda _: False)
    assert dict(entries)["/repro/code/pipe"].kind == "FIFO" and dict(entries)["/etc/zero"].kind == "device"


def test_upper_layers_merge_as_the_union_filesystem_does() -> None:
    view = layers.UpperLayers()
    layers._merge(view, [("/a", layers.Entry("dir")), ("/a/b", layers.Entry("file", "1"))])
    layers._merge(view, [("/a", layers.Entry("symlink", target="/tmp"))])  # a folder replaced by a link
    assert set(view.entries) == {"/a"} and view.entries["/a"].kind == "symlink"
    layers._merge(view, [("/c", layers.Entry("dir")), ("/c/d", layers.Entry("file", "2"))])
    layers._merge(view, [("/c", layers.Entry("opaque"))])
    assert "/c/d" not in view.entries and view.entries["/c/.wh..wh..opq"].kind == "opaque"


def test_a_layer_tar_reads_back_with_hashes() -> None:
    entries, kept = layers._read_layer(
        io.BytesIO(layer_tar({"/x/y": b"abc", "/x/l": "y"})), keep=lambda path: path == "/x/y"
    )
    found = dict(entries)
    assert found["/x/y"].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert found["/x/l"].target == "y" and kept == {"/x/y": b"abc"}


def test_an_image_on_another_base_is_named() -> None:
    engine = FakeEngine()
    engine.layers = lambda image: ["sha256:another-base", "sha256:top0"]  # type: ignore[method-assign]
    assert problems(engine)["base"] == ["the image is not built on the recorded base debian"]
    engine.manifest["base"]["layers"] = []
    assert problems(engine)["base"] == ["the manifest records no base layers (frozen without a Docker engine)"]

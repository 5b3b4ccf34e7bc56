"""A fake image for the integrity checks: its layers as ``docker save`` writes them, and a configuration
that is exactly what repropack's template gives (tests change either to tamper with it)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from typing import IO, Any

from repropack.canonical import canonical_json
from repropack.runtime.layout import ENTRYPOINT
from repropack.runtime.layout import MANIFEST_LAYOUT as LAYOUT
from repropack.verify.integrity import image_config

IMAGE = "sha256:" + "1" * 64
OTHER_IMAGE = "sha256:" + "2" * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_manifest(digest: str = "a" * 64) -> dict[str, Any]:
    return {
        "sha256": digest,
        "schema": "repropack.manifest.seal/v1",
        "repropack": "0.1.0",
        "experiment": {"name": "tiny", "python": "3.11"},
        "layout": dict(LAYOUT),
        "code": {"commit": "c" * 40, "files": {"train.py": {"sha256": sha(b"print(1)\n")}}},
        "runtime": {"files": {"entry.py": sha(b"runtime")}, "entrypoint": ENTRYPOINT},
        "config": None,
        "datasets": {},
        "dependencies": {"packages": {}, "hashes": {}},
        "base": {
            "layers": ["sha256:base"],
            "setup": [],
            "reference": "debian",
            "python": "3.11",
            "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["bash"]},
        },
    }


def layer_tar(files: dict[str, bytes | str]) -> bytes:
    """A layer's tar: bytes are a file's content, a str is a symbolic link's target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        for path, data in sorted(files.items()):
            member = tarfile.TarInfo(path.lstrip("/"))
            if isinstance(data, str):
                member.type, member.linkname = tarfile.SYMTYPE, data
                layer.addfile(member)
            else:
                member.size = len(data)
                layer.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


VENV_FILES: dict[str, bytes | str] = {
    "/repro/venv/bin/python": "python3",
    "/repro/venv/bin/python3": "/usr/bin/python3",
    "/repro/venv/bin/python3.11": "python3",
    "/repro/venv/lib64": "lib",
    "/repro/venv/pyvenv.cfg": b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"
    b"executable = /usr/bin/python3.11\ncommand = /usr/bin/python3 -m venv --without-pip /repro/venv\n",
}


def docker_save(layers: list[dict[str, bytes | str]]) -> bytes:
    """What ``docker save`` writes: one folder per layer with its layer.tar, and manifest.json in order."""
    files: dict[str, bytes | str] = {f"layer{n}/layer.tar": layer_tar(content) for n, content in enumerate(layers)}
    files["manifest.json"] = json.dumps([{"Layers": [f"layer{n}/layer.tar" for n in range(len(layers))]}]).encode()
    return layer_tar(files)


BASE_IMAGE = "sha256:" + "b" * 64
ENGINE_FILES: dict[str, bytes | str] = {"/.dockerenv": b"", "/etc/hosts": b"", "/etc/mtab": "/proc/mounts"}


def union(layers: list[dict[str, bytes | str]]) -> dict[str, bytes | str]:
    """What a container sees of ``layers``: later layers win, whiteouts and opaque folders hide lower paths."""
    merged: dict[str, bytes | str] = {}
    for layer in layers:
        for path, data in sorted(layer.items()):
            folder, _, name = path.rpartition("/")
            if name.startswith(".wh."):
                hidden = folder if name == ".wh..wh..opq" else f"{folder}/{name[4:]}"
                for known in [p for p in merged if p == hidden or p.startswith(hidden + "/")]:
                    if known != folder:
                        del merged[known]
            else:
                merged[path] = data
    return merged


class FakeEngine:
    """The engine calls integrity makes, with a count of how often the image's files were read.

    With ``local_base`` the engine has the base image, so integrity reads the merged filesystems of the
    image and its base (:mod:`repropack.verify.filesystem`); without it, the image's own layers
    (:mod:`repropack.verify.layers`)."""

    def __init__(self, manifest: dict[str, Any] | None = None, *, local_base: bool = True) -> None:
        self.manifest = manifest or make_manifest()
        self.local_base = local_base
        self.content: dict[str, bytes | str] = {
            **VENV_FILES,
            "/repro/code/train.py": b"print(1)\n",
            "/repro/runtime/entry.py": b"runtime",
        }
        self.reads = 0  # reads of the image's files (layers or filesystem)
        self.base_reads = 0  # reads of the base image's filesystem
        self.base: dict[str, bytes | str] = {"/usr/bin/python3": b"base"}
        self.extra_layers: list[dict[str, bytes | str]] = []  # layers a tamperer adds on top
        self.config = image_config(self.manifest)
        self.config["Labels"]["org.opencontainers.image.created"] = "2026-12-03T08:00:00Z"

    def _layers(self) -> list[dict[str, bytes | str]]:
        top = {**self.content, "/repro/manifest.json": canonical_json(self.manifest)}
        return [self.base, top, *self.extra_layers]

    def version(self) -> str:
        return "20.10.24"

    def image_id(self, reference: str) -> str | None:
        known = {IMAGE, OTHER_IMAGE} | ({BASE_IMAGE, "debian"} if self.local_base else set())
        return None if reference not in known else BASE_IMAGE if reference in (BASE_IMAGE, "debian") else reference

    def inspect(self, image: str) -> dict[str, Any]:
        if self.image_id(image) == BASE_IMAGE:
            return {"Id": BASE_IMAGE, "Config": {}, "RootFS": {"Layers": ["sha256:base"]}, "Parent": ""}
        tops = [f"sha256:top{n}" for n in range(1 + len(self.extra_layers))]
        return {"Id": image, "Config": self.config, "RootFS": {"Layers": ["sha256:base", *tops]}, "Parent": ""}

    def layers(self, image: str) -> list[str]:
        return list(self.inspect(image)["RootFS"]["Layers"])

    @contextlib.contextmanager
    def export(self, image: str) -> Iterator[IO[bytes]]:
        self.reads += 1
        yield io.BytesIO(docker_save(self._layers()))

    @contextlib.contextmanager
    def export_filesystem(self, image: str) -> Iterator[IO[bytes]]:
        if self.image_id(image) == BASE_IMAGE:
            self.base_reads += 1
            yield io.BytesIO(layer_tar({**self.base, **ENGINE_FILES}))
            return
        self.reads += 1
        yield io.BytesIO(layer_tar({**union(self._layers()), **ENGINE_FILES}))

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
from repropack.integrity import image_config
from repropack.manifest import ENTRYPOINT, LAYOUT

IMAGE = "sha256:" + "1" * 64
OTHER_IMAGE = "sha256:" + "2" * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_manifest(digest: str = "a" * 64) -> dict[str, Any]:
    return {
        "sha256": digest,
        "schema": "repropack.manifest/v1",
        "repropack": "0.1.0",
        "experiment": {"name": "tiny", "python": "3.11"},
        "layout": dict(LAYOUT),
        "code": {"commit": "c" * 40, "files": {"train.py": {"sha256": sha(b"print(1)\n")}}},
        "runtime": {"files": {"entry.py": sha(b"runtime")}, "entrypoint": ENTRYPOINT},
        "config": None,
        "datasets": {},
        "dependencies": {"packages": {}, "hashes": {}},
        "base": {"layers": ["sha256:base"], "setup": [], "reference": "debian", "python": "3.11",
                 "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["bash"]}},
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
    "/repro/venv/bin/python": "python3", "/repro/venv/bin/python3": "/usr/bin/python3",
    "/repro/venv/bin/python3.11": "python3", "/repro/venv/lib64": "lib",
    "/repro/venv/pyvenv.cfg": b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"
    b"executable = /usr/bin/python3.11\ncommand = /usr/bin/python3 -m venv --without-pip /repro/venv\n",
}


def docker_save(layers: list[dict[str, bytes | str]]) -> bytes:
    """What ``docker save`` writes: one folder per layer with its layer.tar, and manifest.json in order."""
    files: dict[str, bytes | str] = {f"layer{n}/layer.tar": layer_tar(content) for n, content in enumerate(layers)}
    files["manifest.json"] = json.dumps([{"Layers": [f"layer{n}/layer.tar" for n in range(len(layers))]}]).encode()
    return layer_tar(files)


class FakeEngine:
    """The engine calls integrity makes, with a count of how often the image's layers were read."""

    def __init__(self, manifest: dict[str, Any] | None = None) -> None:
        self.manifest = manifest or make_manifest()
        self.content: dict[str, bytes | str] = {
            **VENV_FILES,
            "/repro/code/train.py": b"print(1)\n",
            "/repro/runtime/entry.py": b"runtime",
        }
        self.reads = 0
        self.base: dict[str, bytes | str] = {"/usr/bin/python3": b"base"}
        self.extra_layers: list[dict[str, bytes | str]] = []  # layers a tamperer adds on top
        self.config = image_config(self.manifest)
        self.config["Labels"]["org.opencontainers.image.created"] = "2026-12-03T08:00:00Z"

    def inspect(self, image: str) -> dict[str, Any]:
        tops = [f"sha256:top{n}" for n in range(1 + len(self.extra_layers))]
        return {"Config": self.config, "RootFS": {"Layers": ["sha256:base", *tops]}}

    def layers(self, image: str) -> list[str]:
        return list(self.inspect(image)["RootFS"]["Layers"])

    @contextlib.contextmanager
    def export(self, image: str) -> Iterator[IO[bytes]]:
        self.reads += 1
        top = {**self.content, "/repro/manifest.json": canonical_json(self.manifest)}
        yield io.BytesIO(docker_save([self.base, top, *self.extra_layers]))

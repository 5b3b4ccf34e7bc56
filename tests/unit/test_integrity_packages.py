"""The package check reads only what decides it (the top of site-packages and its dist-info folders),
and leaving folders unread never lets a tampered environment through."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Iterator
from typing import IO, Any

import pytest

from repropack.errors import EnvironmentProblem
from repropack.integrity import hidden_folders, package_check

SITE = "/repro/venv/lib/python3.11/site-packages"


def metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()


def manifest(packages: dict[str, str], python: str | None = "3.11") -> dict[str, Any]:
    return {
        "layout": {"python": "/repro/venv/bin/python"},
        "dependencies": {"packages": packages},
        "base": {"python": python} if python else {},
    }


class Image:
    """A file tree the way the engine shows it through a created container: a covered path is resolved
    inside the image (links followed, as the engine does for a mount), and what it resolves to reads as
    an empty folder; a path that is a file cannot be covered."""

    def __init__(self) -> None:
        self.tree: dict[str, bytes | str | None] = {}  # bytes: a file, str: a link's target, None: a folder
        self.reads: list[tuple[str, ...]] = []
        self.sent: list[str] = []  # the files whose content the engine sent

    def add(self, path: str, entry: bytes | str | None) -> Image:
        parts = path.split("/")
        for depth in range(2, len(parts)):
            self.tree.setdefault("/".join(parts[:depth]), None)
        self.tree[path] = entry
        return self

    def environment(self, packages: dict[str, str]) -> Image:
        for name, version in packages.items():
            self.add(f"{SITE}/{name}/__init__.py", b"# code\n")
            self.add(f"{SITE}/{name}-{version}.dist-info/METADATA", metadata(name, version))
        return self

    def resolve(self, path: str) -> str:
        entry = self.tree.get(path)
        return f"{path.rpartition('/')[0]}/{entry}" if isinstance(entry, str) else path

    @contextlib.contextmanager
    def files(self, image: str, hidden: tuple[str, ...] = ()) -> Iterator[Image]:
        self.reads.append(hidden)
        covered = {self.resolve(path) for path in hidden}
        if any(isinstance(self.tree.get(path), bytes) for path in covered):
            raise EnvironmentProblem("error while mounting volume: not a directory")
        self.shown = {path: entry for path, entry in self.tree.items()
                      if not any(path.startswith(folder + "/") for folder in covered)}
        self.shown.update({folder: None for folder in covered})
        yield self

    def walk(self, folder: str) -> Iterator[tuple[str, tarfile.TarInfo, IO[bytes] | None]]:
        for path, entry in sorted(self.shown.items()):
            if not path.startswith(folder + "/"):
                continue
            member = tarfile.TarInfo(path.rpartition("/")[2])
            member.type = {type(None): tarfile.DIRTYPE, str: tarfile.SYMTYPE, bytes: tarfile.REGTYPE}[type(entry)]
            if isinstance(entry, bytes):
                self.sent.append(path)
            yield path, member, io.BytesIO(entry) if isinstance(entry, bytes) else None


LOCKED = {"torch": "2.13.0", "typing-extensions": "4.16.0"}


def check(image: Image, packages: dict[str, str] = LOCKED) -> list[str]:
    result = package_check(image, "sha256:" + "1" * 64, manifest(packages))  # type: ignore[arg-type]
    return list(result.problems)


def test_hidden_folders_are_the_locked_import_packages_at_the_top_of_site_packages() -> None:
    assert hidden_folders(manifest({"Typing-Extensions": "4", "torch": "2"})) == (
        f"{SITE}/torch", f"{SITE}/torch.libs", f"{SITE}/typing_extensions", f"{SITE}/typing_extensions.libs",
    )
    assert hidden_folders(manifest({"torch": "2"}, python=None)) == ()  # no Python version: read it all


def test_a_matching_environment_passes_without_sending_the_packages_content() -> None:
    image = Image().environment({"torch": "2.13.0", "typing_extensions": "4.16.0"})
    image.add(f"{SITE}/torch/lib/libtorch_cpu.so", b"\x7fELF" * 1000)
    assert check(image) == []
    assert len(image.reads) == 1 and image.reads[0]
    assert all(path.endswith("METADATA") for path in image.sent)


def test_a_covered_path_that_is_a_link_sends_the_environment_again_in_full() -> None:
    # 'torch' points at an extra distribution: covering it would hide that dist-info's METADATA
    image = Image().environment({"typing_extensions": "4.16.0"})
    image.add(f"{SITE}/torch-2.13.0.dist-info/METADATA", metadata("torch", "2.13.0"))
    image.add(f"{SITE}/evil-1.0.dist-info/METADATA", metadata("evil", "1.0"))
    image.add(f"{SITE}/torch", "evil-1.0.dist-info")
    assert check(image) == ["evil: installed but not in the lockfile (1.0)"]
    assert len(image.reads) == 2 and image.reads[1] == ()


def test_a_covered_path_that_is_a_file_is_read_in_full() -> None:
    image = Image().environment({"typing_extensions": "4.16.0"})
    image.add(f"{SITE}/torch-2.13.0.dist-info/METADATA", metadata("torch", "2.13.0"))
    image.add(f"{SITE}/torch", b"not a folder")
    assert check(image) == []
    assert image.reads[-1] == ()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda image: image.add(f"{SITE}/evil-1.0.dist-info/RECORD", b""),
         f"{SITE}/evil-1.0.dist-info: a dist-info folder without METADATA"),
        (lambda image: image.add(f"{SITE}/evil-1.0.dist-info", b"a file"),
         f"{SITE}/evil-1.0.dist-info: a dist-info folder without METADATA"),
        (lambda image: image.add(f"{SITE}/torch-2.12.0.dist-info/METADATA", metadata("torch", "2.12.0")),
         "torch: installed more than once (2.12.0, 2.13.0)"),
        (lambda image: image.add(f"{SITE}/torch-2.13.0.dist-info/METADATA", metadata("torch", "2.14.0")),
         "torch: installed 2.14.0, locked 2.13.0"),
        (lambda image: image.add(f"{SITE}/Evil_Pkg-1.0.dist-info/METADATA", metadata("Evil_Pkg", "1.0")),
         "evil-pkg: installed but not in the lockfile (1.0)"),
    ],
    ids=["no-metadata", "dist-info-file", "twice", "version", "extra"],
)
def test_tampered_environments_are_named(change: Any, named: str) -> None:
    image = Image().environment({"torch": "2.13.0", "typing_extensions": "4.16.0"})
    change(image)
    assert named in check(image)


def test_distributions_vendored_inside_a_package_are_not_the_environments() -> None:
    image = Image().environment({"torch": "2.13.0", "typing_extensions": "4.16.0"})
    image.add(f"{SITE}/functorch/_vendor/packaging-24.2.dist-info/METADATA", metadata("packaging", "24.2"))
    assert check(image) == []
    assert f"{SITE}/functorch/_vendor/packaging-24.2.dist-info/METADATA" in image.sent  # read, and not counted


def test_a_locked_package_that_is_missing_is_named() -> None:
    image = Image().environment({"typing_extensions": "4.16.0"})
    assert check(image) == ["torch: in the lockfile but not installed"]

"""A set of files as its canonical index (see :mod:`repropack.runtime.layout` for the line format).

Kept as the bytes: a cached dataset of many files is used (digest, size, image index) without ever
being taken apart; :attr:`FileIndex.files` parses it when a caller needs the files one by one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from repropack.runtime.layout import index_entry, index_line, index_lines


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


@dataclass(frozen=True)
class FileIndex:
    """A set of files as its canonical index: sorted 'sha256  size  path' lines (see :func:`tree_lines`).

    Kept as the bytes: a cached dataset of many files is used (digest, size, image index) without ever
    being taken apart; ``files`` parses it when a caller needs the files one by one."""

    data: bytes
    names: list[str]  # the files' paths, sorted, as in the lines
    total_bytes: int

    @property
    def count(self) -> int:
        return len(self.names)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def files(self) -> dict[str, FileDigest]:
        """relative POSIX path -> digest, sorted."""
        found: dict[str, FileDigest] = {}
        for line in index_lines(self.data):
            digest, size, name = index_entry(line)
            found[name] = FileDigest(digest, size)
        return found


def tree_lines(files: dict[str, FileDigest]) -> bytes:
    """The canonical listing of a set of files: sorted 'sha256  size  path' lines (a dataset's index)."""
    return "".join(index_line(d.sha256, d.size, name) for name, d in sorted(files.items())).encode()


def tree_digest(files: dict[str, FileDigest]) -> str:
    """One digest for a set of files: the sha256 of their :func:`tree_lines`."""
    return hashlib.sha256(tree_lines(files)).hexdigest()

"""What a tree holds: its regular files, sorted by relative POSIX path, with one ``stat`` each.

The stat keys (device, inode, size, mtime_ns, ctime_ns) are kept as five columns of 64-bit integers, not
as objects: a listing of many files is cheap to build, to compare with the stat cache's record and to
store there. Listing is the whole cost of freezing an unchanged dataset: one ``stat`` per file.

A listing also keeps the stat of every folder it walked. A folder's modification and change times move
whenever an entry is made, removed or renamed in it, so while no folder's stat has moved, the tree holds
the same names as before: :func:`relist` then stats those files again without walking the folders.
"""

from __future__ import annotations

import os
import sys
from array import array
from pathlib import Path
from typing import TypeAlias

FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns")

Columns: TypeAlias = "tuple[array[int], array[int], array[int], array[int], array[int]]"


class Listing:
    """The regular files of a tree, sorted by relative POSIX path, and their stat keys as columns; and
    the folders walked to find them ('.' for the tree itself; none for a single file), with theirs."""

    def __init__(
        self,
        names: list[str],
        columns: Columns,
        folders: list[str] | None = None,
        folder_columns: Columns | None = None,
    ) -> None:
        self.names = names
        self.columns = columns
        self.folders = folders or []
        self.folder_columns = folder_columns or _empty()
        self.encoded_names: bytes | None = None  # the names as the stat cache stores them, when it gave them

    @classmethod
    def of(cls, rows: list[tuple[str, int, int, int, int, int]]) -> Listing:
        """From (name, dev, ino, size, mtime_ns, ctime_ns) rows, in any order."""
        rows = sorted(rows)
        if not rows:
            return cls([], _empty())
        names, *values = zip(*rows, strict=True)
        dev, ino, size, mtime, ctime = (_column(column) for column in values)
        return cls(list(names), (dev, ino, size, mtime, ctime))

    def __len__(self) -> int:
        return len(self.names)

    def key(self, i: int) -> tuple[int, int, int, int, int]:
        dev, ino, size, mtime, ctime = self.columns
        return (dev[i], ino[i], size[i], mtime[i], ctime[i])

    def size(self, i: int) -> int:
        return self.columns[2][i]

    def total_bytes(self) -> int:
        return sum(self.columns[2])

    def newest_ns(self) -> int:
        """The latest modification or change time of any file (0 for none)."""
        return max(max(self.columns[3], default=0), max(self.columns[4], default=0))

    def select(self, keep: list[int]) -> Listing:
        """The listing of the files at positions ``keep`` (in order)."""
        dev, ino, size, mtime, ctime = (array("q", (column[i] for i in keep)) for column in self.columns)
        return Listing([self.names[i] for i in keep], (dev, ino, size, mtime, ctime), self.folders, self.folder_columns)


def scan(path: Path) -> Listing:
    """The file at ``path`` (named by its own name), or every regular file under the folder at ``path``
    (symlinks followed, loops skipped)."""
    tree = os.fspath(path)
    if not os.path.isdir(tree):
        return Listing([os.path.basename(tree)], stat_columns([tree]))
    files, folders = _walk(tree)
    files.sort()
    folders.sort()
    return Listing(
        [name for name, _ in files],
        stat_columns([full for _, full in files]),
        [name for name, _ in folders],
        _columns([st for _, st in folders]),
    )


def relist(path: Path, names: list[str], folders: list[str], folder_columns: Columns) -> Listing | None:
    """The listing of the folder at ``path`` without walking it, when its folders are exactly as listed
    before (``folders``, ``folder_columns``): the files are then ``names``, stat-ed again. None when a
    folder moved, or a file cannot be stat-ed: then the tree must be walked. (Whether folders that did not
    move can be trusted, the racy rule, is the stat cache's to say before it asks.)"""
    tree = os.fspath(path)
    lead = tree + os.sep
    try:
        now = _stat([tree if name == "." else lead + name for name in folders])
        if not folders or now != folder_columns:
            return None
        return Listing(names, stat_columns([lead + name for name in names]), folders, now)
    except OSError:
        return None


def _walk(tree: str) -> tuple[list[tuple[str, str]], list[tuple[str, os.stat_result]]]:
    """(relative name, path) of every regular file under ``tree`` (no stat of a file), and (relative
    name, stat) of every folder walked, the tree itself as '.' (a folder's device and inode also tell a
    symlink loop)."""
    found: list[tuple[str, str]] = []
    top = os.stat(tree)
    folders: list[tuple[str, os.stat_result]] = [(".", top)]
    stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = [("", tree, frozenset({(top.st_dev, top.st_ino)}))]
    while stack:
        prefix, folder, ancestors = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    st = entry.stat()
                    key = (st.st_dev, st.st_ino)
                    if key not in ancestors:  # a link back up the tree would never end
                        stack.append((prefix + entry.name + "/", entry.path, ancestors | {key}))
                        folders.append((prefix + entry.name, st))
                elif entry.is_file():
                    found.append((prefix + entry.name, entry.path))
    return found, folders


def stat_columns(paths: list[str]) -> Columns:
    """The stat columns of ``paths``, in order."""
    return _stat(paths)


def _stat(paths: list[str]) -> Columns:
    """Appended field by field: no object per file outlives its step."""
    dev, ino, size, mtime, ctime = columns = _empty()
    try:
        for st in map(os.stat, paths):
            dev.append(st.st_dev)
            ino.append(st.st_ino)
            size.append(st.st_size)
            mtime.append(st.st_mtime_ns)
            ctime.append(st.st_ctime_ns)
    except OverflowError:  # a device or inode number past int64: the slower way, which folds them
        return _columns(list(map(os.stat, paths)))
    return columns


def columns_bytes(columns: Columns) -> bytes:
    """The five columns one after the other, as little-endian int64 (the stat cache stores them so)."""
    if sys.byteorder == "little":
        return b"".join(column.tobytes() for column in columns)
    swapped = []
    for column in columns:
        copy = array("q", column)
        copy.byteswap()
        swapped.append(copy.tobytes())
    return b"".join(swapped)


def columns_from_bytes(data: bytes, count: int) -> Columns:
    """The five columns of ``count`` entries back from :func:`columns_bytes`; ValueError when ``data`` is
    not that many."""
    flat = array("q")
    flat.frombytes(data)  # ValueError unless whole items
    if sys.byteorder != "little":
        flat.byteswap()
    if len(flat) != len(FIELDS) * count:
        raise ValueError(f"{len(flat)} stat values for {count} entries")
    dev, ino, size, mtime, ctime = (flat[field * count : (field + 1) * count] for field in range(len(FIELDS)))
    return (dev, ino, size, mtime, ctime)


def _columns(stats: list[os.stat_result]) -> Columns:
    rows = [(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for st in stats]
    if not rows:
        return _empty()
    dev, ino, size, mtime, ctime = (_column(values) for values in zip(*rows, strict=True))
    return (dev, ino, size, mtime, ctime)


def _empty() -> Columns:
    return (array("q"), array("q"), array("q"), array("q"), array("q"))


def _column(values: tuple[int, ...]) -> array[int]:
    try:
        return array("q", values)
    except OverflowError:  # device and inode numbers are unsigned 64-bit
        return array("q", map(signed, values))


def signed(value: int) -> int:
    """Fold the upper half of the unsigned 64-bit range into int64's negative half (one to one)."""
    return value - (1 << 64) if value >= 1 << 63 else value

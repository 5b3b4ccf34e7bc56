"""What a tree holds: its regular files, sorted by relative POSIX path, with one ``stat`` each.

The stat keys (device, inode, size, mtime_ns, ctime_ns) are kept as five columns of 64-bit integers, not
as objects: a listing of many files is cheap to build, to compare with the stat cache's record and to
store there. Listing is the whole cost of freezing an unchanged dataset, and one ``stat`` per file is
mostly system-call time, which threads cannot share out under the GIL; so, as git's preloaded index runs
its ``lstat`` calls on several threads, a large tree's files are stat-ed by two processes: a forked child
takes half the list and hands back its columns through a pipe.
"""

from __future__ import annotations

import os
import sys
import threading
from array import array
from pathlib import Path
from typing import TypeAlias

PARALLEL_FROM = 4096  # files: a smaller tree is listed sooner by one process than a fork costs
FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns")
_ITEM = array("q").itemsize

Columns: TypeAlias = "tuple[array[int], array[int], array[int], array[int], array[int]]"


class Listing:
    """The regular files of a tree, sorted by relative POSIX path, and their stat keys as columns."""

    def __init__(self, names: list[str], columns: Columns) -> None:
        self.names = names
        self.columns = columns

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
        return Listing([self.names[i] for i in keep], (dev, ino, size, mtime, ctime))


def scan(path: Path) -> Listing:
    """The file at ``path`` (named by its own name), or every regular file under the folder at ``path``
    (symlinks followed, loops skipped)."""
    tree = os.fspath(path)
    if not os.path.isdir(tree):
        return Listing([os.path.basename(tree)], stat_columns([tree]))
    found = sorted(_walk(tree))
    return Listing([name for name, _ in found], stat_columns([full for _, full in found]))


def _walk(tree: str) -> list[tuple[str, str]]:
    """(relative name, path) of every regular file under ``tree``; no stat of a file, only of folders
    (their device and inode tell a symlink loop)."""
    found: list[tuple[str, str]] = []
    top = os.stat(tree)
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
                elif entry.is_file():
                    found.append((prefix + entry.name, entry.path))
    return found


def stat_columns(paths: list[str]) -> Columns:
    """The stat columns of ``paths``, in order; on two processes when there are many and forking is safe."""
    if len(paths) < PARALLEL_FROM or not _can_fork():
        return _stat(paths)
    half = len(paths) // 2
    theirs = _stat_in_child(paths[:half])
    try:
        mine = _stat(paths[half:])
    finally:
        answer = theirs()  # collected whatever happened here: no child is left behind
    first = answer or _stat(paths[:half])  # the child could not: here, where its error (if any) is raised
    dev, ino, size, mtime, ctime = (a + b for a, b in zip(first, mine, strict=True))
    return (dev, ino, size, mtime, ctime)


def _can_fork() -> bool:
    """Linux only, and only while this process runs a single thread (a fork copies no other thread, and
    one holding a lock at that moment would leave the child stuck)."""
    return sys.platform == "linux" and threading.active_count() == 1


def _stat_in_child(paths: list[str]) -> _Pending:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: stat, write the columns, and leave at once (no cleanup of the parent's state)
        code = 1
        try:
            os.close(read_end)
            with open(write_end, "wb") as out:
                out.write(b"".join(column.tobytes() for column in _stat(paths)))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return _Pending(pid, read_end, len(paths))


class _Pending:
    """The child's answer, collected once: its columns, or None when it failed."""

    def __init__(self, pid: int, read_end: int, count: int) -> None:
        self.pid, self.read_end, self.count = pid, read_end, count

    def __call__(self) -> Columns | None:
        with open(self.read_end, "rb") as answer:
            data = answer.read()
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or len(data) != len(FIELDS) * self.count * _ITEM:
            return None
        size = self.count * _ITEM
        columns = [array("q") for _ in FIELDS]
        for i, column in enumerate(columns):
            column.frombytes(data[i * size : (i + 1) * size])
        dev, ino, size_, mtime, ctime = columns
        return (dev, ino, size_, mtime, ctime)


def _stat(paths: list[str]) -> Columns:
    stat = os.stat
    rows = [(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for st in map(stat, paths)]
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

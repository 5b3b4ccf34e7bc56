"""Reading and removing what a container left in a host folder, without trusting any of it.

The experiment's code runs with ``/output`` bind-mounted from the host, so whatever it leaves there is
data written by a stranger: a symbolic link (to a host file, or to /dev/zero), a FIFO that blocks the
reader forever, a socket or a device node, a file larger than memory. Records are read here as regular
files only: every path component is opened relative to the one above it with ``O_NOFOLLOW``, nothing
blocks (``O_NONBLOCK``), ``fstat`` must say regular file, and at most ``cap + 1`` bytes are read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from repropack.engine.output_cap import describe
from repropack.errors import CommandFailed, EnvironmentProblem

RECORD_CAP = 16 << 20  # run.json, metrics.json: a few KiB in practice
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


class UnsafeOutput(CommandFailed):
    """A file the run left in /output is not a regular file of sane size: its output is not trustworthy.

    Exit 4 (the experiment's command failed): the experiment's own code made the hazard, as it would a
    crash; nothing was compared, so it is not a verdict on the numbers (1), and the host is fine (3)."""

    def __init__(self, shown: str, why: str) -> None:
        self.shown = shown
        super().__init__(
            f"{shown} {why}; repropack reads only regular files the run wrote (no links, FIFOs, sockets or "
            f"devices, at most {describe(RECORD_CAP)}), so this run's results are not trustworthy and were not used.",
            hint="The experiment's code must write its results as plain files in /output.",
        )


def kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_record(folder: Path, name: str, *, shown_as: str = "/output", cap: int = RECORD_CAP) -> bytes | None:
    """The bytes of ``folder/name`` (``name`` may hold '/'), or None when it is missing.

    ``folder`` itself is the caller's (links in it are followed); below it nothing is. Raises
    :class:`UnsafeOutput` for anything that is not a regular file of at most ``cap`` bytes."""
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a plain relative name: {name!r}")
    shown = f"{shown_as}/{name}"
    try:
        top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    fds = [top]
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            try:
                fds.append(os.open(part, _FOLDER | os.O_NONBLOCK, dir_fd=fds[-1]))
            except FileNotFoundError:
                return None
            except OSError as exc:
                prefix = f"{shown_as}/{'/'.join(parts[:depth])}"
                found = _lstat_kind(fds[-1], part)
                raise UnsafeOutput(
                    shown,
                    f"cannot be read: {prefix} is {found or 'not a folder'} ({exc.strerror})"
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                    else f"cannot be read: {prefix} could not be opened ({exc.strerror})",
                ) from None
        return _read_regular(fds[-1], parts[-1], shown, cap)
    finally:
        for fd in fds:
            os.close(fd)


def _lstat_kind(dir_fd: int, name: str) -> str | None:
    try:
        return kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return None


def _read_regular(dir_fd: int, name: str, shown: str, cap: int) -> bytes | None:
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(before.st_mode):  # refused before opening: opening a device can have effects
        raise UnsafeOutput(shown, f"is {kind(before.st_mode)}")
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: swapped for a link since; ENXIO: a socket
        found = _lstat_kind(dir_fd, name) or "not a regular file"
        raise UnsafeOutput(
            shown, f"is {found}" if exc.errno in (errno.ELOOP, errno.ENXIO) else f"could not be opened ({exc.strerror})"
        ) from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise UnsafeOutput(
                shown,
                f"is {kind(now.st_mode)}" if not stat.S_ISREG(now.st_mode) else "was replaced while it was being read",
            )
        if now.st_size > cap:
            raise UnsafeOutput(shown, f"is larger than {describe(cap)} ({describe(now.st_size)})")
        chunks: list[bytes] = []
        total = 0
        while total <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > cap:
            raise UnsafeOutput(shown, f"is larger than {describe(cap)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


# -- removing ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A new temporary folder for a run's /output, removed with :func:`remove_tree` whatever the run left
    in it. An error from inside the block wins over one from the removal."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            remove_tree(path)
        raise
    try:
        remove_tree(path)
    except OSError as exc:
        raise EnvironmentProblem(
            f"Could not remove the temporary folder {path} ({exc.strerror or exc}).",
            hint="Remove it by hand (the run is over; nothing uses it).",
        ) from None


def remove_tree(root: Path) -> None:
    """Remove ``root`` and everything in it, whatever the run left: folders it made read-only (or
    unreadable) are made ours again first, links are removed and never followed, FIFOs and sockets are
    unlinked, never opened, and a deep tree costs neither recursion nor one open file per level.

    Only call this once nothing writes the tree any more (the container is gone)."""
    try:
        fd = _open_folder(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC))
    except FileNotFoundError:
        return
    # From the root down to the current folder: (its name in its parent, (dev, ino), its sub-folders left).
    levels: list[tuple[str, tuple[int, int], list[str]]] = []
    try:
        here = os.fstat(fd)
        levels.append(("", (here.st_dev, here.st_ino), _clear_files(fd)))
        while True:
            name, _identity, pending = levels[-1]
            if pending:
                child = pending.pop()
                child_fd = _open_folder(os.open(child, os.O_PATH | _FOLDER, dir_fd=fd))
                os.close(fd)
                fd = child_fd
                here = os.fstat(fd)
                levels.append((child, (here.st_dev, here.st_ino), _clear_files(fd)))
                continue
            levels.pop()
            if not levels:
                break
            parent = os.open("..", _FOLDER, dir_fd=fd)
            up = os.fstat(parent)
            if (up.st_dev, up.st_ino) != levels[-1][1]:
                os.close(parent)
                raise OSError(errno.ESTALE, f"{root}: the tree changed while it was being removed")
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(root)


def _open_folder(path_fd: int) -> int:
    """A readable descriptor of the folder ``path_fd`` (an O_PATH descriptor, closed here), made
    rwx for its owner first when it is not (a run may leave folders read-only or unreadable)."""
    try:
        mode = os.fstat(path_fd).st_mode
        if mode & 0o700 != 0o700:
            with contextlib.suppress(OSError):  # not ours to change: the removal says what failed
                os.chmod(f"/proc/self/fd/{path_fd}", stat.S_IMODE(mode) | 0o700)  # the folder itself, no link
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path_fd)
    finally:
        os.close(path_fd)


def _clear_files(fd: int) -> list[str]:
    """Unlink everything in the folder ``fd`` that is not a folder; returns the names of its folders."""
    folders = []
    with os.scandir(fd) as entries:
        names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_folder in names:
        if is_folder:
            folders.append(name)
        else:
            os.unlink(name, dir_fd=fd)
    return folders

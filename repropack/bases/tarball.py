"""Deterministic tar members, for the two tar writers: a local base's root filesystem (bases/bootstrap.py)
and the build context (image/context.py). A member made or normalized here has numeric owners only (no
user or group names: those would be looked up in the host's passwd, not the image's) and a modification
time that does not depend on when the tar was written, so equal inputs added in the same order give equal
bytes. The order itself is each writer's: the context sorts its entry names, the root filesystem is walked
depth first in name order.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import SupportsRead


def normalize(info: tarfile.TarInfo, *, mtime: int, clamp: bool = False, root_owned: bool = True) -> tarfile.TarInfo:
    """No owner names; modification time ``mtime`` (or, with ``clamp``, at most ``mtime``); owner 0:0
    unless not ``root_owned`` (the numeric owner is then kept as it is)."""
    info.uname = info.gname = ""
    info.mtime = min(int(info.mtime), mtime) if clamp else mtime
    if root_owned:
        info.uid = info.gid = 0
    return info


def member(name: str, *, mode: int, mtime: int, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
    """A new root-owned member: a regular file of ``size`` bytes, or a folder."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    if folder:
        info.type = tarfile.DIRTYPE
    return normalize(info, mtime=mtime)


def add(tar: tarfile.TarFile, info: tarfile.TarInfo, content: bytes | Path | SupportsRead[bytes] | None = None) -> None:
    """Write ``info`` and its content: bytes, a file (opened here), a stream already open, or none."""
    if isinstance(content, bytes):
        tar.addfile(info, io.BytesIO(content))
    elif isinstance(content, Path):
        with open(content, "rb") as raw:
            tar.addfile(info, raw)
    else:
        tar.addfile(info, content)

"""SHA-256 of files and folders, the way every repropack digest is computed.

Large files are hashed on a small thread pool (hashlib releases the GIL), small files in a plain
loop: on this kind of machine that beats both a single thread and a pool over every file.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
LARGE_FILE = 4 << 20


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


def sha256_file(path: Path) -> FileDigest:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            read = handle.readinto(buffer)
            if not read:
                break
            digest.update(view[:read])
            size += read
    return FileDigest(digest.hexdigest(), size)


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as a sorted POSIX path relative to it (symlinks followed)."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        rel = Path(folder).relative_to(root)
        for name in files:
            full = Path(folder) / name
            if full.is_file():
                found.append((rel / name).as_posix())
    return sorted(found)


def hash_files(root: Path, names: list[str], workers: int | None = None) -> dict[str, FileDigest]:
    """Hash ``names`` (relative to ``root``); returns them in sorted order."""
    sizes = {name: (root / name).stat().st_size for name in names}
    large = [n for n in names if sizes[n] >= LARGE_FILE]
    small = [n for n in names if sizes[n] < LARGE_FILE]
    result: dict[str, FileDigest] = {}
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(sha256_file, root / name) for name in large}
        for name in small:
            result[name] = sha256_file(root / name)
        for name, future in futures.items():
            result[name] = future.result()
    return dict(sorted(result.items()))


def tree_digest(files: dict[str, FileDigest]) -> str:
    """One digest for a set of files: sha256 over sorted 'sha256  size  path' lines."""
    lines = "".join(f"{d.sha256}  {d.size}  {name}\n" for name, d in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()

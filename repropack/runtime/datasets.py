"""The runtime's dataset check: every dataset's files (embedded or mounted) against its index in the image.

Standard library only and Python 3.8-compatible, a sibling of the entrypoint in ``/repro/runtime``. The
index of each dataset is pinned by its sha256 in the manifest; a file that is changed, missing or extra is
named. Embedded data that differs means the image was modified (exit 1); mounted data that differs is bad
input (exit 2).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if __package__:  # imported as a module of repropack.runtime (on the host)
    from repropack.runtime import layout
    from repropack.runtime.exits import Stop
else:  # a sibling file of /repro/runtime/entrypoint.py, which puts this folder on sys.path
    import layout  # type: ignore[no-redef, import-not-found]
    from exits import Stop  # type: ignore[no-redef, import-not-found]
if TYPE_CHECKING:
    from repropack.runtime.records import DatasetRecord, Manifest


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_files(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in files:
            full = os.path.join(folder, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def read_index(name: str, record: DatasetRecord) -> dict[str, dict[str, Any]]:
    """The dataset's index (relative path -> sha256 and size), checked against the manifest's digest."""
    try:
        with open(record["index"], "rb") as handle:
            data = handle.read()
    except OSError:
        raise Stop(
            1,
            f"The image's index of dataset '{name}' ({record['index']}) is missing: the image was "
            "modified; do not trust its results.",
        ) from None
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise Stop(
            1,
            f"The image's index of dataset '{name}' ({record['index']}) does not match its manifest: "
            "the image was modified; do not trust its results.",
        )
    files: dict[str, dict[str, Any]] = {}
    for line in layout.index_lines(data):
        digest, size, path = layout.index_entry(line)
        files[path] = {"sha256": digest, "size": size}
    return files


def check_dataset(name: str, record: DatasetRecord) -> str | None:
    """None when the dataset's files are exactly the manifest's; else what differs."""
    mount = record["mount"]
    expected = read_index(name, record)
    if not os.path.isdir(mount):
        return f"'{name}' is not there ({mount} is missing)"
    present = set(list_files(mount))
    if record["kind"] == "file":  # a mounted single file may sit beside unrelated files
        present &= set(expected)
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    changed = sorted(
        rel for rel in set(expected) & present if sha256_file(os.path.join(mount, rel)) != expected[rel]["sha256"]
    )
    if not (missing or extra or changed):
        return None
    parts = []
    for label, names in (("changed", changed), ("missing", missing), ("extra", extra)):
        if names:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            parts.append(f"{label}: {shown}")
    return f"'{name}' differs from the manifest ({'; '.join(parts)})"


def new_data_digest(name: str, record: DatasetRecord) -> str:
    """The index digest of data given in place of the frozen dataset (``--new-data NAME``): the same
    digest the manifest would hold for it, so a record can say whether it is the frozen data."""
    mount = record["mount"]
    if not os.path.isdir(mount):
        raise Stop(2, f"The new data for '{name}' is not there ({mount} is missing).")
    files = list_files(mount)
    if record["kind"] == "file":  # the file the commands name, not what lies beside it
        wanted = set(read_index(name, record))
        files = [rel for rel in files if rel in wanted]
        if not files:
            raise Stop(2, f"The new data for '{name}' holds no {', '.join(sorted(wanted))}.")
    lines = "".join(
        layout.index_line(sha256_file(os.path.join(mount, rel)), os.path.getsize(os.path.join(mount, rel)), rel)
        for rel in files
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def check_datasets(manifest: Manifest, new: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Check every dataset against the manifest, except those named in ``new`` (other data on purpose,
    whose digests are computed); returns per dataset its digest, whether it is embedded and as frozen."""
    embedded: list[tuple[str, str, str]] = []
    mounted: list[tuple[str, str, str]] = []
    uses: dict[str, dict[str, Any]] = {}
    for name, record in sorted(manifest["datasets"].items()):
        if name in new:
            digest = new_data_digest(name, record)
            uses[name] = {"sha256": digest, "embedded": False, "as_frozen": digest == record["sha256"]}
            continue
        uses[name] = {"sha256": record["sha256"], "embedded": bool(record["embed"]), "as_frozen": True}
        problem = check_dataset(name, record)
        if problem:
            (embedded if record["embed"] else mounted).append((name, problem, record["mount"]))
    if embedded:
        raise Stop(
            1,
            "The image's embedded data does not match its manifest: "
            + "; ".join(p for _, p, _ in embedded)
            + ". The image was modified; do not trust its results.",
        )
    if mounted:
        how = " ".join(f"-v HOST_PATH:{mount}:ro" for _, _, mount in mounted)
        raise Stop(
            2,
            "Refusing to run: the mounted data is not the data this experiment was frozen with: "
            + "; ".join(p for _, p, _ in mounted)
            + f". Mount the right data ({how}, or 'repropack run --data NAME=PATH').",
        )
    return uses

"""What the layers above an image's base change, read from the merged filesystem a created (never
started) container of it exports, set beside the same export of its local base (cached per engine
version and layer digests). See docs/architecture.md, "How verify reads an image"."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from repropack.canonical import record_seal
from repropack.engine.client import Engine
from repropack.files import atomic_write
from repropack.verify.layers import Entry, UpperLayers, read_entries

LISTING_VERSION = 1  # raise when what a listing records changes


def read_filesystem(
    engine: Engine, image: str, keep: Callable[[str], bool]
) -> tuple[dict[str, Entry], dict[str, bytes]]:
    """Every path of the filesystem a container of ``image`` starts with; the bytes of the kept files."""
    tree: dict[str, Entry] = {}
    kept: dict[str, bytes] = {}
    with engine.export_filesystem(image) as stream:
        for path, entry, content in read_entries(stream, keep):
            tree[path] = entry
            if content is not None:
                kept[path] = content
    return tree, kept


def changes(tree: dict[str, Entry], base: dict[str, Entry]) -> dict[str, Entry]:
    """What ``tree`` adds or changes over ``base``, and a whiteout for each base path it lacks (only the
    topmost: a deleted folder is named, not everything that was in it)."""
    changed = {path: entry for path, entry in tree.items() if base.get(path) != entry}
    deleted = set(base) - set(tree)
    for path in sorted(deleted):
        if not any(folder in deleted for folder in _folders(path)):
            changed[path] = Entry("whiteout")
    return changed


def _folders(path: str) -> Iterator[str]:
    while (path := path.rpartition("/")[0]) != "":
        yield path


def base_image(engine: Engine, image: str, layers: list[str], candidates: Iterable[str]) -> str | None:
    """A local image whose layers are exactly ``layers``: one of ``candidates`` (the recorded base), or
    an ancestor of ``image`` (a locally built image names its parent); None when there is none."""
    seen: set[str] = set()
    parent = engine.inspect(image).get("Parent") or ""
    for reference in [*candidates, parent]:
        while reference and reference not in seen:
            seen.add(reference)
            if engine.image_id(reference) is None:
                break
            details = engine.inspect(reference)
            found = [str(layer) for layer in (details.get("RootFS") or {}).get("Layers") or []]
            if found == layers:
                return str(details["Id"])
            if len(found) < len(layers) or found[: len(layers)] != layers:
                break  # its ancestors have fewer layers still, or other ones
            reference = details.get("Parent") or ""
    return None


class Listings:
    """Base listings kept in a folder: one JSON file per (engine version, layer digests)."""

    def __init__(self, folder: Path | None, engine_version: str) -> None:
        self.folder = folder
        self.engine_version = engine_version

    def _path(self, layers: list[str]) -> Path | None:
        if self.folder is None:
            return None
        key = hashlib.sha256(json.dumps([self.engine_version, layers]).encode()).hexdigest()
        return self.folder / f"{key[:32]}.json"

    def get(self, layers: list[str]) -> dict[str, Entry] | None:
        path = self._path(layers)
        if path is None:
            return None
        try:
            record = json.loads(path.read_bytes())
            body = {key: record[key] for key in ("version", "engine", "layers", "entries")}
            if record["sha256"] != record_seal(body):
                raise ValueError("not intact")
            if (body["version"], body["engine"], body["layers"]) != (LISTING_VERSION, self.engine_version, layers):
                raise ValueError("not this base's listing")
            return {p: Entry(*fields) for p, fields in body["entries"].items()}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError):
            with contextlib.suppress(OSError):
                path.unlink()  # damaged or foreign: read the base again
            return None

    def put(self, layers: list[str], tree: dict[str, Entry]) -> None:
        path = self._path(layers)
        if path is None:
            return
        entries = {p: [e.kind, e.sha256, e.size, e.target, e.mode, e.uid, e.gid] for p, e in sorted(tree.items())}
        body = {"version": LISTING_VERSION, "engine": self.engine_version, "layers": layers, "entries": entries}
        with contextlib.suppress(OSError):  # a cache that cannot be written is no error
            atomic_write(path, json.dumps({**body, "sha256": record_seal(body)}).encode())


def read_upper_files(
    engine: Engine,
    image: str,
    depth: int,
    keep: Callable[[str], bool],
    *,
    candidates: Iterable[str],
    listings: Listings,
) -> UpperLayers | None:
    """What the layers of ``image`` above its first ``depth`` change, from the merged filesystems of the
    image and its base; None when no local image has exactly those first layers."""
    all_layers = engine.layers(image)
    layers = all_layers[:depth]
    base = listings.get(layers)
    if base is None:
        source = base_image(engine, image, layers, candidates)
        if source is None:
            return None
        base, _ = read_filesystem(engine, source, keep=lambda path: False)
        listings.put(layers, base)
    tree, kept = read_filesystem(engine, image, keep)
    return UpperLayers(changes(tree, base), kept, layers=max(len(all_layers) - depth, 0))

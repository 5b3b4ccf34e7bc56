"""Reading what an image's upper layers change from the merged filesystems of the image and its base:
the difference, the choice of the base image, the kept base listings, and the forward-only stream."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from image_fakes import BASE_IMAGE, IMAGE, FakeEngine, layer_tar

from repropack.engine.streams import ForwardStream
from repropack.verify import filesystem as rootfs
from repropack.verify.integrity import image_checks
from repropack.verify.layers import Entry, read_entries

FILE = Entry("file", "1" * 64, 3, mode=0o644)


def test_changes_are_what_is_new_or_different_and_the_topmost_deletions() -> None:
    base = {
        "/etc": Entry("dir", mode=0o755),
        "/etc/a": FILE,
        "/usr": Entry("dir", mode=0o755),
        "/usr/doc": Entry("dir", mode=0o755),
        "/usr/doc/x": FILE,
        "/usr/doc/y/z": FILE,
        "/bin/sh": FILE,
    }
    tree = {
        "/etc": Entry("dir", mode=0o755),
        "/etc/a": Entry("file", "1" * 64, 3, mode=0o4755),  # setuid
        "/usr": Entry("dir", mode=0o755),
        "/bin/sh": Entry("file", "1" * 64, 3, mode=0o644, uid=1000),
        "/repro/x": FILE,
    }
    found = rootfs.changes(tree, base)
    assert set(found) == {"/etc/a", "/bin/sh", "/repro/x", "/usr/doc"}  # /usr/doc/x and y/z: in /usr/doc
    assert found["/usr/doc"].kind == "whiteout" and found["/repro/x"] == FILE
    assert rootfs.changes(base, base) == {}


def test_the_base_is_a_local_image_with_exactly_the_base_layers() -> None:
    engine = FakeEngine()
    assert rootfs.base_image(engine, IMAGE, ["sha256:base"], ["debian"]) == BASE_IMAGE  # type: ignore[arg-type]
    assert rootfs.base_image(engine, IMAGE, ["sha256:other"], ["debian"]) is None  # type: ignore[arg-type]
    assert (
        rootfs.base_image(
            FakeEngine(local_base=False),
            IMAGE,
            ["sha256:base"],  # type: ignore[arg-type]
            ["debian"],
        )
        is None
    )


def test_an_ancestor_with_the_base_layers_is_found_through_the_parents() -> None:
    """A catalog base with setup steps: the base is the image after those steps, found as an ancestor."""
    engine = FakeEngine(local_base=False)
    chain = {
        IMAGE: (["l1", "l2", "l3"], "sha256:p2"),
        "sha256:p2": (["l1", "l2"], "sha256:p1"),
        "sha256:p1": (["l1"], ""),
    }
    engine.image_id = lambda ref: ref if ref in chain else None  # type: ignore[method-assign]
    engine.inspect = lambda ref: {
        "Id": ref,
        "RootFS": {"Layers": chain[ref][0]},  # type: ignore[method-assign]
        "Parent": chain[ref][1],
    }
    assert rootfs.base_image(engine, IMAGE, ["l1", "l2"], ["missing-base"]) == "sha256:p2"  # type: ignore[arg-type]
    assert rootfs.base_image(engine, IMAGE, ["l1", "x"], []) is None  # type: ignore[arg-type]


def test_a_base_is_read_once_then_its_listing_is_kept(tmp_path: Path) -> None:
    engine = FakeEngine()
    image_checks(engine, IMAGE, engine.manifest, cache=None)  # type: ignore[arg-type]
    image_checks(engine, IMAGE, engine.manifest, cache=None)  # type: ignore[arg-type]
    assert engine.base_reads == 1 and engine.reads == 2


def test_a_damaged_or_foreign_listing_is_not_used_and_is_removed(tmp_path: Path) -> None:
    listings = rootfs.Listings(tmp_path, "20.10.24")
    listing = {"/usr/bin/python3": FILE}
    listings.put(["sha256:base"], listing)
    assert listings.get(["sha256:base"]) == listing
    assert rootfs.Listings(tmp_path, "27.0.0").get(["sha256:base"]) is None  # another engine: another key
    (path,) = tmp_path.iterdir()
    record = json.loads(path.read_bytes())
    record["entries"]["/usr/bin/python3"][1] = "2" * 64  # a changed hash without a matching seal
    path.write_text(json.dumps(record))
    assert listings.get(["sha256:base"]) is None and not path.exists()
    listings.put(["sha256:base"], listing)
    path.write_bytes(b"{not json")
    assert listings.get(["sha256:base"]) is None and not path.exists()
    assert rootfs.Listings(None, "20.10.24").get(["sha256:base"]) is None  # no folder: nothing kept


def test_read_entries_hashes_files_read_straight_from_the_stream() -> None:
    archive = layer_tar({"/a/big": b"x" * (3 << 20), "/a/small": b"abc", "/a/link": "small"})
    found = {
        path: (entry, kept)
        for path, entry, kept in read_entries(ForwardStream(io.BytesIO(archive)), keep=lambda path: path == "/a/small")
    }
    assert found["/a/small"] == (
        Entry("file", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3, mode=0o644),
        b"abc",
    )
    assert found["/a/big"][0].size == 3 << 20 and found["/a/big"][1] is None
    assert found["/a/link"][0].target == "small"


def test_an_archive_cut_inside_a_file_is_an_error_not_a_short_file() -> None:
    archive = layer_tar({"/a/big": b"x" * 100_000})
    with pytest.raises(tarfile.ReadError):
        list(read_entries(ForwardStream(io.BytesIO(archive[:50_000])), keep=lambda path: False))


def test_the_stream_seeks_forward_only() -> None:
    stream = ForwardStream(io.BytesIO(b"0123456789"))
    assert stream.read(2) == b"01" and stream.seek(5) == 5 and stream.read(1) == b"5"
    assert stream.seek(2, io.SEEK_CUR) == 8 and stream.tell() == 8
    with pytest.raises(io.UnsupportedOperation):
        stream.seek(0)

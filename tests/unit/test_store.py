"""The run store on SQLite (the default): records, lookups, migrations, faults, blobs and output folders.
The same scenarios run on a real PostgreSQL server in tests/integration/test_store_postgres.py."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from repropack.errors import BadInput, EnvironmentProblem
from repropack.store.blobs import BlobStore, DamagedBlob
from repropack.store.outputs import restore, store_folder
from repropack.store.store import default_location
from tests.store_scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("scenario_"))
def test_sqlite_store(scenario: Callable[[str, Path], None], tmp_path: Path) -> None:
    scenario(str(tmp_path / "runs.sqlite"), tmp_path / "blobs")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    from repropack.store.database import connect
    from repropack.store.store import Store

    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EnvironmentProblem, match="not a readable SQLite database"):
        Store(connect(str(bad)), BlobStore(tmp_path / "blobs"))


def test_locations_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REPROPACK_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("REPROPACK_STORE", raising=False)
    monkeypatch.delenv("REPROPACK_STORE_BLOBS", raising=False)
    assert default_location() == (str(tmp_path / "store" / "runs.sqlite"), tmp_path / "store" / "blobs")
    monkeypatch.setenv("REPROPACK_STORE", "sqlite:///srv/lab/runs.sqlite")
    assert default_location() == ("sqlite:///srv/lab/runs.sqlite", Path("/srv/lab/blobs"))
    monkeypatch.setenv("REPROPACK_STORE", "postgresql://lab@db/runs")
    with pytest.raises(BadInput, match="REPROPACK_STORE_BLOBS is not set"):
        default_location()
    monkeypatch.setenv("REPROPACK_STORE_BLOBS", "/shared/blobs")
    assert default_location() == ("postgresql://lab@db/runs", Path("/shared/blobs"))


def test_a_password_never_reaches_a_message() -> None:
    from repropack.store.database import connect, redact

    assert redact("postgresql://lab:s3cret@db:5432/runs") == "postgresql://lab:***@db:5432/runs"
    with pytest.raises(BadInput) as caught:
        connect("mysql://lab:s3cret@db/runs")
    assert "s3cret" not in str(caught.value)


# -- blobs -------------------------------------------------------------------------------------------------
def test_blobs_are_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.put_bytes(b"hello")
    assert digest == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert blobs.put_bytes(b"hello") == digest
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [blobs.path(digest)]
    assert blobs.read(digest, "x") == b"hello"


def test_a_damaged_blob_is_named_and_never_served(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.put_bytes(b"the real bytes")
    path = blobs.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"the fake bytes")
    with pytest.raises(DamagedBlob) as caught:
        blobs.read(digest, "out.txt of run 1")
    assert digest in str(caught.value) and "out.txt of run 1" in str(caught.value)
    target = tmp_path / "restored" / "out.txt"
    with pytest.raises(DamagedBlob):
        blobs.copy_to(digest, target, "out.txt")
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half file, no temporary


def test_a_full_disk_leaves_no_partial_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = BlobStore(tmp_path / "blobs")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(EnvironmentProblem, match="No space left on device") as caught:
        blobs.put_bytes(b"x" * 1000)
    assert "Free some disk space" in str(caught.value)
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


# -- output folders ----------------------------------------------------------------------------------------
def test_store_folder_keeps_regular_files_and_skips_links_and_fifos(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    (out / "sub" / "model.bin").write_bytes(b"\0" * 10)
    (out / "host-secret").symlink_to("/etc/hostname")
    (out / "linked-dir").symlink_to("/etc")
    os.mkfifo(out / "pipe")
    blobs = BlobStore(tmp_path / "blobs")
    files, skipped = store_folder(blobs, out)
    assert [f["path"] for f in files] == ["metrics.json", "sub/model.bin"]
    assert skipped == ["host-secret", "linked-dir", "pipe"]
    restored = tmp_path / "restored"
    assert restore(blobs, [(f["path"], f["sha256"], f["size"]) for f in files], restored, "r") == 12
    assert (restored / "sub" / "model.bin").read_bytes() == b"\0" * 10


def test_restore_never_writes_outside_the_folder(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.put_bytes(b"x")
    with pytest.raises(BadInput, match="outside its folder"):
        restore(blobs, [("../escape", digest, 1)], tmp_path / "restored", "r")
    assert not (tmp_path / "escape").exists()


def test_hostname_is_what_the_lost_check_compares() -> None:
    from repropack.store.store import recorder_token

    host, pid, start = recorder_token().split(" ")
    assert host == socket.gethostname() and pid == str(os.getpid()) and start.isdigit()


def test_errors_kept_in_records_name_no_host_folders() -> None:
    from repropack.run.recorder import without_host_paths

    home = str(Path.home())
    text = f"could not write /srv/blobs/tmp (full); results still in {home}/exp/out and /srv/blobs"
    cleaned = without_host_paths(text, {f"{home}/exp/out": "OUTPUT", "/srv/blobs": "BLOBS"})
    assert cleaned == "could not write BLOBS/tmp (full); results still in OUTPUT and BLOBS"


def test_store_folder_walks_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    import sys

    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(sys.getrecursionlimit() + 200):
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    with os.fdopen(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as handle:
        handle.write("bottom")
    os.close(fd)
    (out / "top.txt").write_text("top")
    try:
        files, _skipped = store_folder(BlobStore(tmp_path / "blobs"), out)
        assert "top.txt" in [f["path"] for f in files]  # the deep file's path may pass PATH_MAX: skipped, no crash
    finally:  # pytest's own clean-up of old temporary folders recurses: leave it nothing this deep
        from repropack.run.output_folder import remove_tree

        remove_tree(out)
    assert not out.exists()

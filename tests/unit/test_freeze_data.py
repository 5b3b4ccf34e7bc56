"""Freeze datasets: per-file sha256, one digest per dataset, and where each one lands in the image."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from repropack.checksums.index import tree_digest
from repropack.errors import BadInput
from repropack.experiment.model import Dataset
from repropack.freeze.data import FrozenDataset, datasets_digest, freeze_dataset


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "train").mkdir(parents=True)
    (root / "train" / "0.png").write_bytes(b"zero")
    (root / "labels.csv").write_bytes(b"0\n")
    return root


def test_file_dataset(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(b"1,2\n")
    frozen = freeze_dataset(Dataset("points", path, embed=True))
    assert frozen.kind == "file"
    assert set(frozen.files) == {"points.csv"}
    assert frozen.files["points.csv"].sha256 == hashlib.sha256(b"1,2\n").hexdigest()
    assert frozen.mount_point == "/repro/data/points"
    assert frozen.target == "/repro/data/points/points.csv"
    assert frozen.host_root() == tmp_path
    assert frozen.sha256 == tree_digest(frozen.files)


def test_directory_dataset(folder: Path) -> None:
    frozen = freeze_dataset(Dataset("imgs", folder, embed=False))
    assert frozen.kind == "directory"
    assert list(frozen.files) == ["labels.csv", "train/0.png"]
    assert frozen.target == frozen.mount_point == "/repro/data/imgs"
    assert frozen.host_root() == folder
    assert frozen.embed is False


def test_empty_directory_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="holds no files") as caught:
        freeze_dataset(Dataset("nothing", tmp_path / "empty", embed=True))
    assert caught.value.exit_code == 2


def test_dataset_digest_ignores_the_host_location(tmp_path: Path, folder: Path) -> None:
    copy = tmp_path / "elsewhere" / "copy"
    copy.mkdir(parents=True)
    for rel in ("labels.csv", "train/0.png"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes((folder / rel).read_bytes())
    assert freeze_dataset(Dataset("d", folder, True)).sha256 == freeze_dataset(Dataset("d", copy, True)).sha256


def test_dataset_digest_follows_content(folder: Path) -> None:
    before = freeze_dataset(Dataset("d", folder, True)).sha256
    (folder / "train" / "0.png").write_bytes(b"ZERO")
    assert freeze_dataset(Dataset("d", folder, True)).sha256 != before


def frozen_pair(folder: Path, tmp_path: Path) -> dict[str, FrozenDataset]:
    single = tmp_path / "one.csv"
    single.write_bytes(b"x\n")
    return {"a": freeze_dataset(Dataset("a", folder, True)), "b": freeze_dataset(Dataset("b", single, True))}


def test_datasets_digest_is_over_each_datasets_name_and_digest(folder: Path, tmp_path: Path) -> None:
    pair = frozen_pair(folder, tmp_path)
    lines = f"{pair['a'].sha256}  a\n{pair['b'].sha256}  b\n".encode()
    assert datasets_digest(pair) == hashlib.sha256(lines).hexdigest()
    assert datasets_digest(dict(reversed(pair.items()))) == datasets_digest(pair)


def test_a_dataset_digest_is_its_index_digest(folder: Path) -> None:
    frozen = freeze_dataset(Dataset("d", folder, True))
    assert frozen.sha256 == hashlib.sha256(frozen.index()).hexdigest() == tree_digest(frozen.files)
    labels, zero = hashlib.sha256(b"0\n").hexdigest(), hashlib.sha256(b"zero").hexdigest()
    assert frozen.index().decode().splitlines() == [f"{labels}  2  labels.csv", f"{zero}  4  train/0.png"]
    assert (frozen.contents.count, frozen.contents.total_bytes) == (2, 6)


def test_datasets_digest_changes_with_a_dataset_name(folder: Path, tmp_path: Path) -> None:
    pair = frozen_pair(folder, tmp_path)
    renamed = {"c" if k == "a" else k: v for k, v in pair.items()}
    assert datasets_digest(renamed) != datasets_digest(pair)


def test_datasets_digest_of_nothing_is_the_empty_tree() -> None:
    assert datasets_digest({}) == hashlib.sha256(b"").hexdigest()


def test_a_file_name_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "latin1"
    folder.mkdir()
    (folder / "ok.txt").write_bytes(b"fine")
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "wb") as handle:  # 'café' in Latin-1
        handle.write(b"x")
    with pytest.raises(BadInput, match=r"caf\\xe9\.txt is not valid UTF-8") as caught:
        freeze_dataset(Dataset("names", folder, embed=False))
    assert caught.value.exit_code == 2 and "Rename" in caught.value.hint


def test_file_names_with_spaces_and_odd_separators_survive_the_index(tmp_path: Path) -> None:
    from repropack.verify.layer_files import expected_files

    names = [" leading.csv", "two  spaces.csv", "form\x0cfeed.csv", "trailing .csv"]
    folder = tmp_path / "odd"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(name.encode())
    frozen = freeze_dataset(Dataset(name="odd", path=folder, embed=True))
    assert sorted(frozen.contents.files) == sorted(names)
    manifest = {
        "layout": {"code": "/repro/code", "config": "/repro/config"},
        "code": {"files": {}},
        "runtime": {"files": {}},
        "config": None,
        "datasets": {
            "odd": {"index": frozen.index_path, "sha256": frozen.sha256, "embed": True, "mount": "/repro/data/odd"}
        },
    }
    expected = expected_files(manifest, {frozen.index_path: frozen.contents.data})["/repro/data/odd"]
    assert expected == {f"/repro/data/odd/{name}": hashlib.sha256(name.encode()).hexdigest() for name in names}

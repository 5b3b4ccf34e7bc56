"""Freeze datasets: sha256 per file and one digest per dataset, and where each lands in the image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repropack.errors import BadInput
from repropack.hashing import FileDigest, hash_files, list_files, tree_digest
from repropack.spec import Dataset

DATA_ROOT = "/repro/data"


@dataclass(frozen=True)
class FrozenDataset:
    name: str
    source: Path  # on this host: the file, or the folder
    embed: bool
    kind: str  # "file" or "directory"
    files: dict[str, FileDigest]  # relative to the dataset's folder in the image

    @property
    def sha256(self) -> str:
        return tree_digest(self.files)

    @property
    def mount_point(self) -> str:
        """The folder in the image that holds the dataset's files."""
        return f"{DATA_ROOT}/{self.name}"

    @property
    def target(self) -> str:
        """What ``{datasets.NAME}`` means in a command: the file itself, or the folder."""
        if self.kind == "file":
            return f"{self.mount_point}/{self.source.name}"
        return self.mount_point

    def host_root(self) -> Path:
        return self.source.parent if self.kind == "file" else self.source


def freeze_dataset(dataset: Dataset) -> FrozenDataset:
    source = dataset.path
    if source.is_file():
        names = [source.name]
        kind = "file"
        root = source.parent
    else:
        names = list_files(source)
        kind = "directory"
        root = source
        if not names:
            raise BadInput(f"Dataset '{dataset.name}': the folder {source.name} holds no files.",
                           hint="Point it at the data, or remove the dataset.")
    return FrozenDataset(name=dataset.name, source=source, embed=dataset.embed, kind=kind,
                         files=hash_files(root, names))


def datasets_digest(datasets: dict[str, FrozenDataset]) -> str:
    """One digest for the whole set: the tree digest over 'NAME/relative path' entries."""
    merged = {f"{name}/{rel}": d for name, ds in datasets.items() for rel, d in ds.files.items()}
    return tree_digest(merged)

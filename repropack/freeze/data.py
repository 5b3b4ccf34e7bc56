"""Freeze datasets: sha256 per file and one digest per dataset, and where each lands in the image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repropack.checksums.hashing import HashStats, NameNotUtf8, ProgressCallback, hash_tree
from repropack.checksums.index import FileDigest, FileIndex
from repropack.errors import BadInput
from repropack.experiment.model import Dataset
from repropack.runtime import layout

if TYPE_CHECKING:
    from repropack.checksums.statcache import StatCache


@dataclass(frozen=True)
class FrozenDataset:
    name: str
    source: Path  # on this host: the file, or the folder
    embed: bool
    kind: str  # "file" or "directory"
    contents: FileIndex  # every file's sha256 and size, by its path relative to the dataset's folder in the image
    # what freezing read, and what the stat cache spared it (not a fact about the data: not compared)
    stats: HashStats = field(default_factory=HashStats, compare=False)

    @property
    def files(self) -> dict[str, FileDigest]:
        return self.contents.files

    @property
    def sha256(self) -> str:
        """The sha256 of the dataset's index: one digest for every file's name, size and content."""
        return self.contents.sha256

    @property
    def mount_point(self) -> str:
        """The folder in the image that holds the dataset's files."""
        return layout.dataset_folder(self.name)

    @property
    def target(self) -> str:
        """What ``{datasets.NAME}`` means in a command: the file itself, or the folder."""
        if self.kind == "file":
            return f"{self.mount_point}/{self.source.name}"
        return self.mount_point

    @property
    def index_path(self) -> str:
        """Where the image holds the dataset's index, whose sha256 is the dataset's sha256."""
        return layout.index_path(self.name)

    def index(self) -> bytes:
        return self.contents.data

    def host_root(self) -> Path:
        return self.source.parent if self.kind == "file" else self.source


def freeze_dataset(
    dataset: Dataset, *, cache: StatCache | None = None, on_progress: ProgressCallback | None = None
) -> FrozenDataset:
    """Hash the dataset's files; ``cache`` vouches for files unchanged since they were last hashed."""
    source = dataset.path
    kind = "file" if source.is_file() else "directory"
    try:
        hashed = hash_tree(source, cache=cache, on_progress=on_progress)
    except OSError as error:
        where = error.filename or source
        raise BadInput(
            f"Dataset '{dataset.name}': cannot read {where} ({error.strerror or error}).",
            hint="Check that the files exist and are readable.",
        ) from None
    except NameNotUtf8 as error:
        name = error.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise BadInput(
            f"Dataset '{dataset.name}': the file name {name} is not valid UTF-8, and the dataset's index, "
            "which the image holds, names every file in UTF-8.",
            hint="Rename the file (for example with convmv), then freeze again.",
        ) from None
    if not hashed.index.count:
        raise BadInput(
            f"Dataset '{dataset.name}': the folder {source.name} holds no files.",
            hint="Point it at the data, or remove the dataset.",
        )
    return FrozenDataset(
        name=dataset.name, source=source, embed=dataset.embed, kind=kind, contents=hashed.index, stats=hashed.stats
    )


def datasets_digest(datasets: dict[str, FrozenDataset]) -> str:
    """One digest for the whole set: the sha256 of 'DATASET_SHA256  NAME' lines, sorted by name."""
    lines = "".join(f"{datasets[name].sha256}  {name}\n" for name in sorted(datasets))
    return hashlib.sha256(lines.encode()).hexdigest()

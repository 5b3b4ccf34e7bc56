"""`repropack base build NAME`: make a catalog base image locally, from Debian's packages."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from repropack.bases.bootstrap import import_changes, make_rootfs_tar
from repropack.bases.catalog import lookup
from repropack.engine.client import Engine
from repropack.errors import BadInput


def build_base(name: str, on_line: Callable[[str], None]) -> str:
    """Bootstrap the root filesystem, import it as the catalog's reference; returns the image id."""
    entry = lookup(name)
    if entry.recipe is None:
        raise BadInput(
            f"The base '{name}' is not made locally; it is pulled from {entry.reference}.",
            hint="Local bases: repropack base list (the ones marked 'made locally').",
        )
    engine = Engine.connect()
    with tempfile.TemporaryDirectory(prefix="repropack-base-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        on_line(f"bootstrapping {name} from Debian's packages (a few minutes)")
        make_rootfs_tar(entry.recipe, tarball, on_output=on_line)
        on_line(f"importing {tarball.stat().st_size / 2**20:.0f} MiB as {entry.reference}")
        return engine.import_rootfs(tarball, entry.reference, import_changes(entry.python, entry.recipe))

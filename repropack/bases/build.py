"""`repropack base build NAME`: make a catalog base image locally, from Debian's packages.

An existing base is kept (``--force`` makes it again). debootstrap's few hundred lines go to a log file,
shown in the error when the bootstrap fails (``--verbose`` streams them too)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repropack.bases.bootstrap import import_changes, make_rootfs_tar
from repropack.bases.catalog import lookup
from repropack.engine.client import Engine
from repropack.errors import BadInput, EnvironmentProblem


@dataclass(frozen=True)
class BaseBuilt:
    image_id: str
    reference: str
    built: bool  # False: it was there already
    seconds: float
    log: Path | None


def build_base(
    name: str,
    on_line: Callable[[str], None],
    *,
    force: bool = False,
    log: Path | None = None,
    verbose: bool = False,
) -> BaseBuilt:
    """Bootstrap the root filesystem and import it as the catalog's reference, unless it exists."""
    entry = lookup(name)
    if entry.recipe is None:
        raise BadInput(
            f"The base '{name}' is not made locally; it is pulled from {entry.reference}.",
            hint="Local bases: repropack base list (the ones marked 'made locally').",
        )
    engine = Engine.connect()
    existing = engine.image_id(entry.reference)
    if existing is not None and not force:
        return BaseBuilt(existing, entry.reference, False, 0.0, None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="repropack-base-") as scratch:
        log_path = log or Path(scratch) / "debootstrap.log"
        tarball = Path(scratch) / "rootfs.tar"
        on_line(f"bootstrapping {name} from Debian's packages (a few minutes; log: {log_path})")
        with log_path.open("w") as handle:

            def record(line: str) -> None:
                handle.write(line + "\n")
                if verbose:
                    on_line(line)

            try:
                make_rootfs_tar(entry.recipe, tarball, on_output=record)
            except EnvironmentProblem as exc:
                handle.flush()
                tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()][-5:]
                if not tail or verbose:
                    raise
                said = " | ".join(tail)
                raise EnvironmentProblem(f"{exc.message} debootstrap's last lines: {said}", hint=exc.hint) from None
        on_line(f"importing {tarball.stat().st_size / 2**20:.0f} MiB as {entry.reference}")
        image_id = engine.import_rootfs(tarball, entry.reference, import_changes(entry.python, entry.recipe))
    return BaseBuilt(image_id, entry.reference, True, time.monotonic() - started, log)

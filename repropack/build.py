"""The build pipeline: spec -> freeze -> render -> context -> engine build -> tag.

Also the dry run (``freeze``), which writes the Dockerfile and manifest and needs no Docker engine.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repropack.canonical import atomic_write
from repropack.engine import Engine
from repropack.errors import EnvironmentProblem
from repropack.freeze import Frozen, freeze
from repropack.spec import load_spec


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tag: str
    manifest_digest: str
    lockfile: str
    lock_created: bool


@dataclass(frozen=True)
class FreezeResult:
    output: Path
    files: tuple[str, ...]
    manifest_digest: str
    base_resolved: bool


def default_tag(frozen: Frozen) -> str:
    """NAME:COMMIT12, with the diff's hash added when a dirty tree was shipped."""
    suffix = f"-dirty-{frozen.code.diff_sha256[:8]}" if frozen.code.diff_sha256 else ""
    return f"{frozen.spec.name}:{frozen.code.commit[:12]}{suffix}"


def build_image(
    spec_path: Path,
    *,
    allow_dirty: bool,
    tag: str | None,
    on_line: Callable[[str], None],
    on_note: Callable[[str], None],
) -> BuildResult:
    from repropack.context import write_context
    from repropack.freeze.wheels import ensure_wheels
    from repropack.render import render_dockerfile

    spec = load_spec(spec_path)
    engine = Engine.connect()
    frozen = freeze(spec, allow_dirty=allow_dirty, engine=engine, lock_missing_to=spec.lockfile)
    if frozen.lock_created:
        on_note(f"wrote {spec.lockfile.name} ({len(frozen.lock.packages)} packages, pinned with hashes); "
                "commit it with the experiment")
    wheels = ensure_wheels(frozen.lock)
    dockerfile = render_dockerfile(frozen)
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryFile(prefix="repropack-context-") as context:
        write_context(frozen, dockerfile, wheels, context)
        context.seek(0)
        image_id = engine.build(context, {"org.opencontainers.image.created": created}, on_line)
    final_tag = tag or default_tag(frozen)
    engine.tag(image_id, final_tag)
    return BuildResult(image_id, final_tag, frozen.digest, spec.lockfile.name, frozen.lock_created)


def freeze_to(spec_path: Path, output: Path, *, allow_dirty: bool) -> FreezeResult:
    """Write OUTPUT/Dockerfile and OUTPUT/manifest.json (and the lock, when the experiment has none).

    Nothing is written outside ``output``, and nothing at all unless every step succeeded.
    """
    from repropack.render import render_dockerfile

    spec = load_spec(spec_path)
    try:
        engine: Engine | None = Engine.connect()
    except EnvironmentProblem:
        engine = None  # a dry run needs no engine; the base is then recorded by reference only
    with tempfile.TemporaryDirectory(prefix="repropack-freeze-") as scratch:
        scratch_lock = Path(scratch) / spec.lockfile.name
        frozen = freeze(spec, allow_dirty=allow_dirty, engine=engine, lock_missing_to=scratch_lock)
        dockerfile = render_dockerfile(frozen)
        written = ["Dockerfile", "manifest.json"]
        if frozen.lock_created:
            output.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(scratch_lock, output / f".{scratch_lock.name}.tmp")
            (output / f".{scratch_lock.name}.tmp").replace(output / scratch_lock.name)
            written.append(scratch_lock.name)
        atomic_write(output / "manifest.json", frozen.manifest_bytes)
        atomic_write(output / "Dockerfile", dockerfile.encode())
    return FreezeResult(output, tuple(sorted(written)), frozen.digest, frozen.base.image_id is not None)

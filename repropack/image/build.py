"""The build pipeline, one step after the other: spec -> freeze -> seal the manifest -> render the two
Dockerfiles -> the environment image (once per lockfile and base) -> context -> engine build -> tag.

Also the dry run (``freeze``), which writes the two Dockerfiles and the manifest and needs no Docker engine.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repropack.checksums.hashing import HashStats, ProgressCallback
from repropack.engine.client import Engine
from repropack.errors import BadInput, EnvironmentProblem
from repropack.experiment.model import NAME_COMPONENT, TAG_NAME
from repropack.experiment.validate import load_spec
from repropack.files import atomic_write
from repropack.freeze import Frozen, freeze
from repropack.image.context import write_environment_context, write_image_context
from repropack.image.dockerfile import Dockerfiles, render_dockerfiles
from repropack.manifest.seal import seal_frozen

if TYPE_CHECKING:
    from repropack.freeze.wheelhouse import WheelProgress


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tag: str
    manifest_digest: str
    lockfile: str
    lock_created: bool
    hashed: HashStats = field(default_factory=HashStats)  # dataset files read, and spared by the stat cache


@dataclass(frozen=True)
class FreezeResult:
    output: Path
    files: tuple[str, ...]
    manifest_digest: str
    base_resolved: bool
    hashed: HashStats = field(default_factory=HashStats)  # dataset files read, and spared by the stat cache


# NAME[:TAG], NAME possibly with a registry host (and port) and path components, as Docker accepts it.
TAG = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{NAME_COMPONENT}(?:/{NAME_COMPONENT})*(?::{TAG_NAME})?$")


def check_tag(tag: str) -> None:
    if not TAG.match(tag):
        raise BadInput(
            f"--tag '{tag}' is not an image name like spiral-mlp:v1 (lower-case name, optional :TAG).",
            hint="Use lower-case letters, digits and '.', '_' or '-'; no spaces.",
        )


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
    on_progress: ProgressCallback | None = None,
    allowed_secrets: frozenset[str] = frozenset(),
    before_tag: Callable[[], None] = lambda: None,
    on_phase: Callable[[str], None] = lambda name: None,
    on_wheels: WheelProgress | None = None,
    test_image: Callable[[str], None] | None = None,
) -> BuildResult:
    """Freeze and build; ``on_progress(bytes hashed, bytes to hash)`` follows the hashing of the datasets.

    Tagging is the commit point: ``before_tag`` runs just before it (the command line stops taking Ctrl-C
    there, so that an interrupted build never exits non-zero with its tag in place)."""
    spec = load_spec(spec_path)
    if tag is not None:
        check_tag(tag)
    # Bad input (exit 2) must not hide behind an unreachable engine (exit 3): without an engine, freeze
    # anyway, so the spec, code, lockfile, config and data are all checked, and only then give up.
    try:
        engine: Engine | None = Engine.connect()
        unreachable: EnvironmentProblem | None = None
    except EnvironmentProblem as problem:
        engine, unreachable = None, problem
    on_phase("freeze")
    frozen = freeze(
        spec,
        allow_dirty=allow_dirty,
        engine=engine,
        lock_missing_to=spec.lockfile,
        on_progress=on_progress,
        allowed_secrets=allowed_secrets,
    )
    testing = test_image is not None and "test" in spec.commands
    sealed = seal_frozen(frozen, tests_at_build=testing)
    dockerfiles = render_dockerfiles(sealed)
    if engine is None:
        assert unreachable is not None
        raise unreachable
    for warning in seed_warnings(frozen):
        on_note(warning)
    if frozen.lock_created:
        on_note(
            f"wrote {spec.lockfile.name} ({len(frozen.lock.packages)} packages, pinned with hashes); "
            "commit it with the experiment"
        )
    ensure_environment(engine, frozen, dockerfiles, on_line, on_phase, on_wheels)
    on_phase("image")
    created = creation_time(frozen.code.committed)
    with tempfile.TemporaryFile(prefix="repropack-context-") as context:
        write_image_context(sealed, dockerfiles.image, context)
        context.seek(0)
        image_id = engine.build(context, {"org.opencontainers.image.created": created}, on_line)
    if testing and test_image is not None:
        on_phase("test")
        try:
            test_image(image_id)  # the experiment's own tests, in the new image: a failure leaves no tag
        except BaseException:
            if not engine.inspect(image_id).get("RepoTags"):  # never an image a tag still names
                engine.remove_image(image_id)
            raise
    final_tag = tag or default_tag(frozen)
    before_tag()
    engine.tag(image_id, final_tag)
    return BuildResult(image_id, final_tag, sealed.digest, spec.lockfile.name, frozen.lock_created, frozen.hash_stats)


def seed_warnings(frozen: Frozen) -> list[str]:
    """A command whose seed reaches neither its arguments ({seed}) nor its code (REPRO_SEED) runs the same
    whatever --seed says: said at build, before anyone trusts a spread over seeds."""
    if any(b"REPRO_SEED" in file.data for file in frozen.code.files):
        return []
    unseeded = [
        name
        for name, given in sorted(frozen.spec.commands.items())
        if name != "test" and not any("{seed}" in step for step in (given if isinstance(given, list) else [given]))
    ]
    return [
        f"warning: the command '{name}' takes no {{seed}} and its code never reads REPRO_SEED: --seed reaches it "
        "only through the global generators the runtime seeds (random, NumPy, torch)"
        for name in unseeded
    ]


def creation_time(committed: int) -> str:
    """The image's ``created`` label: ``$SOURCE_DATE_EPOCH`` when set (the reproducible-builds convention),
    else the commit's time, never the clock's, so that building an unchanged commit again is a no-op that
    gives the same image id."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    seconds = int(value) if value.isascii() and value.isdigit() else committed
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ensure_environment(
    engine: Engine,
    frozen: Frozen,
    dockerfiles: Dockerfiles,
    on_line: Callable[[str], None],
    on_phase: Callable[[str], None] = lambda name: None,
    on_wheels: WheelProgress | None = None,
) -> str:
    """The image holding the locked environment, built (and tagged, once complete) when missing.

    It is keyed by a digest of the lockfile, the base and the recipe, so a code edit reuses it and the
    wheels are neither downloaded nor sent to the engine again."""
    from repropack.freeze.wheelhouse import ensure_wheels

    tag = dockerfiles.environment_tag
    if engine.image_id(tag) is not None:
        return tag
    on_phase("wheels")
    wheels = ensure_wheels(frozen.lock, on_wheels)
    on_phase("environment")
    with tempfile.TemporaryFile(prefix="repropack-environment-") as context:
        write_environment_context(dockerfiles.environment, frozen.lock.path.read_bytes(), wheels, context)
        context.seek(0)
        image_id = engine.build(context, {"io.repropack.environment.lock": f"sha256:{frozen.lock.sha256}"}, on_line)
    engine.tag(image_id, tag)
    return tag


def freeze_to(
    spec_path: Path,
    output: Path,
    *,
    allow_dirty: bool,
    on_progress: ProgressCallback | None = None,
    allowed_secrets: frozenset[str] = frozenset(),
) -> FreezeResult:
    """Write OUTPUT/Dockerfile, OUTPUT/environment.Dockerfile and OUTPUT/manifest.json (and the lock, when
    the experiment has none).

    Nothing is written outside ``output``, and nothing at all unless every step succeeded.
    """
    spec = load_spec(spec_path)
    if output.exists() and not output.is_dir():
        raise BadInput(f"--output {output} is a file, not a folder.", hint="Name a folder (it is created if missing).")
    try:
        engine: Engine | None = Engine.connect()
    except EnvironmentProblem:
        engine = None  # a dry run needs no engine; the base is then recorded by reference only
    with tempfile.TemporaryDirectory(prefix="repropack-freeze-") as scratch:
        scratch_lock = Path(scratch) / spec.lockfile.name
        frozen = freeze(
            spec,
            allow_dirty=allow_dirty,
            engine=engine,
            lock_missing_to=scratch_lock,
            on_progress=on_progress,
            allowed_secrets=allowed_secrets,
        )
        sealed = seal_frozen(frozen)
        dockerfiles = render_dockerfiles(sealed)
        written = ["Dockerfile", "environment.Dockerfile", "manifest.json"]
        if frozen.lock_created:
            output.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(scratch_lock, output / f".{scratch_lock.name}.tmp")
            (output / f".{scratch_lock.name}.tmp").replace(output / scratch_lock.name)
            written.append(scratch_lock.name)
        atomic_write(output / "manifest.json", sealed.manifest_bytes)
        atomic_write(output / "Dockerfile", dockerfiles.image.encode())
        atomic_write(output / "environment.Dockerfile", dockerfiles.environment.encode())
    return FreezeResult(
        output, tuple(sorted(written)), sealed.digest, frozen.base.image_id is not None, frozen.hash_stats
    )

"""Make a local base image's root filesystem as a tar file, with debootstrap and without Docker.

A local base (``recipe:`` in base_images/catalog.yaml) is built from Debian's own packages, so it needs no
container registry: that is what lets tests and demos run on a machine that cannot pull images, and what lets
an air-gapped cluster make its base from a local Debian mirror. The Docker side (``docker import`` of the tar
with :func:`import_changes`) is the engine module's job; this module only makes the tar.

The tar is made to be as repeatable as the packages allow: entries in sorted order, numeric owners only,
modification times clamped to SOURCE_DATE_EPOCH, logs and caches that differ per run removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from importlib.resources import files
from pathlib import Path

from repropack.bases import tarball
from repropack.errors import BadInput, EnvironmentProblem
from repropack.files import atomic_file

DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "REPROPACK_DEBIAN_MIRROR"

# Upper bound for every modification time in the tar (2024-01-01T00:00:00Z); the SOURCE_DATE_EPOCH
# environment variable, when set, takes its place (the reproducible-builds.org convention).
SOURCE_DATE_EPOCH = 1704067200

# The PATH that Debian's images use; set explicitly because `docker import` records no environment.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# recipe name -> Debian suite. The packages are data: base_images/<recipe>/packages.txt.
_SUITES = {"debian-bookworm": "bookworm"}

# Kept out of the image (after debootstrap) and out of later apt installs: documentation, man pages and
# translations are not needed to run an experiment. Copyright files stay: they are the packages' licences.
_DPKG_SLIM_CONFIG = """\
# Written by repropack: keep documentation out of the image (copyright files stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def source_date_epoch() -> int:
    """The clamp for modification times: $SOURCE_DATE_EPOCH when it is a valid integer, else the fixed one."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else SOURCE_DATE_EPOCH


def recipe_packages(recipe: str) -> list[str]:
    """The packages a recipe adds to debootstrap's minbase, from base_images/<recipe>/packages.txt."""
    if recipe not in _SUITES:
        known = ", ".join(sorted(_SUITES))
        raise BadInput(f"Unknown base image recipe {recipe!r}: the known recipes are {known}.")
    text = files("repropack.base_images").joinpath(recipe, "packages.txt").read_text(encoding="utf-8")
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def base_labels(recipe: str, python: str) -> dict[str, str]:
    """Labels for an imported local base, so the image says what made it."""
    return {
        "io.repropack.base.recipe": recipe,
        "io.repropack.base.python": python,
        "io.repropack.base.suite": _SUITES.get(recipe, ""),
    }


def import_changes(python: str, recipe: str = "debian-bookworm") -> list[str]:
    """Dockerfile instructions for ``docker import --change`` (or the SDK's ``changes=``) of a rootfs tar."""
    labels = sorted(base_labels(recipe, python).items())
    label_changes = [f"LABEL {key}={json.dumps(value)}" for key, value in labels]
    return [f"ENV PATH={IMAGE_PATH}", "ENV LANG=C.UTF-8", *label_changes, 'CMD ["/bin/bash"]']


def make_rootfs_tar(
    recipe: str,
    dest: Path,
    *,
    mirror: str | None = None,
    workdir: Path | None = None,
    on_output: Callable[[str], None] | None = None,
) -> None:
    """Run debootstrap for ``recipe``, trim the result, and write it to ``dest`` as a tar (atomically).

    ``mirror`` defaults to $REPROPACK_DEBIAN_MIRROR, then to deb.debian.org. ``workdir`` holds the temporary
    root filesystem (default: the system temp folder; it must allow executables and device files).
    ``on_output`` receives debootstrap's output lines, for a progress display. Needs root.
    """
    suite = _SUITES.get(recipe, "")
    packages = recipe_packages(recipe)
    dest = Path(dest)
    if not dest.parent.is_dir():
        raise BadInput(f"Cannot write the root filesystem tar to {dest}: the folder {dest.parent} does not exist.")
    debootstrap = _find_debootstrap()
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "Making a local base image needs root: debootstrap installs packages into a chroot with their "
            "real file owners. Run the command as root (for example with sudo)."
        )
    mirror = mirror or os.environ.get(MIRROR_ENV) or DEFAULT_DEBIAN_MIRROR
    root = Path(tempfile.mkdtemp(prefix=f"repropack-{recipe}-", dir=workdir))
    try:
        _run_debootstrap(debootstrap, suite, packages, root, mirror, recipe, on_output)
        _trim(root, source_date_epoch())
        _refuse_if_mounted(root)
        _write_tar_atomically(root, dest, source_date_epoch())
    except BaseException:
        _remove_rootfs(root, strict=False)  # the original error is the one to report
        raise
    _remove_rootfs(root, strict=True)


def _find_debootstrap() -> str:
    # debootstrap lives in /usr/sbin, which a non-root PATH often lacks.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("debootstrap", path=search)
    if found is None:
        raise EnvironmentProblem(
            "debootstrap is not installed, and it is needed to make a local base image from Debian's "
            "packages. Install it with `apt-get install debootstrap` (Debian or Ubuntu)."
        )
    return found


def _run_debootstrap(
    debootstrap: str,
    suite: str,
    packages: list[str],
    root: Path,
    mirror: str,
    recipe: str,
    on_output: Callable[[str], None] | None,
) -> None:
    command = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(packages)}",
        "--components=main",
        suite,
        str(root),
        mirror,
    ]
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), "/usr/sbin", "/sbin"])
    tail: deque[str] = deque(maxlen=50)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        errors="replace",
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                if on_output is not None:
                    on_output(line)
            returncode = process.wait()
        except BaseException:
            # Let debootstrap run its exit trap (it unmounts /proc and /sys in the target) before cleanup.
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    if returncode != 0:
        errors = [line for line in tail if line.startswith("E:")]
        detail = (errors or [line for line in tail if line.strip()] or ["no output"])[-1].strip()
        raise EnvironmentProblem(
            f"debootstrap could not make the {recipe} root filesystem from {mirror} (exit {returncode}): "
            f"{detail}. Check that this machine can reach the mirror, or set {MIRROR_ENV} to a Debian mirror "
            "it can reach (a local mirror such as file:///srv/debian works on an air-gapped machine)."
        )


def _empty_folder(
    folder: Path, keep: Callable[[Path], bool] = lambda path: False, *, keep_folders: bool = False
) -> None:
    """Delete what is inside ``folder`` (not the folder itself), except paths ``keep`` says to keep.

    Sub-folders are emptied the same way and removed when empty, unless ``keep_folders``. A symlink is never
    followed: it is deleted or kept like a file.
    """
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in sorted(folder.iterdir()):
        if keep(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            _empty_folder(entry, keep, keep_folders=keep_folders)
            if not keep_folders:
                with suppress(OSError):  # not empty: something inside was kept
                    entry.rmdir()
        else:
            entry.unlink()


def _trim(root: Path, epoch: int) -> None:
    """Remove what is not needed to run, and what differs from one debootstrap run to the next."""
    # Package downloads, indexes and caches: apt rebuilds them on `apt-get update`.
    _empty_folder(root / "var/lib/apt/lists", keep=lambda p: p.name == "partial")
    _empty_folder(root / "var/cache/apt", keep=lambda p: p.name == "partial")
    _empty_folder(root / "var/cache/ldconfig")
    for pattern in ("var/cache/debconf/*-old", "var/lib/dpkg/*-old", "etc/*-"):
        for backup in root.glob(pattern):  # the previous copies of dpkg's and shadow's files
            backup.unlink()
    # Logs of this run (with its timestamps), scratch space, device nodes (Docker makes its own /dev).
    _empty_folder(root / "var/log", keep_folders=True)
    for folder in ("tmp", "var/tmp", "dev"):
        _empty_folder(root / folder)
    # Documentation, except the copyright files (the packages' licences) and glibc's locale.alias.
    _empty_folder(root / "usr/share/doc", keep=lambda p: p.name == "copyright" or p.is_symlink())
    _empty_folder(root / "usr/share/locale", keep=lambda p: p.name == "locale.alias")
    for folder in ("usr/share/man", "usr/share/info"):
        _empty_folder(root / folder)
    dpkg_config = root / "etc/dpkg/dpkg.cfg.d/repropack-slim"
    dpkg_config.parent.mkdir(parents=True, exist_ok=True)
    dpkg_config.write_text(_DPKG_SLIM_CONFIG, encoding="utf-8")
    # debootstrap copies the host's name and resolver settings in; Docker supplies both at run time.
    (root / "etc/hostname").write_text("localhost\n", encoding="utf-8")
    for host_file in ("etc/resolv.conf", "etc/machine-id"):
        if (root / host_file).is_file() and not (root / host_file).is_symlink():
            (root / host_file).write_text("", encoding="utf-8")
    _clamp_shadow_dates(root / "etc/shadow", epoch)


def _clamp_shadow_dates(shadow: Path, epoch: int) -> None:
    """Field 3 of /etc/shadow is 'last password change' in days: the day of the build, unless clamped."""
    if not shadow.is_file():
        return
    days = str(epoch // 86400)
    lines = []
    for line in shadow.read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2]:
            fields[2] = days
        lines.append(":".join(fields))
    mode = shadow.stat().st_mode
    shadow.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    shadow.chmod(mode)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (deepest first), from /proc/self/mountinfo."""
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    prefix = str(root.resolve())
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _refuse_if_mounted(root: Path) -> None:
    # A /proc or /dev still mounted in the chroot would put the host's files into the tar.
    mounted = _mounts_under(root)
    if mounted:
        raise EnvironmentProblem(
            f"debootstrap left {', '.join(mounted)} mounted, so the root filesystem cannot be packed safely. "
            "Unmount them (umount PATH) and run the command again."
        )


def _remove_rootfs(root: Path, *, strict: bool) -> None:
    """Delete the temporary root filesystem, never following a mount into the host's files."""
    for point in _mounts_under(root):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    still_mounted = _mounts_under(root)
    if still_mounted:
        if strict:
            raise EnvironmentProblem(
                f"Left the temporary root filesystem {root} in place because {', '.join(still_mounted)} is "
                f"still mounted. Unmount it (umount PATH), then delete {root}."
            )
        return
    shutil.rmtree(root, ignore_errors=not strict)


def _sorted_tree(folder: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, name in the tar) for everything below ``folder``: depth first, in name order."""
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        arcname = f"{prefix}{entry.name}"
        yield entry.path, arcname
        if entry.is_dir(follow_symlinks=False):  # a symlink to a folder is stored as a link
            yield from _sorted_tree(entry.path, f"{arcname}/")


def _write_tar_atomically(root: Path, dest: Path, epoch: int) -> None:
    with atomic_file(dest) as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname in _sorted_tree(str(root)):
            info = tar.gettarinfo(path, arcname)
            if info is None:  # a socket: tar cannot hold one, and an image does not need one
                continue
            # the files' own numeric owners (debootstrap installs with them), times clamped to the epoch
            tarball.normalize(info, mtime=epoch, clamp=True, root_owned=False)
            tarball.add(tar, info, Path(path) if info.isreg() else None)

"""Freeze the experiment's code: the git commit and the exact tree at it, limited to the spec's folder.

Only committed content is shipped (the working tree may hold anything). A modified tracked file makes
the freeze refuse unless ``allow_dirty``; then the working-tree versions of tracked files are shipped and
the diff and its hash are recorded. Untracked files never ship. All git calls go through :func:`git`.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from repropack.errors import BadInput, EnvironmentProblem


@dataclass(frozen=True)
class CodeFile:
    path: str  # relative to the experiment folder, POSIX
    executable: bool
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class CodeSnapshot:
    commit: str
    folder: str  # the experiment folder relative to the repository root ("." for the root)
    source: str | None  # the origin remote, without credentials; None when it is local or absent
    files: tuple[CodeFile, ...]
    diff: str | None  # only with allow_dirty and a modified tree
    committed: int = 0  # the commit's time (seconds since the epoch): the image's creation time

    @property
    def diff_sha256(self) -> str | None:
        return hashlib.sha256(self.diff.encode()).hexdigest() if self.diff is not None else None


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run one git command in ``repo``; a missing git is an environment problem."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            input=stdin,
            capture_output=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise EnvironmentProblem("git is not installed.", hint="Install git (apt-get install git).") from None
    if done.returncode != 0:
        raise _GitFailed(done.stderr.decode(errors="replace").strip())
    return done.stdout


class _GitFailed(Exception):
    pass


def snapshot(folder: Path, *, allow_dirty: bool, exclude: tuple[Path, ...] = ()) -> CodeSnapshot:
    """The code of the experiment in ``folder`` at HEAD (``exclude``: paths that ship as data instead)."""
    root, prefix = _locate(folder)
    commit = _head(root, folder)
    excluded = {_relative(path, folder) for path in exclude}
    # Data is hashed and shipped on its own: an edited dataset is not a code change (nor a diff to record).
    scope = _pathspecs(prefix, excluded)
    diff = _dirty_diff(root, scope)
    # A dirty tree ships what git tracks now (the index: staged additions and renames included), so the
    # recorded diff describes exactly the difference between the commit and the shipped files.
    listing = _index(root, prefix) if diff else _tree(root, commit, prefix)
    listing = {p: e for p, e in listing.items() if not _under_any(p, excluded)}
    if diff and not allow_dirty:
        changed = _changed_files(root, scope)
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise BadInput(
            f"The experiment's code has uncommitted changes ({shown}); repropack ships a commit, "
            "so the image would not match what you have.",
            hint="Commit them, or pass --allow-dirty to ship the working tree and record the diff.",
        )
    if not listing:
        where = prefix or "the repository's root"
        raise BadInput(
            f"Nothing in the experiment folder {folder} is committed (git tracks no file under {where}), so "
            "there is no code to ship.",
            hint=f"Commit the experiment: git add {prefix or '.'} && git commit.",
        )
    files = _read_files(root, commit, prefix, listing, working_tree=bool(diff))
    committed = int(git(root, "show", "-s", "--format=%ct", commit).decode().strip() or 0)
    return CodeSnapshot(
        commit=commit, folder=prefix or ".", source=_source(root), files=files, diff=diff or None, committed=committed
    )


def _locate(folder: Path) -> tuple[Path, str]:
    try:
        top = git(folder, "rev-parse", "--show-toplevel").decode().strip()
    except _GitFailed:
        raise BadInput(
            f"The experiment folder {folder} is not inside a git repository; repropack records the code by commit.",
            hint="Run 'git init', then 'git add . && git commit', in the experiment's repository first.",
        ) from None
    root = Path(top).resolve()
    prefix = folder.resolve().relative_to(root).as_posix()
    return root, "" if prefix == "." else prefix


def _head(root: Path, folder: Path) -> str:
    try:
        return git(root, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()
    except _GitFailed:
        raise BadInput(
            f"The git repository holding the experiment folder {folder} has no commits yet.",
            hint="Commit the experiment (git add . && git commit) and run again.",
        ) from None


def _tree(root: Path, commit: str, prefix: str) -> dict[str, bool]:
    """Files of ``commit`` under ``prefix``: relative path -> executable. Symlinks and submodules skip."""
    args = ["ls-tree", "-r", "-z", "--full-tree", commit]
    if prefix:
        args += ["--", prefix]
    return _files(git(root, *args), prefix)  # records: "MODE blob OBJECT\tPATH"


def _index(root: Path, prefix: str) -> dict[str, bool]:
    """Files git tracks now under ``prefix``: relative path -> executable. Symlinks and submodules skip."""
    return _files(git(root, "ls-files", "-s", "-z", "--", f":(literal){prefix or '.'}"), prefix)


def _files(listing: bytes, prefix: str) -> dict[str, bool]:
    """Regular files of a NUL-separated git listing whose records start with the mode ("MODE ...\tPATH"),
    as path relative to ``prefix`` -> executable."""
    entries: dict[str, bool] = {}
    for record in listing.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        mode = meta.decode().split(" ")[0]
        if not record or mode not in ("100644", "100755"):
            continue
        rel = path.decode()
        if prefix:
            rel = PurePosixPath(rel).relative_to(prefix).as_posix()
        entries[rel] = mode == "100755"
    return dict(sorted(entries.items()))


def _pathspecs(prefix: str, excluded: set[str]) -> list[str]:
    """The experiment folder minus the excluded paths, as literal git pathspecs."""
    base = f"{prefix}/" if prefix else ""
    return [f":(literal){prefix or '.'}"] + [
        f":(exclude,literal){base}{rel}" for rel in sorted(excluded) if not rel.startswith("\0")
    ]


def _read_files(
    root: Path, commit: str, prefix: str, listing: dict[str, bool], *, working_tree: bool
) -> tuple[CodeFile, ...]:
    if not listing:
        return ()
    full = [f"{prefix}/{p}" if prefix else p for p in listing]
    if working_tree:
        blobs = [_working_blob(root / name) for name in full]
    else:
        blobs = _cat_blobs(root, [f"{commit}:{name}" for name in full])
    return tuple(
        CodeFile(path=rel, executable=executable, data=data)
        for (rel, executable), data in zip(listing.items(), blobs, strict=True)
        if data is not None
    )


def _working_blob(path: Path) -> bytes | None:
    """With allow_dirty a tracked file may have been deleted; it then does not ship."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _cat_blobs(root: Path, specs: list[str]) -> list[bytes | None]:
    out = git(root, "cat-file", "--batch", stdin="".join(s + "\n" for s in specs).encode())
    blobs: list[bytes | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        size = int(header[2])
        blobs.append(out[end + 1 : end + 1 + size])
        pos = end + 1 + size + 1
    return blobs


def _dirty_diff(root: Path, scope: list[str]) -> str:
    return git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--", *scope).decode(errors="replace")


def _changed_files(root: Path, scope: list[str]) -> list[str]:
    return [line for line in git(root, "diff", "HEAD", "--name-only", "--", *scope).decode().splitlines() if line]


def _source(root: Path) -> str | None:
    """The origin URL when it names a remote host; credentials and local paths never leave the host."""
    try:
        url = git(root, "config", "--get", "remote.origin.url").decode().strip()
    except _GitFailed:
        return None
    if not url or url.startswith(("/", ".", "file:")) or ("://" not in url and ":" not in url):
        return None
    return re.sub(r"(?<=://)[^/]*@", "", url, count=1)  # up to the last '@' of the authority: a password may hold one


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return "\0outside"


def _under_any(path: str, prefixes: set[str]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)

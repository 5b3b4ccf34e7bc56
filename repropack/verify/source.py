"""``verify --source GIT_REPO``: is the image's code the recorded commit's tree in a repository the
reader trusts? Integrity proves /repro/code is the manifest's ``code.files``; this proves ``code.files``
is the tree of ``code.commit`` under ``code.folder``, by the rules freeze ships by. All git calls go
through :func:`_git`; nothing here reads the image or runs anything from it. See docs/architecture.md."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from repropack.checksums.index import FileDigest, tree_digest
from repropack.errors import BadInput, EnvironmentProblem
from repropack.freeze.code import _files as shipped_files  # freeze's own rule for which tree entries ship
from repropack.runtime.records import Manifest
from repropack.verify.checks import MAX_NAMED, Check

NAME = "source"
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a full object id (SHA-1 or SHA-256 repositories)
REMOTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://.+|[^/:]+:.+")  # a URL, or scp-like HOST:PATH
BATCH_BYTES = 64 << 20  # blobs read per git cat-file call, at most (one larger blob is read alone)
# Variables that would point git at another repository than the one named.
GIT_REDIRECTS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
)
HINT = "Pass the folder of a clone of the experiment's repository, or a URL that 'git clone' accepts."


class GitFailed(Exception):
    """git answered with an error; the message is its first line of stderr."""


@dataclass(frozen=True)
class TreeFile:
    executable: bool
    oid: str  # the blob's object id
    size: int


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run one git command in ``repo``; its stdout. The one place this module talks to git."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_REDIRECTS}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0")  # never wait for a password that nobody types
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False, env=env)
    except FileNotFoundError:
        raise EnvironmentProblem("git is not installed.", hint="Install git (apt-get install git).") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitFailed(lines[0].removeprefix("fatal: ") if lines else f"git {args[0]} failed")
    return done.stdout


def display_name(repository: str) -> str:
    """How reports name the repository: a URL without credentials, a local one by its folder's name."""
    if not Path(repository).is_dir() and REMOTE.fullmatch(repository):
        return re.sub(r"(?<=://)[^/]*@", "", repository, count=1)
    return Path(repository).resolve().name or repository


def check_source(repository: str) -> None:
    """Bad input unless ``repository`` is a git repository here or one git can reach (checked before Docker)."""
    if Path(repository).is_dir():
        _local(repository)
        return
    _remote(repository)
    try:
        _git(Path.cwd(), "ls-remote", "--quiet", "--", repository, "HEAD")
    except GitFailed as failed:
        raise BadInput(
            f"--source {display_name(repository)}: git cannot reach that repository ({failed}).",
            hint="Check the address and your access to it (git ls-remote URL).",
        ) from None


def _remote(repository: str) -> None:
    if not REMOTE.fullmatch(repository):
        raise BadInput(
            f"--source {repository}: there is no such folder, and it is not a URL git could fetch.", hint=HINT
        )


def _local(repository: str) -> Path:
    root = Path(repository)
    try:
        _git(root, "rev-parse", "--git-dir")
    except GitFailed as failed:
        raise BadInput(f"--source {repository} is not a git repository ({failed}).", hint=HINT) from None
    return root


@contextlib.contextmanager
def _opened(repository: str, commit: str) -> Iterator[Path]:
    """The repository to read: a local one as it is, any other cloned (bare) into a temporary folder."""
    if Path(repository).is_dir():
        yield _local(repository)
        return
    _remote(repository)
    with tempfile.TemporaryDirectory(prefix="repropack-source-") as scratch:
        try:
            _git(Path(scratch), "clone", "--bare", "--quiet", "--", repository, "repo")
        except GitFailed as failed:
            raise BadInput(f"--source {display_name(repository)}: git cannot clone it ({failed}).", hint=HINT) from None
        root = Path(scratch) / "repo"
        if not _has_commit(root, commit):
            with contextlib.suppress(GitFailed):  # not on a branch: servers often still serve it by id
                _git(root, "fetch", "--quiet", "origin", commit)
        yield root


def _has_commit(root: Path, commit: str) -> bool:
    try:
        _git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    except GitFailed:
        return False
    return True


def source_check(repository: str, manifest: Manifest) -> Check:
    """The ``source`` check: ``code.files`` against the tree of ``code.commit`` under ``code.folder``."""
    raw: object = manifest.get("code")  # checked again: the check names a malformed record
    code: dict[str, Any] = raw if isinstance(raw, dict) else {}
    commit, folder, files = code.get("commit"), code.get("folder"), code.get("files")
    name = display_name(repository)
    detail = f"the image's code is the tree of commit {str(commit)[:12]} under {folder} in {name}"
    malformed = _malformed(commit, folder, files)
    if malformed:
        return _result(detail, malformed)
    assert isinstance(commit, str) and isinstance(folder, str) and isinstance(files, dict)
    prefix = "" if folder == "." else folder
    with _opened(repository, commit) as root:
        if not _has_commit(root, commit):
            return _result(detail, [f"the commit {commit} is not in {name}"])
        try:
            problems = _compare(root, commit, prefix, files, manifest)
        except GitFailed as failed:
            raise BadInput(f"--source {name}: git cannot read commit {commit[:12]} ({failed}).", hint=HINT) from None
    if code.get("dirty"):
        problems.insert(0, "the image was built from uncommitted changes (code.dirty): its code is not the commit's")
    return _result(detail, problems)


def _malformed(commit: Any, folder: Any, files: Any) -> list[str]:
    problems = []
    if not (isinstance(commit, str) and COMMIT.fullmatch(commit)):
        problems.append(f"the manifest's code.commit {commit!r} is not a full commit id")
    parts = folder.split("/") if isinstance(folder, str) else []
    if folder != "." and (not parts or folder.startswith(":") or any(p in ("", ".", "..") for p in parts)):
        problems.append(f"the manifest's code.folder {folder!r} is not a folder inside a repository")
    records = files.values() if isinstance(files, dict) else [None]
    if not all(isinstance(r, dict) and isinstance(r.get("sha256"), str) for r in records):
        problems.append("the manifest's code.files is not a mapping of paths to {sha256, mode}")
    return problems


def _result(detail: str, problems: list[str]) -> Check:
    shown = problems[:MAX_NAMED] + ([f"... and {len(problems) - MAX_NAMED} more"] if len(problems) > MAX_NAMED else [])
    return Check(NAME, not problems, detail, tuple(shown))


def _compare(root: Path, commit: str, prefix: str, files: dict[str, Any], manifest: Manifest) -> list[str]:
    tree = _tree(root, commit, prefix)
    if tree is None:
        return [f"a file name under {prefix or 'the root'} at the commit is not UTF-8: freeze cannot ship it"]
    code_dir = str((manifest.get("layout") or {}).get("code", "/repro/code"))
    common = sorted(set(files) & set(tree))
    digests = _sha256_blobs(root, [tree[rel] for rel in common])
    problems: list[str] = []
    for rel in common:
        in_commit = f"{prefix}/{rel}" if prefix else rel
        if files[rel]["sha256"] != digests[tree[rel].oid]:
            problems.append(f"{code_dir}/{rel}: sha256 differs from {in_commit} at the commit")
        mode = "0755" if tree[rel].executable else "0644"
        if files[rel].get("mode") != mode:
            problems.append(f"{code_dir}/{rel}: mode {files[rel].get('mode')} differs from the commit's {mode}")
    problems += [f"{code_dir}/{rel}: not in the commit" for rel in sorted(set(files) - set(tree))]
    unshipped = {rel: tree[rel] for rel in tree if rel not in files}
    data = _dataset_files(root, unshipped, tree, manifest.get("datasets") or {})
    for rel in sorted(set(unshipped) - data):
        problems.append(
            f"{prefix}/{rel}: in the commit, not in the image" if prefix else f"{rel}: in the commit, not in the image"
        )
    return problems


def _tree(root: Path, commit: str, prefix: str) -> dict[str, TreeFile] | None:
    """The files of ``commit`` under ``prefix`` that freeze would ship (relative path -> file), or None
    when a name is not UTF-8. Same listing as freeze's, with sizes."""
    args = ["ls-tree", "-r", "-z", "-l", "--full-tree", commit] + (["--", prefix] if prefix else [])
    records = [r for r in _git(root, *args).split(b"\0") if r]  # "MODE TYPE OID SIZE\tPATH"
    if prefix:  # only what lies under the folder (a pattern could match more)
        records = [r for r in records if r.partition(b"\t")[2].startswith(prefix.encode() + b"/")]
    try:
        kept = shipped_files(b"\0".join(records), prefix)
        found: dict[str, tuple[str, int]] = {}
        for record in records:
            meta, _, path = record.partition(b"\t")
            fields = meta.decode().split()
            if fields[1] == "blob":
                rel = path.decode()[len(prefix) + 1 :] if prefix else path.decode()
                found[rel] = (fields[2], int(fields[3]))
    except UnicodeDecodeError:
        return None
    return {rel: TreeFile(executable, *found[rel]) for rel, executable in kept.items()}


def _sha256_blobs(root: Path, files: list[TreeFile]) -> dict[str, str]:
    """Object id -> sha256 of the blob's content, read with git cat-file --batch (a bounded batch at a time)."""
    digests: dict[str, str] = {}
    pending = {f.oid: f.size for f in files}
    batches: list[list[str]] = [[]]
    total = 0
    for oid, size in pending.items():
        if batches[-1] and total + size > BATCH_BYTES:
            batches.append([])
            total = 0
        batches[-1].append(oid)
        total += size
    for batch in (b for b in batches if b):
        out = _git(root, "cat-file", "--batch", stdin="".join(f"{oid}\n" for oid in batch).encode())
        pos = 0
        for oid in batch:
            end = out.index(b"\n", pos)
            header = out[pos:end].split(b" ")
            if len(header) != 3 or header[1] != b"blob":
                raise GitFailed(f"object {oid} is missing or not a file")
            size = int(header[2])
            digests[oid] = hashlib.sha256(out[end + 1 : end + 1 + size]).hexdigest()
            pos = end + 1 + size + 1
    return digests


def _dataset_files(
    root: Path, unshipped: dict[str, TreeFile], tree: dict[str, TreeFile], datasets: dict[str, Any]
) -> set[str]:
    """The files of ``unshipped`` that are provably a declared dataset: a file, or a folder's files, whose
    index has the dataset's digest (so freeze left them out as data)."""
    groups: list[tuple[str, dict[str, str]]] = []  # (digest wanted, name in the dataset -> path in the tree)
    folders: dict[str, dict[str, str]] = {}  # every folder of the tree -> its files (name in it -> path)
    for rel in tree:
        for parent in list(PurePosixPath(rel).parents)[:-1]:  # not the experiment folder itself ('.')
            folder = parent.as_posix()
            folders.setdefault(folder, {})[rel[len(folder) + 1 :]] = rel
    for dataset in datasets.values() if isinstance(datasets, dict) else ():
        if not isinstance(dataset, dict):
            continue
        wanted, count, size = dataset.get("sha256"), dataset.get("files"), dataset.get("bytes")
        if dataset.get("kind") == "file":
            name = PurePosixPath(str(dataset.get("path"))).name
            groups += [
                (str(wanted), {name: rel})
                for rel, f in unshipped.items()
                if PurePosixPath(rel).name == name and f.size == size
            ]
        elif dataset.get("kind") == "directory":
            groups += [
                (str(wanted), members)
                for members in folders.values()
                if all(rel in unshipped for rel in members.values())
                and len(members) == count
                and sum(tree[rel].size for rel in members.values()) == size
            ]
    digests = _sha256_blobs(root, [tree[rel] for _, members in groups for rel in members.values()])
    proven: set[str] = set()
    for wanted, members in groups:
        index = {name: FileDigest(digests[tree[rel].oid], tree[rel].size) for name, rel in members.items()}
        if tree_digest(index) == wanted:
            proven |= set(members.values())
    return proven

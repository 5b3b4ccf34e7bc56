"""The runtime's outputs: the metrics it collects, and the files it reads from and writes to the output folder.

Standard library only and Python 3.8-compatible, a sibling of the entrypoint in ``/repro/runtime``. What
the command left is read only as a regular file of bounded size (a link is not followed, a FIFO never
blocks); what the runtime writes is written atomically, and handed to the output folder's owner.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from typing import TYPE_CHECKING, Any

if __package__:  # imported as a module of repropack.runtime (on the host)
    from repropack.runtime.exits import Stop
else:  # a sibling file of /repro/runtime/entrypoint.py, which puts this folder on sys.path
    from exits import Stop  # type: ignore[no-redef, import-not-found]
if TYPE_CHECKING:
    from repropack.runtime.records import Manifest

METRICS_CAP = 16 << 20


def collect_metrics(manifest: Manifest, output: str, from_stdout: dict[str, str]) -> tuple[dict[str, float], list[str]]:
    metrics: dict[str, float] = {}
    problems: list[str] = []
    spec = manifest["metrics"]
    metrics_file = spec.get("file")
    if metrics_file:
        path = os.path.join(output, metrics_file)
        try:
            data = json.loads(read_regular_file(path, METRICS_CAP))
            for key, value in flatten(data).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics[key] = float(value)
        except UnsafeFile as exc:  # the command's doing, as a crash would be
            raise Stop(
                4,
                f"The metrics file {path} {exc}; repropack reads only regular files the command "
                "wrote, so this run's results are not trustworthy. Write metrics as a plain file.",
            ) from None
        except (OSError, ValueError, RecursionError) as exc:
            problems.append(f"metrics file {spec['file']} could not be read ({exc})")
    for name, text in from_stdout.items():
        try:
            metrics[name] = float(text)
        except ValueError:
            problems.append(f"metric {name}: '{text}' is not a number")
    for name in spec["expected"]:
        if name not in metrics:
            problems.append(f"expected metric '{name}' was not produced")
    return dict(sorted(metrics.items())), problems


class UnsafeFile(ValueError):
    """A file the command left is a link, FIFO, socket, device or folder, or larger than the cap."""


def read_regular_file(path: str, cap: int) -> bytes:
    """At most ``cap`` bytes of ``path``, a regular file: a link is not followed, a FIFO never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile("is a symbolic link") from None
        if exc.errno == errno.ENXIO:
            raise UnsafeFile("is a socket") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kinds = {
                stat.S_IFIFO: "a FIFO (named pipe)",
                stat.S_IFDIR: "a folder",
                stat.S_IFCHR: "a device",
                stat.S_IFBLK: "a device",
                stat.S_IFSOCK: "a socket",
            }
            raise UnsafeFile(f"is {kinds.get(stat.S_IFMT(mode), 'not a regular file')}")
        data = b""
        while len(data) <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - len(data)))
            if not chunk:
                return data
            data += chunk
        raise UnsafeFile(f"is larger than {cap >> 20} MiB")
    finally:
        os.close(fd)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".repro.", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def give_to_output_owner(output: str) -> None:
    """Running as root into a folder a user owns: hand the results to that user, not to root."""
    if os.geteuid() != 0:
        return
    stat = os.stat(output)
    if stat.st_uid == 0:
        return
    for folder, dirs, files in os.walk(output):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(folder, name), stat.st_uid, stat.st_gid)
            except OSError:
                pass


def read_state(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


TERMINATION_CAP = 4096  # Kubernetes keeps at most 4096 bytes of a container's termination message


def write_termination(
    exit_code: int, status: str, seed: Any, metrics: dict[str, float], error: str | None = None
) -> None:
    """On a cluster without a shared folder (``REPRO_TERMINATION_LOG``, Kubernetes' termination message):
    the task's exit code, status, seed and metrics as one compact JSON, dropping metrics until it fits."""
    path = os.environ.get("REPRO_TERMINATION_LOG")
    if not path:
        return
    kept = dict(sorted(metrics.items()))
    while True:
        text = json.dumps(
            {
                "exit_code": exit_code,
                "status": status,
                "seed": seed,
                "metrics": kept,
                "complete": len(kept) == len(metrics),
                "error": error,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        if len(text.encode()) <= TERMINATION_CAP or not kept:
            break
        kept.pop(sorted(kept)[-1])
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError:
        pass  # the message is a convenience: the exit code still reaches the cluster


def hash_artifacts(patterns: list[str], work: str, output: str) -> tuple[dict[str, str], list[str]]:
    """The sha256 of every regular file each pattern (a glob) matches in the working folder (``code/PATH``)
    or the output folder (``output/PATH``); a pattern that matches nothing is a problem to report."""
    import glob
    import hashlib

    found: dict[str, str] = {}
    problems = []
    for pattern in patterns:
        matched = False
        for prefix, base in (("code", work), ("output", output)):
            for path in sorted(glob.glob(os.path.join(glob.escape(base), pattern), recursive=True)):
                try:
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue  # links, folders, FIFOs: not an artifact's bytes
                    digest = hashlib.sha256()
                    with open(path, "rb") as handle:
                        for block in iter(lambda: handle.read(1 << 20), b""):
                            digest.update(block)
                except OSError:
                    continue
                found[f"{prefix}/{os.path.relpath(path, base)}"] = digest.hexdigest()
                matched = True
        if not matched:
            problems.append(f"artifact '{pattern}' matched no file in the working folder or the output")
    return dict(sorted(found.items())), problems

"""The datasets' stat pass, started before the command line is even parsed.

A warm ``freeze`` or ``build`` spends most of its dataset time on one ``stat`` per file (tens of
thousands of system calls), and most of its start-up importing modules on one core. So the console
script forks a helper first thing: the helper reads the experiment file named on the command line and
asks the stat cache to vouch for each dataset (:func:`repropack.hashing.vouched_tree`: no folder moved,
every file as recorded), while the main process imports. The freeze then takes the helper's answer for
a dataset instead of stat-ing it again. The answers count only if they are ready when the freeze needs
them: a helper still at work then is stopped, and the freeze does its own pass.

The helper vouches exactly as the freeze would (same code, same cache), a few hundred milliseconds
earlier: the manifest describes the data as it was when the helper looked, as it always describes it as
of its stat pass. Without an answer for a dataset (the cache could not vouch for all of it, the helper
failed or was not started) the freeze does its own pass, as it would without a helper.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repropack.hashing import TreeHashes

COMMANDS = frozenset({"freeze", "build"})  # the commands that freeze an experiment's datasets
SPEC_SUFFIXES = (".yaml", ".yml")

# one tree's answer: its index, its file names NUL-separated, and its size in bytes
Answer = tuple[bytes, bytes, int]


class _Helper:
    def __init__(self, pid: int, read_end: int) -> None:
        self.pid, self.read_end = pid, read_end

    def collect(self, wait_s: float) -> dict[str, Answer]:
        """The helper's answers (all of them, or none when it failed), if it is done within ``wait_s``: one
        still at work is stopped, so that a helper never makes a freeze slower than its own pass would."""
        if not select.select([self.read_end], [], [], wait_s)[0]:  # nothing written yet, and not ended
            self.cancel()
            return {}
        with open(self.read_end, "rb") as answers:
            data = answers.read()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        try:
            found = pickle.loads(data) if data else {}
        except Exception:  # a helper that died while writing: no answers
            return {}
        return found if isinstance(found, dict) else {}

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.read_end)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


_helper: _Helper | None = None


def spec_argument(argv: list[str]) -> str | None:
    """The experiment file of a command line that freezes datasets (``freeze SPEC``, ``build SPEC``, with
    options anywhere): the first existing ``.yaml``/``.yml`` file after the command; None otherwise. A
    wrong guess costs nothing: its datasets are not the ones the freeze asks for."""
    commands = [i for i, arg in enumerate(argv) if arg in COMMANDS]
    if not commands:
        return None
    for arg in argv[commands[0] + 1:]:
        if not arg.startswith("-") and arg.endswith(SPEC_SUFFIXES) and os.path.isfile(arg):
            return arg
    return None


def start(argv: list[str]) -> None:
    """Fork the helper when ``argv`` runs a command that freezes datasets (on Linux, and only while this
    process runs a single thread: a fork copies no other thread)."""
    global _helper
    spec = spec_argument(argv)
    if _helper is not None or spec is None or sys.platform != "linux" or threading.active_count() != 1:
        return
    if len(os.sched_getaffinity(0)) < 2:  # one core: the helper would only take turns with the command
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: answer, and leave at once (nothing of the parent's to clean up)
        code = 1
        try:
            os.close(read_end)
            quiet = os.open(os.devnull, os.O_RDWR)  # the terminal and pipes are the parent's
            for fd in (0, 1, 2):
                os.dup2(quiet, fd)
            answers = vouch_datasets(Path(spec))
            with open(write_end, "wb") as out:
                out.write(pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _helper = _Helper(pid, read_end)


def vouch_datasets(spec_path: Path) -> dict[str, Answer]:
    """What the stat cache vouches for among the datasets of the experiment at ``spec_path``, by their
    absolute paths (the helper's work; an experiment file that does not load has none)."""
    from repropack.errors import ReproError
    from repropack.hashing import vouched_tree
    from repropack.spec import load_spec
    from repropack.statcache import StatCache

    try:
        spec = load_spec(spec_path)
    except ReproError:
        return {}
    cache = StatCache.default()
    answers: dict[str, Answer] = {}
    if cache is None:
        return answers
    with cache:
        for dataset in spec.datasets.values():
            try:
                hashed = vouched_tree(dataset.path, cache)
            except OSError:
                continue  # the freeze reports it
            if hashed is not None:
                names = "\0".join(hashed.index.names).encode("utf-8", "surrogateescape")
                answers[os.path.abspath(dataset.path)] = (hashed.index.data, names, hashed.index.total_bytes)
    return answers


def collect(wait_s: float = 0.0) -> dict[str, TreeHashes]:
    """The helper's answers, by absolute path, if it is done (within ``wait_s``); empty without them.
    Given once: a later freeze in the same process does its own stat pass."""
    global _helper
    from repropack.hashing import FileIndex, HashStats, TreeHashes

    if _helper is None:
        return {}
    helper, _helper = _helper, None
    answers: dict[str, TreeHashes] = {}
    for tree, answer in helper.collect(wait_s).items():
        with contextlib.suppress(TypeError, ValueError):
            index, names, total = answer
            listed = names.decode("utf-8", "surrogateescape").split("\0") if names else []
            answers[tree] = TreeHashes(FileIndex(index, listed, total),
                                       HashStats(cached_files=len(listed), cached_bytes=total))
    return answers


def cancel() -> None:
    """Stop a helper whose answers nobody took (the command ended first, or froze nothing)."""
    global _helper
    if _helper is not None:
        _helper.cancel()
        _helper = None

"""The datasets' listing, started before the command line is even parsed.

Before hashing, a freeze lists every dataset: one ``stat`` per file (tens of thousands of system calls),
and a walk of the folders unless the stat cache's record shows that none moved; a warm freeze does little
else. Start-up, meanwhile, is mostly importing modules, on one core. So the console script forks a helper
first thing: it reads the experiment file named on the command line and lists each dataset folder as the
freeze would (:func:`repropack.hashing.list_tree`, with the cache's verdict when it vouches for every file),
while the main process imports. The freeze then hashes from the helper's listing instead of listing
again. The answers count only if they are ready when the freeze needs them: a helper still at work then
is stopped, and the freeze lists for itself.

The helper lists exactly as the freeze would (same code, same cache), a few hundred milliseconds earlier,
and hands over the moment its stats began, for the cache's racy rule: the manifest describes the data as
of that listing, as it always describes it as of its listing.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from repropack.forking import can_fork, fork_quietly

if TYPE_CHECKING:
    from repropack.hashing import Listed

COMMANDS = frozenset({"freeze", "build"})  # the commands that freeze an experiment's datasets
SPEC_SUFFIXES = (".yaml", ".yml")
DONE = b"1"  # what the helper writes to its pipe once its answers are whole in the shared file


class _Helper:
    """The helper's process, the pipe it signals on, and the in-memory file it writes its answers to (a
    pipe would hand over megabytes of listing 64 KiB at a time, a context switch each)."""

    def __init__(self, pid: int, read_end: int, answers: int) -> None:
        self.pid, self.read_end, self.answers = pid, read_end, answers

    def collect(self, wait_s: float) -> dict[str, Listed]:
        """The helper's answers (all of them, or none when it failed), if it is done within ``wait_s``: one
        still at work is stopped rather than waited for (the freeze then lists for itself)."""
        if not select.select([self.read_end], [], [], wait_s)[0]:  # not signalled, and not ended
            self.cancel()
            return {}
        try:
            done = os.read(self.read_end, len(DONE)) == DONE  # nothing (the pipe's end) if it failed
            data = os.pread(self.answers, os.fstat(self.answers).st_size, 0) if done else b""
        finally:
            self._close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        from repropack.hashing import Listed

        try:
            found = pickle.loads(data) if data else {}  # written by this very program, forked
        except Exception:
            return {}
        if not isinstance(found, dict):
            return {}
        return {tree: listed for tree, listed in found.items() if isinstance(tree, str) and isinstance(listed, Listed)}

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self._close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _close(self) -> None:
        for fd in (self.read_end, self.answers):
            with contextlib.suppress(OSError):
                os.close(fd)


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
    if _helper is not None or spec is None or not can_fork():
        return
    if len(os.sched_getaffinity(0)) < 2:  # one core: the helper would only take turns with the command
        return
    if not hasattr(os, "memfd_create"):
        return
    answers = os.memfd_create("repropack-listing", os.MFD_CLOEXEC)
    read_end, write_end = os.pipe()

    def list_and_answer() -> None:  # in the helper
        os.close(read_end)
        with open(answers, "wb") as out:
            out.write(pickle.dumps(list_datasets(Path(spec)), protocol=pickle.HIGHEST_PROTOCOL))
        os.write(write_end, DONE)

    pid = fork_quietly(list_and_answer)
    os.close(write_end)
    _helper = _Helper(pid, read_end, answers)


def list_datasets(spec_path: Path) -> dict[str, Listed]:
    """Each dataset folder of the experiment at ``spec_path`` listed for hashing, by its absolute path
    (the helper's work; an experiment file that does not load has none)."""
    from repropack.errors import ReproError
    from repropack.spec import load_spec

    try:
        spec = load_spec(spec_path)
    except ReproError:
        return {}
    folders = [dataset.path for dataset in spec.datasets.values() if dataset.path.is_dir()]
    if not folders:
        return {}  # a single file is one stat: nothing to win, and nothing more to import here
    from repropack.hashing import list_tree
    from repropack.statcache import StatCache

    answers: dict[str, Listed] = {}
    cache = StatCache.default()
    try:
        for folder in folders:
            with contextlib.suppress(OSError):  # the freeze reports it
                answers[os.path.abspath(folder)] = list_tree(folder, cache)
    finally:
        if cache is not None:
            cache.close()
    return answers


def collect(wait_s: float = 0.0) -> dict[str, Listed]:
    """The helper's listings, by absolute path, if it is done (within ``wait_s``); empty without them.
    Given once: a later freeze in the same process lists for itself."""
    global _helper
    if _helper is None:
        return {}
    helper, _helper = _helper, None
    return helper.collect(wait_s)


def cancel() -> None:
    """Stop a helper whose answers nobody took (the command ended first, or froze nothing)."""
    global _helper
    if _helper is not None:
        _helper.cancel()
        _helper = None

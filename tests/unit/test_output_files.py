"""Reading what a container left in /output as regular files only, and removing whatever it left."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from repropack.engine.types import Mount, OutputCap, RunResult
from repropack.errors import CommandFailed, EnvironmentProblem
from repropack.image.embedded import ImageManifest
from repropack.run.local import RunRequest, run_image
from repropack.run.output_folder import UnsafeOutput, read_record, remove_tree, scratch_folder

T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``'s result, failing the test (instead of hanging it) when it takes longer than ``seconds``."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(("ok", call()))
        except BaseException as exc:  # handed to the test's thread
            result.append(("error", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still running after {seconds} s: it blocked"
    kind, value = result[0]
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def refused(folder: Path, name: str, **options: Any) -> str:
    with pytest.raises(UnsafeOutput) as caught:
        within(5, lambda: read_record(folder, name, **options))
    return str(caught.value)


@pytest.fixture
def output(tmp_path: Path) -> Path:
    folder = tmp_path / "output"
    folder.mkdir()
    return folder


# -- reading -------------------------------------------------------------------------------------------


def test_a_regular_file_is_read_and_a_missing_one_is_none(output: Path) -> None:
    (output / "run.json").write_bytes(b'{"a": 1}')
    (output / "sub").mkdir()
    (output / "sub" / "metrics.json").write_bytes(b"{}")
    assert read_record(output, "run.json") == b'{"a": 1}'
    assert read_record(output, "sub/metrics.json") == b"{}"
    assert read_record(output, "metrics.json") is None
    assert read_record(output, "nowhere/metrics.json") is None
    assert read_record(output.parent / "absent", "run.json") is None


def test_the_output_folder_itself_may_be_the_users_link(output: Path, tmp_path: Path) -> None:
    (output / "run.json").write_bytes(b"{}")
    (tmp_path / "out-link").symlink_to(output)
    assert read_record(tmp_path / "out-link", "run.json") == b"{}"


def test_a_link_to_a_host_file_is_refused_and_not_read(output: Path, tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret.json"
    host_file.write_text('{"mean": 6.0, "secret": "host-content"}')
    (output / "metrics.json").symlink_to(host_file)
    message = refused(output, "metrics.json")
    assert "/output/metrics.json is a symbolic link" in message
    assert "repropack reads only regular files the run wrote" in message
    assert "host-content" not in message


def test_a_fifo_is_refused_without_blocking(output: Path) -> None:
    os.mkfifo(output / "metrics.json")
    assert "/output/metrics.json is a FIFO" in refused(output, "metrics.json")


def test_a_socket_is_refused(output: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(output / "metrics.json"))
        assert "/output/metrics.json is a socket" in refused(output, "metrics.json")


def test_a_link_to_dev_zero_is_refused_without_reading(output: Path) -> None:
    (output / "metrics.json").symlink_to("/dev/zero")
    assert "is a symbolic link" in refused(output, "metrics.json")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_is_refused_without_being_opened(output: Path) -> None:
    os.mknod(output / "metrics.json", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    assert "/output/metrics.json is a character device" in refused(output, "metrics.json")


def test_a_folder_is_refused(output: Path) -> None:
    (output / "metrics.json").mkdir()
    assert "is a folder" in refused(output, "metrics.json")


def test_a_link_in_a_folder_above_the_file_is_refused(output: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text('{"secret": "host-content"}')
    (output / "results").symlink_to(elsewhere)
    message = refused(output, "results/metrics.json")
    assert "/output/results is a symbolic link" in message and "host-content" not in message


def test_a_file_past_the_cap_is_refused(output: Path) -> None:
    (output / "metrics.json").write_bytes(b" " * 1001)
    assert "is larger than" in refused(output, "metrics.json", cap=1000)
    (output / "metrics.json").write_bytes(b" " * 1000)
    assert read_record(output, "metrics.json", cap=1000) == b" " * 1000


def test_a_refusal_is_the_commands_failure() -> None:
    assert issubclass(UnsafeOutput, CommandFailed) and UnsafeOutput.exit_code == 4


# -- run_image reads through the guard -----------------------------------------------------------------


class HostileEngine:
    """Runs nothing: leaves ``plant(output)`` in the output folder, as a hostile command would."""

    def __init__(self, plant: Callable[[Path], None], exceeded: bool = False) -> None:
        self.plant = plant
        self.exceeded = exceeded
        self.caps: list[OutputCap | None] = []

    def run(
        self, image: str, args: list[str], *, mounts: list[Mount], output_cap: OutputCap | None = None, **_: Any
    ) -> RunResult:
        self.caps.append(output_cap)
        output = Path(next(m.source for m in mounts if not m.read_only))
        (output / "run.json").write_text('{"seed": 1}')
        self.plant(output)
        return RunResult(exit_code=0, output_tail=[], oom_killed=False, output_exceeded=self.exceeded)


MANIFEST = {
    "commands": {"train": "python train.py"},
    "datasets": {},
    "layout": {"output": "/output"},
    "metrics": {"expected": {}},
}


def run_hostile(engine: HostileEngine, output: Path, **request: Any) -> Any:
    image = ImageManifest("sha256:" + "a" * 64, {}, MANIFEST)
    return run_image(engine, image, RunRequest(**request), output, lambda line: None)  # type: ignore[arg-type]


def test_run_image_refuses_a_metrics_link_to_a_host_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"mean": 42.0}')
    engine = HostileEngine(lambda out: (out / "metrics.json").symlink_to(secret))
    with pytest.raises(UnsafeOutput, match=r"metrics\.json is a symbolic link"):
        run_hostile(engine, tmp_path / "out")


def test_run_image_passes_the_cap_and_reports_a_run_past_it(tmp_path: Path) -> None:
    engine = HostileEngine(lambda out: None, exceeded=True)
    with pytest.raises(CommandFailed, match=r"more than 50.0 MiB to /output \(--max-output\); it was stopped"):
        run_hostile(engine, tmp_path / "out", max_output=50 << 20)
    assert engine.caps == [OutputCap((tmp_path / "out").resolve(), 50 << 20)]


def test_run_image_keeps_only_numbers_from_metrics(tmp_path: Path) -> None:
    engine = HostileEngine(lambda out: (out / "metrics.json").write_text('{"a": 1, "b": "x", "c": [1], "d": true}'))
    assert run_hostile(engine, tmp_path / "out").metrics == {"a": 1.0}


# -- removing ------------------------------------------------------------------------------------------


def plant_everything(root: Path, outside: Path) -> None:
    """What a hostile run can leave: links out (also inside a read-only folder), a FIFO, a socket, an
    unreadable folder, a read-only one, and a tree deeper than Python's recursion limit."""
    (root / "link-out").symlink_to(outside)
    (root / "link-dir-out").symlink_to(outside.parent)
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(root / "socket"))
    locked = root / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "file").write_text("x")
    (locked / "inner").chmod(0)
    readonly = root / "readonly"
    readonly.mkdir()
    (readonly / "file").write_text("x")
    (readonly / "link-out").symlink_to(outside)
    readonly.chmod(0o555)
    deep_tree(root, 1200)  # one file descriptor a level would do; recursion would not


def deep_tree(root: Path, levels: int) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir("d", dir_fd=fd)
        below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)


def in_child_as(uid: int | None, call: Callable[[], None]) -> None:
    """``call()`` in a forked child (as ``uid`` when given): its exception fails the test here."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            call()
            code = 0
        except BaseException:
            traceback.print_exc()  # shown with the failing test's captured output
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def owned_tree() -> Iterator[tuple[Path, Path, int | None]]:
    """A folder to fill and a host file outside it, both owned by an unprivileged user: removal runs as
    that user when the tests run as root, so the permission bits a run leaves really apply. (In the
    system's temporary folder: pytest's own is private to root.)"""
    uid = 65534 if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="repropack-test-owned-"))
    base.chmod(0o755)
    root = base / "repropack-verify-x"
    root.mkdir()
    outside = base / "host-file"
    outside.write_text("host content")
    outside.chmod(0o600)
    if uid is not None:
        for path in (base, root, outside):
            os.chown(path, uid, uid)
    try:
        yield root, outside, uid
    finally:
        shutil.rmtree(base)


def test_remove_tree_removes_whatever_the_run_left(owned_tree: tuple[Path, Path, int | None]) -> None:
    root, outside, uid = owned_tree

    def fill_and_remove() -> None:
        plant_everything(root, outside)
        remove_tree(root)

    in_child_as(uid, fill_and_remove)
    assert not os.path.lexists(root)
    assert outside.read_text() == "host content"  # links were removed, not followed ...
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600  # ... not even to make their target writable


def test_remove_tree_of_nothing_is_nothing(tmp_path: Path) -> None:
    remove_tree(tmp_path / "absent")


def test_scratch_folder_is_removed_after_an_error_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with pytest.raises(UnsafeOutput), scratch_folder("repropack-verify-") as scratch:
        (scratch / "ro").mkdir()
        (scratch / "ro" / "f").write_text("x")
        (scratch / "ro").chmod(0o500)
        raise UnsafeOutput("/output/metrics.json", "is a FIFO")
    assert list(tmp_path.iterdir()) == []


def test_scratch_folder_says_when_it_cannot_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)

    def fail(path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("repropack.run.output_folder.remove_tree", fail)
    with (
        pytest.raises(EnvironmentProblem, match="Could not remove the temporary folder"),
        scratch_folder("repropack-verify-"),
    ):
        pass

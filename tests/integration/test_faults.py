"""Faults injected for real: a dying engine, a full disk, killed builds, concurrent builds, bad commands."""

from __future__ import annotations

import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import Experiment, repropack

pytestmark = pytest.mark.docker


class _DyingEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(socketserver.StreamRequestHandler):
    """Speaks just enough of the Engine API to get a build started, then drops the connection."""

    def handle(self) -> None:
        while True:
            request = self.rfile.readline().decode()
            if not request:
                return
            length = 0
            chunked = False
            while (header := self.rfile.readline().decode()) not in ("\r\n", ""):
                name, _, value = header.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                chunked |= name.lower() == "transfer-encoding" and "chunked" in value
            path = request.split(" ")[1]
            if "/build" in path:
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                step = b'{"stream":"Step 1/20 : FROM base\\n"}\r\n'
                self.wfile.write(f"{len(step):x}\r\n".encode() + step + b"\r\n")
                self.wfile.flush()
                time.sleep(0.2)
                return  # the engine "stops": connection closed in the middle of the build
            if length:
                self.rfile.read(length)
            if "/images/" in path and path.endswith("/json"):
                body = json.dumps(
                    {"Id": "sha256:" + "a" * 64, "RootFS": {"Layers": ["sha256:" + "b" * 64]}, "Config": {}}
                ).encode()
            elif path.endswith("/version"):
                body = json.dumps({"ApiVersion": "1.41", "Version": "20.10.24"}).encode()
            else:
                body = b"OK"
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            self.wfile.flush()


@pytest.fixture
def dying_engine(tmp_path: Path) -> Iterator[str]:
    socket_path = tmp_path / "docker.sock"
    server = _DyingEngine(str(socket_path), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"unix://{socket_path}"
    server.shutdown()
    server.server_close()


def test_engine_unreachable_is_exit_3_with_how_to_start_it(make_experiment: Callable[..., Experiment]) -> None:
    experiment = make_experiment(name="noengine")
    result = repropack("build", str(experiment.spec), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.code == 3
    assert "Start the Docker engine" in result.stderr and "Traceback" not in result.stderr


def test_engine_stopping_mid_build_is_exit_3_and_tags_nothing(
    make_experiment: Callable[..., Experiment],
    dying_engine: str,
    base_image: str,
    docker_client: docker.DockerClient,
) -> None:
    experiment = make_experiment(name="dying")
    lock_before = (experiment.folder / "requirements.lock").read_bytes()
    result = repropack(
        "build", str(experiment.spec), "--tag", experiment.tag("dying"), env={"DOCKER_HOST": dying_engine}
    )
    assert result.code == 3, result.stderr
    assert "connection to the Docker engine" in result.stderr and "Start the Docker engine" in result.stderr
    assert "Traceback" not in result.stderr
    assert (experiment.folder / "requirements.lock").read_bytes() == lock_before
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(experiment.tag("dying"))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_a_full_disk_while_staging_the_context_is_a_clear_error(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="diskfull", files={"data/big.bin": os.urandom(3 << 20)}, extra_yaml="")
    small = tmp_path / "small-disk"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        spec = experiment.spec.read_text().replace("path: data/points.csv", "path: data")
        experiment.spec.write_text(spec)
        experiment.commit("whole data folder")
        result = repropack("build", str(experiment.spec), env={"TMPDIR": str(small)})
        assert result.code == 3, result.stderr
        assert "No space left" in result.stderr and "TMPDIR" in result.stderr
        assert list(small.iterdir()) == []  # the half-written context was removed
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("delay", [0.8, 2.5])
def test_a_killed_build_leaves_nothing_half_written(
    make_experiment: Callable[..., Experiment],
    base_image: str,
    docker_client: docker.DockerClient,
    sig: signal.Signals,
    delay: float,
) -> None:
    experiment = make_experiment(name=f"killed-{sig.name.lower()}")
    (experiment.folder / "requirements.lock").unlink()  # the build resolves it: kill it during that, or later
    experiment.commit("no lock")
    before = sorted(p.name for p in experiment.folder.iterdir())
    tag = experiment.tag(f"killed-{sig.name.lower()}-{int(delay * 10)}")  # one tag per case: none left by another
    process = subprocess.Popen(
        [sys.executable, "-m", "repropack", "build", str(experiment.spec), "--tag", tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay)
    process.send_signal(sig)
    process.communicate(timeout=120)
    after = sorted(p.name for p in experiment.folder.iterdir())
    assert set(after) - set(before) <= {"requirements.lock"}, after  # no temporary files left behind
    lock = experiment.folder / "requirements.lock"
    if lock.exists():
        assert lock.read_text().startswith("# This file is generated by 'repropack lock'")
    try:
        left: str | None = docker_client.images.get(tag).labels.get("io.repropack.manifest.digest")
    except docker.errors.ImageNotFound:
        left = None
    if process.returncode != 0 and sig == signal.SIGINT:
        assert left is None  # Ctrl-C is taken only before the tag: past it, the build finishes with exit 0
    again = repropack("build", str(experiment.spec), "--tag", tag, "--json")
    assert again.code == 0, again.stderr
    complete = docker_client.images.get(again.json()["image"])
    assert complete.tags == [tag]
    # SIGKILL can land just after the tag: the tag then names a complete image (its last step, the labels,
    # name the same manifest), never a part of one
    assert left in (None, complete.labels["io.repropack.manifest.digest"])


def test_two_builds_of_the_same_experiment_at_once(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="concurrent")
    tag = experiment.tag("concurrent")
    command = [sys.executable, "-m", "repropack", "build", str(experiment.spec), "--tag", tag, "--json"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [first.communicate(timeout=300), second.communicate(timeout=300)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert reports[0]["manifest_digest"] == reports[1]["manifest_digest"]
    assert docker_client.images.get(tag).id in {r["image"] for r in reports}
    verified = repropack("verify", tag)
    assert verified.code == 0, verified.stdout + verified.stderr


def test_a_hanging_command_times_out_with_exit_4(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="hang", config={"sleep": 600})
    tag = str(experiment.build("hang")["tag"])
    started = time.monotonic()
    result = repropack("run", tag, "--timeout", "3", "--output", str(tmp_path / "out"))
    assert time.monotonic() - started < 60
    assert result.code == 4 and "The command 'train' timed out; its output is above." in result.stderr
    assert (result.stdout + result.stderr).count("sleeping") == 1  # shown once, as it came
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "timed_out" and record["timeout_s"] == 3.0 and "sleeping" in record["output_tail"]


def test_a_command_killed_for_memory_exits_4_and_says_so(
    make_experiment: Callable[..., Experiment], base_image: str
) -> None:
    experiment = make_experiment(name="oom", config={"allocate_mb": 400})
    tag = str(experiment.build("oom")["tag"])
    result = repropack("verify", tag, "--memory", "128m")
    assert result.code == 4, result.stdout + result.stderr
    assert "too much memory" in result.stderr and "allocating" in result.stderr

"""Integration fixtures: a real Docker engine, the local base image, and small real experiments.

These tests need a running Docker engine; ``bash .ci/run`` installs and starts one. They fail (not
skip) without it, so a green run always means the real engine was exercised.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
BASE_REFERENCE = "repropack/base:debian-bookworm"
TEST_IMAGE_PREFIX = "repropack-test-"

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # the reaper image cannot be pulled here


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        value = json.loads(self.stdout)
        assert isinstance(value, dict)
        return value


def repropack(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 900) -> CliResult:
    """Run the real CLI in a subprocess, as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "repropack", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=repropack-tests", "-c", "user.email=tests@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="session", autouse=True)
def run_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every run the tests make is recorded in a store of the session's own, never the user's."""
    folder = tmp_path_factory.mktemp("store")
    saved = {key: os.environ.get(key) for key in ("REPROPACK_STORE", "REPROPACK_STORE_BLOBS")}
    os.environ["REPROPACK_STORE"] = str(folder / "runs.sqlite")
    os.environ["REPROPACK_STORE_BLOBS"] = str(folder / "blobs")
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure here means the same thing: no engine
        pytest.fail(f"integration tests need a running Docker engine ({exc}); run 'bash .ci/run' as root")
    yield client
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(TEST_IMAGE_PREFIX):
                client.images.remove(tag, force=True)
    client.close()


@contextlib.contextmanager
def running_registry(folder: Path, *, read_only: bool = False) -> Iterator[str]:
    """A real registry (Debian's docker-registry) on loopback, which Docker allows over plain HTTP.

    ``read_only``: the registry's maintenance mode, in which it refuses every push."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("integration tests need Debian's docker-registry package; run 'bash .ci/run' as root")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    maintenance = "maintenance: {readonly: {enabled: true}}" if read_only else "delete: {enabled: true}"
    (folder / "config.yml").write_text(
        textwrap.dedent(f"""\
        version: 0.1
        log: {{level: warn}}
        storage:
          filesystem: {{rootdirectory: {folder / "data"}}}
          {maintenance}
        http: {{addr: "127.0.0.1:{port}"}}
        """)
    )
    with open(folder / "log", "w") as log:
        process = subprocess.Popen([binary, "serve", str(folder / "config.yml")], stdout=subprocess.DEVNULL, stderr=log)
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"docker-registry did not start: {(folder / 'log').read_text()[-500:]}")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    """The local Debian base, made with `repropack base build` when this engine does not have it yet."""
    try:
        return str(docker_client.images.get(BASE_REFERENCE).id)
    except docker.errors.ImageNotFound:
        pass
    result = repropack("base", "build", "debian-bookworm", timeout=1800)
    assert result.code == 0, result.stderr
    return str(docker_client.images.get(BASE_REFERENCE).id)


TRAIN_PY = """\
import argparse, json, os, random, sys

parser = argparse.ArgumentParser()
parser.add_argument("--config")
parser.add_argument("--data")
parser.add_argument("--output")
parser.add_argument("--seed", type=int)
args = parser.parse_args()
config = json.load(open(args.config))
values = [float(line.split(",")[1]) for line in open(args.data).read().splitlines()[1:]]
mean = sum(values) / len(values)
if config.get("crash"):
    print("about to fail", flush=True)
    sys.exit(3)
if config.get("sleep"):
    print("sleeping", flush=True)
    import time
    time.sleep(config["sleep"])
if config.get("allocate_mb"):
    print("allocating", flush=True)
    block = bytearray(config["allocate_mb"] << 20)
def root_writable():
    try:
        open("/repro/probe", "w").close()
        return 1
    except OSError:
        return 0
metrics = {"mean": mean * config["scale"], "hashseed": int(os.environ["PYTHONHASHSEED"]),
           "first_random": random.random(), "interfaces": len(os.listdir("/sys/class/net")),
           "root_writable": root_writable(), "uid": os.getuid()}
json.dump(metrics, open(os.path.join(args.output, "metrics.json"), "w"))
print(f"mean: {mean * config['scale']:.4f}")
"""


@dataclass
class Experiment:
    root: Path  # the git repository
    folder: Path  # the experiment's folder inside it
    spec: Path

    def commit(self, message: str = "change") -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)
        return git(self.root, "rev-parse", "HEAD").strip()

    def tag(self, suffix: str) -> str:
        return f"{TEST_IMAGE_PREFIX}{suffix}:{os.getpid()}"

    def build(self, suffix: str, *extra: str, env: dict[str, str] | None = None) -> dict[str, object]:
        """``repropack build --json --tag`` (tagged with ``suffix``), which must succeed; its JSON answer."""
        built = repropack("build", str(self.spec), "--json", "--tag", self.tag(suffix), *extra, env=env)
        assert built.code == 0, built.stdout + built.stderr
        return built.json()


def new_experiment(
    root: Path,
    *,
    name: str = "tiny",
    expected: str = "mean: {value: 6.0, abs_tol: 0.001}",
    gpu: str = "auto",
    embed: bool = True,
    extra_yaml: str = "",
    config: dict[str, object] | None = None,
    files: dict[str, bytes] | None = None,
    train_py: str = TRAIN_PY,
    requirements: str = "# no packages: the standard library is enough\n",
    env: dict[str, str] | None = None,
) -> Experiment:
    """A tiny experiment (``train_py`` on a 4-point dataset) in a new git repository at ``root``, locked
    (with ``env``) and committed; stdlib-only unless ``requirements`` names packages."""
    expected = expected.replace("\n", "\n" + " " * 12)  # one metric a line, under 'expected:'
    folder = root / "experiment"
    (folder / "data").mkdir(parents=True)
    (folder / "train.py").write_text(train_py)
    (folder / "config.json").write_text(json.dumps({"scale": 2.0, "crash": False, **(config or {})}) + "\n")
    for relative, data in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    (folder / "requirements.in").write_text(requirements)
    (folder / "data" / "points.csv").write_text("x,y\n1,2\n2,3\n3,4\n4,3\n")
    (root / "README.md").write_text("outside the experiment folder\n")
    spec = folder / "experiment.yaml"
    spec.write_text(
        textwrap.dedent(f"""\
        version: 1
        name: {name}
        python: "3.11"
        base: debian-bookworm
        requirements: requirements.in
        config: config.json
        seed: 7
        gpu: {gpu}
        datasets:
          points:
            path: data/points.csv
            embed: {str(embed).lower()}
        commands:
          train: python train.py --config {{config}} --data {{datasets.points}} --output {{output}} --seed {{seed}}
        metrics:
          file: metrics.json
          expected:
            {expected}
        """)
        + extra_yaml
    )
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    experiment = Experiment(root, folder, spec)
    result = repropack("lock", str(spec), env=env)
    assert result.code == 0, result.stderr
    experiment.commit("experiment")
    return experiment


@pytest.fixture
def make_experiment(tmp_path: Path) -> Callable[..., Experiment]:
    """``new_experiment`` in a folder of the test's own (builds in seconds: no packages)."""

    def make(name: str = "tiny", **options: Any) -> Experiment:
        return new_experiment(tmp_path / name, name=name, **options)

    return make


STEP = re.compile(r"^Step \d+/\d+ : (.*)$")


def cached_steps(build_output: str) -> dict[str, bool]:
    """Each Dockerfile step of a classic-builder log -> whether it came from the layer cache."""
    steps: dict[str, bool] = {}
    current: str | None = None
    for line in build_output.splitlines():
        match = STEP.match(line.strip())
        if match:
            current = match.group(1)
            steps[current] = False
        elif current is not None and "Using cache" in line:
            steps[current] = True
    return steps


def copy_recipe(tmp_path: Path, name: str) -> Experiment:
    """A recipe copied into a fresh git repository, so tests never depend on the checkout's state."""
    root = tmp_path / name
    shutil.copytree(REPO / "recipes" / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "out"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    experiment = Experiment(root, root / name, root / name / "experiment.yaml")
    experiment.commit("recipe")
    return experiment


def derive(client: docker.DockerClient, image: str, dockerfile: str, files: dict[str, bytes] | None = None) -> str:
    """A tampered copy of ``image``: same labels, one change made by ``dockerfile``'s steps."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in {"Dockerfile": f"FROM {image}\n{dockerfile}\n".encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    built, _ = client.images.build(fileobj=buffer, custom_context=True, rm=True)
    tag = f"{image.split(':')[0]}-tampered:{str(built.id)[7:19]}"
    built.tag(tag)
    return tag


def assert_tampering_is_named(client: docker.DockerClient, image: str, change: str, named: str) -> None:
    """``verify`` of ``image`` changed by ``change`` (Dockerfile steps) fails with exit 1 before running
    anything, and its report says ``named``."""
    tampered = derive(client, image, change)
    try:
        result = repropack("verify", tampered)
        assert result.code == 1, result.stdout + result.stderr
        assert named in result.stdout
        assert "running" not in result.stderr  # integrity failed before anything ran
        if change.startswith("RUN"):
            assert_readers_agree(tampered)
    finally:
        client.images.remove(tampered, force=True)


def assert_readers_agree(image: str) -> None:
    """Both ways integrity reads what the layers above the base hold (the merged filesystems of the
    image and its local base, which verify uses here; the image's own layers, used when the base is not
    local) fail the same checks, and every path the first names is named by the second too (itself, or
    a folder above it that a whiteout or opaque folder deleted)."""
    from repropack.engine.client import Engine
    from repropack.verify import filesystem as rootfs
    from repropack.verify import integrity, layer_files

    engine = Engine.connect()
    image_id = engine.image_id(image)
    assert image_id is not None
    manifest = json.loads(engine.read_file(image_id, "/repro/manifest.json"))
    if not all(check.passed for check in integrity.manifest_checks(manifest["sha256"], manifest, None)):
        return  # an edited manifest: verify stops there (its pins, wheel hashes included, mean nothing)
    depth = layer_files.base_depth(manifest)
    assert rootfs.base_image(engine, image_id, engine.layers(image_id)[:depth], [manifest["base"]["image_id"]])
    found = {}
    for reader in (layer_files.read_upper, layer_files.read_upper_from_layers):
        checks = layer_files.layer_checks(engine, image_id, manifest, read=reader)
        found[reader] = {
            c.name: (c.passed, {line.partition(": ")[0] for line in c.problems if not line.startswith("... and")})
            for c in checks
        }
    merged, layered = found[layer_files.read_upper], found[layer_files.read_upper_from_layers]
    assert {name: passed for name, (passed, _) in merged.items()} == {n: p for n, (p, _) in layered.items()}
    for name, (_, paths) in merged.items():
        named = layered[name][1]
        for path in paths:
            above = [path.rsplit("/", n)[0] for n in range(path.count("/"))]
            assert any(p in named or f"{p}/.wh..wh..opq" in named for p in above), (path, named)

"""Security on the real engine: no secrets in images, no root for the experiment, nothing leaked in outputs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import Experiment, repropack
from tests.integration.test_tiny_experiment import run_container

pytestmark = pytest.mark.docker

FAKE_SECRET = "AKIAREPROPACKTEST1234/sekrit-value-for-the-test"


def test_committed_secrets_are_refused_unless_named(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(
        name="secrets", files={".env": f"AWS_SECRET_ACCESS_KEY={FAKE_SECRET}\n".encode(), "keys/id_rsa": b"x\n"}
    )
    tag = experiment.tag("secrets")
    refused = repropack("build", str(experiment.spec), "--tag", tag)
    assert refused.code == 2
    assert ".env" in refused.stderr and "keys/id_rsa" in refused.stderr and "--allow-secret" in refused.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)
    partly = repropack("build", str(experiment.spec), "--tag", tag, "--allow-secret", "keys/id_rsa")
    assert partly.code == 2 and ".env" in partly.stderr and "keys/id_rsa" not in partly.stderr
    allowed = repropack(
        "build", str(experiment.spec), "--tag", tag, "--allow-secret", "keys/id_rsa", "--allow-secret", ".env"
    )
    assert allowed.code == 0, allowed.stderr


def test_no_secret_from_the_environment_reaches_the_image_or_the_outputs(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    experiment = make_experiment(name="leaks")
    env = {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "GITHUB_TOKEN": FAKE_SECRET}
    tag = str(experiment.build("leaks", env=env)["tag"])
    image = docker_client.images.get(tag)
    history = json.dumps(docker_client.api.history(image.id))
    inspected = json.dumps(docker_client.api.inspect_image(image.id))
    manifest = repropack("inspect", tag, "--json").stdout
    out = tmp_path / "out"
    ran = repropack("run", tag, "--output", str(out), env=env)
    assert ran.code == 0, ran.stderr
    verified = repropack("verify", tag, "--json", env=env)
    paper = repropack("manifest", tag, "--format", "json").stdout
    produced = {
        "history": history,
        "image config": inspected,
        "manifest": manifest,
        "paper manifest": paper,
        "run.json": (out / "run.json").read_text(),
        "metrics.json": (out / "metrics.json").read_text(),
        "verify report": verified.stdout,
    }
    hostname = socket.gethostname()
    for what, text in produced.items():
        assert FAKE_SECRET not in text, what
        assert str(experiment.root) not in text and str(tmp_path) not in text, f"{what} holds a host path"
        if len(hostname) > 4:
            assert hostname not in text, f"{what} holds the host name"


def test_plain_docker_run_runs_the_experiment_as_the_output_folders_owner(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="owner")
    tag = str(experiment.build("owner")["tag"])
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, 4321, 4321)  # as a user's own folder would be
        os.chown(tmp_path, 4321, 4321)
    owner = out.stat().st_uid
    code, logs = run_container(tag, out, "train")
    assert code == 0, logs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["uid"] == owner  # the experiment's process is the folder's owner ...
    if owner != 0:
        assert metrics["root_writable"] == 0  # ... which cannot write the image's code or data
    for produced in out.iterdir():
        assert produced.stat().st_uid == owner, produced  # results come out owned by that user
    record = json.loads((out / "run.json").read_text())
    assert record["user"]["uid"] == owner


def test_run_offers_the_verify_sandbox(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="runsandbox")
    tag = str(experiment.build("runsandbox")["tag"])
    for flag, interfaces in (("--sandbox", 1), (None, 2)):
        out = tmp_path / (flag or "open")
        args = ["run", tag, "--output", str(out)] + ([flag] if flag else [])
        result = repropack(*args)
        assert result.code == 0, result.stderr
        assert json.loads((out / "metrics.json").read_text())["interfaces"] == interfaces


def test_code_and_data_in_the_image_are_read_only_to_others(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="modes")
    tag = str(experiment.build("modes")["tag"])
    listing = docker_client.containers.run(
        tag,
        entrypoint=["/bin/sh", "-c"],
        command=["find /repro/code /repro/data /repro/config /repro/manifest.json -perm /022 -print"],
        remove=True,
    ).decode()
    assert listing.strip() == ""  # nothing group- or world-writable
    owners = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "stat", tag, "-c", "%u", "/repro/code/train.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert owners == "0"

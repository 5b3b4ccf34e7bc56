"""The example recipe, end to end on the real engine: build with torch, train, evaluate, verify."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import assert_tampering_is_named, copy_recipe, repropack
from tests.integration.test_tiny_experiment import run_container

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def digits(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The recipe's image, built once for this module."""
    return str(copy_recipe(tmp_path_factory.mktemp("recipe"), "digits-mlp").build("digits")["tag"])


def test_digits_mlp_builds_trains_evaluates_and_verifies(
    digits: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    tag = digits
    manifest = repropack("inspect", tag, "--json").json()
    expected = manifest["metrics"]["expected"]  # type: ignore[index]
    assert manifest["dependencies"]["packages"]["torch"] == "2.13.0+cpu"  # type: ignore[index]
    assert set(manifest["datasets"]) == {"digits", "weights"}  # type: ignore[arg-type]

    # What repropack adds is exactly the lock: no pip, no wheel files, no pip cache (the base's own
    # /usr/share/python-wheels, which python3-venv needs, is the base's business).
    listing = docker_client.containers.run(
        tag,
        entrypoint=["/bin/sh", "-c"],
        command=["ls /repro/venv/bin; find /repro /tmp /root \\( -name '*.whl' -o -path '*/.cache/pip' \\) -print"],
        remove=True,
    ).decode()
    assert "pip" not in listing.split() and ".whl" not in listing and ".cache/pip" not in listing

    # docker run IMAGE train: a real training run, seeded and deterministic.
    code, logs = run_container(tag, tmp_path / "train", "train")
    assert code == 0, logs
    trained = json.loads((tmp_path / "train" / "metrics.json").read_text())
    for name, spec in expected.items():  # type: ignore[union-attr]
        assert abs(trained[name] - spec["value"]) <= spec["abs_tol"] + spec["rel_tol"] * abs(spec["value"])
    record = json.loads((tmp_path / "train" / "run.json").read_text())
    assert record["torch"]["deterministic_algorithms"] is True and record["torch"]["version"] == "2.13.0+cpu"
    assert record["packages"]["torch"] == "2.13.0+cpu"
    assert (tmp_path / "train" / "model.pt").stat().st_size > 0

    # evaluate from the weights shipped in the image gives train's numbers (same seed, CPU).
    evaluated = repropack("run", tag, "evaluate", "--output", str(tmp_path / "eval"))
    assert evaluated.code == 0, evaluated.stderr
    scored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert scored["accuracy"] == trained["accuracy"] and scored["test_loss"] == pytest.approx(trained["test_loss"])

    verified = repropack("verify", tag, "--json")
    assert verified.code == 0, verified.stderr
    report = verified.json()
    assert report["reproduced"] is True and report["command"] == "evaluate"
    assert set(report["metrics"]) == {"accuracy", "test_loss"}  # type: ignore[arg-type]


SITE = "/repro/venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            f"RUN sed -i 's/^Version: .*/Version: 2.13.1/' {SITE}/torch-2.13.0+cpu.dist-info/METADATA",
            f"{SITE}/torch-2.13.0+cpu.dist-info/METADATA: sha256 differs",
        ),
        # a link over a locked package's folder to an extra distribution's dist-info hides nothing
        (
            f"RUN cd {SITE} && mkdir evil-1.0.dist-info && "
            "printf 'Metadata-Version: 2.1\\nName: evil\\nVersion: 1.0\\n' > evil-1.0.dist-info/METADATA && "
            "mv jinja2 jinja2.moved && ln -s evil-1.0.dist-info jinja2",
            f"{SITE}/jinja2: a link (to evil-1.0.dist-info) nothing explains",
        ),
    ],
    ids=["version", "link-over-an-extra-package"],
)
def test_a_tampered_torch_environment_fails_verification(
    digits: str, docker_client: docker.DockerClient, change: str, named: str
) -> None:
    assert_tampering_is_named(docker_client, digits, change, named)

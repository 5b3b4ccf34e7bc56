"""Published images on a real registry: publish, the paper manifest, and a verify that trusts nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from repropack.manifest.seal import seal
from tests.integration.conftest import Experiment, assert_tampering_is_named, derive, repropack, running_registry

pytestmark = pytest.mark.docker


def build_and_publish(experiment: Experiment, registry: str) -> tuple[str, str]:
    tag = str(experiment.build("pub")["tag"])
    pushed = repropack("publish", tag, f"{registry}/lab/tiny:v1", "--json")
    assert pushed.code == 0, pushed.stderr
    reference = str(pushed.json()["reference"])
    assert reference.startswith(f"{registry}/lab/tiny@sha256:")
    return tag, reference


def forget(client: docker.DockerClient, image: str) -> None:
    """Remove every tag of the image from the engine, as on a machine that never saw it."""
    client.images.remove(client.images.get(image).id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image)


def test_publish_forget_then_verify_by_reference_and_from_the_paper_manifest(
    make_experiment: Callable[..., Experiment],
    registry: str,
    base_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    experiment = make_experiment(name="published")
    tag, reference = build_and_publish(experiment, registry)

    paper = tmp_path / "paper.json"
    assert repropack("manifest", reference, "--output", str(paper)).code == 0
    again = repropack("manifest", reference, "--format", "json")
    assert again.stdout.encode() == paper.read_bytes()  # deterministic: same image, same bytes
    document = json.loads(paper.read_text())
    assert document["image"]["reference"] == reference
    assert document["verify"] == f"repropack verify {reference}"
    assert document["summary"]["lockfile"]["packages"] == 0
    assert document["summary"]["expected"]["mean"]["value"] == 6.0
    markdown = repropack("manifest", reference, "--format", "markdown").stdout
    assert reference in markdown and "| Expected mean | `6 ± 0.001` |" in markdown
    latex = repropack("manifest", reference, "--format", "latex").stdout
    assert "\\begin{tabular}" in latex and "Expected mean" in latex

    forget(docker_client, tag)
    by_reference = repropack("verify", reference, "--json")
    assert by_reference.code == 0, by_reference.stderr
    report = by_reference.json()
    assert report["reproduced"] is True
    assert all(check["passed"] for check in report["integrity"].values())  # type: ignore[union-attr]
    assert {"files", "packages", "base", "label", "config"} <= set(report["integrity"])  # type: ignore[arg-type]

    forget(docker_client, reference)
    from_paper = repropack("verify", str(paper), "--json")
    assert from_paper.code == 0, from_paper.stderr
    assert from_paper.json()["integrity"]["paper"]["passed"] is True  # type: ignore[index]

    edited = json.loads(paper.read_text())
    edited["manifest"]["metrics"]["expected"]["mean"]["value"] = 7.0  # claim a better number than the image's
    tampered_paper = tmp_path / "edited.json"
    tampered_paper.write_text(json.dumps(edited))
    refused = repropack("verify", str(tampered_paper))
    assert refused.code == 1 and "FAIL paper" in refused.stdout


def test_verify_with_several_seeds_reports_mean_and_spread(
    make_experiment: Callable[..., Experiment], base_image: str
) -> None:
    experiment = make_experiment(
        name="seeds", expected="mean: {value: 6.0, abs_tol: 0.001}\nfirst_random: {value: 0.5, abs_tol: 0.5}"
    )
    tag = str(experiment.build("seeds")["tag"])
    result = repropack("verify", tag, "--seeds", "0,1,2", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert [run["seed"] for run in report["runs"]] == [0, 1, 2]  # type: ignore[union-attr]
    first = report["metrics"]["first_random"]  # type: ignore[index]
    import random
    import statistics

    values = [random.Random(seed).random() for seed in (0, 1, 2)]
    assert first["values"] == values
    assert first["actual"] == pytest.approx(statistics.fmean(values))
    assert first["std"] == pytest.approx(statistics.stdev(values))
    bad = repropack("verify", tag, "--seeds", "0,x")
    assert bad.code == 2 and "--seeds" in bad.stderr


def test_verify_is_sandboxed_by_default(make_experiment: Callable[..., Experiment], base_image: str) -> None:
    experiment = make_experiment(
        name="sandbox",
        expected="interfaces: {value: 1, abs_tol: 0}\nroot_writable: {value: 0, abs_tol: 0}",
    )
    tag = str(experiment.build("sandbox")["tag"])
    sandboxed = repropack("verify", tag, "--json")
    assert sandboxed.code == 0, sandboxed.stdout + sandboxed.stderr  # loopback only, read-only image
    opened = repropack("verify", tag, "--json", "--no-sandbox")
    assert opened.code == 1  # with a network interface and a writable image, the metrics differ
    metrics = opened.json()["metrics"]
    assert metrics["interfaces"]["actual"] >= 2 and metrics["root_writable"]["actual"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("RUN echo '# edited' >> /repro/code/train.py", "/repro/code/train.py: sha256 differs"),
        ("RUN echo '9,9' >> /repro/data/points/points.csv", "/repro/data/points/points.csv: sha256 differs"),
        ("RUN echo 'x = 1' > /repro/code/extra.py", "/repro/code/extra.py: not in the manifest"),
        (
            "RUN mkdir -p /repro/venv/lib/python3.11/site-packages/evil-1.0.dist-info && "
            "printf 'Metadata-Version: 2.1\\nName: evil\\nVersion: 1.0\\n' "
            "> /repro/venv/lib/python3.11/site-packages/evil-1.0.dist-info/METADATA",
            "/repro/venv/lib/python3.11/site-packages/evil-1.0.dist-info/METADATA: not from a locked wheel",
        ),
        ('ENTRYPOINT ["/bin/sh", "-c", "echo mean: 6"]', 'Entrypoint is ["/bin/sh", "-c", "echo mean: 6"]'),
    ],
    ids=["code-file", "data-file", "extra-code-file", "extra-package", "entrypoint"],
)
def test_tampered_images_fail_verification_and_name_the_change(
    make_experiment: Callable[..., Experiment],
    base_image: str,
    docker_client: docker.DockerClient,
    change: str,
    named: str,
) -> None:
    experiment = make_experiment(name="tamper")
    tag = str(experiment.build("tamper")["tag"])
    assert_tampering_is_named(docker_client, tag, change, named)


def test_a_replaced_manifest_fails_verification(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="manifest")
    tag = str(experiment.build("manifest")["tag"])
    manifest = repropack("inspect", tag, "--json").json()
    del manifest["sha256"]
    manifest["metrics"]["expected"]["mean"]["value"] = 123.0  # type: ignore[index]
    forged, digest = seal(manifest)  # self-consistent, but not what the label names
    tampered = derive(docker_client, tag, "COPY manifest.json /repro/manifest.json", {"manifest.json": forged})
    try:
        result = repropack("verify", tampered, "--json")
        assert result.code == 1
        label = result.json()["integrity"]["label"]  # type: ignore[index]
        assert label["passed"] is False and f"the embedded manifest is sha256:{digest}" in label["problems"][0]
    finally:
        docker_client.images.remove(tampered, force=True)


def test_an_unreachable_registry_is_an_environment_error(
    make_experiment: Callable[..., Experiment], base_image: str
) -> None:
    experiment = make_experiment(name="unreachable")
    tag = str(experiment.build("unreachable")["tag"])
    pushed = repropack("publish", tag, "127.0.0.1:9/lab/tiny:v1")
    assert pushed.code == 3 and "Traceback" not in pushed.stderr
    assert "127.0.0.1:9" in pushed.stderr
    pulled = repropack("verify", "127.0.0.1:9/lab/tiny@sha256:" + "0" * 64)
    assert pulled.code == 3 and "Traceback" not in pulled.stderr
    malformed = repropack("publish", tag, "not a reference")
    assert malformed.code == 2 and "REGISTRY/REPOSITORY:TAG" in malformed.stderr


def test_a_manifest_edited_in_place_fails_verification(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="edited")
    tag = str(experiment.build("edited")["tag"])
    edit = 'RUN sed -i \'s/"value": 6.0/"value": 7.0/\' /repro/manifest.json'
    tampered = derive(docker_client, tag, edit)
    try:
        result = repropack("verify", tampered)
        assert result.code == 1, result.stdout + result.stderr
        assert "/repro/manifest.json: content differs from its sha256" in result.stdout
    finally:
        docker_client.images.remove(tampered, force=True)


def test_a_registry_that_refuses_the_push_is_an_environment_error(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """A real registry in read-only (maintenance) mode answers every push with an error."""
    experiment = make_experiment(name="refused")
    tag = str(experiment.build("refused")["tag"])
    with running_registry(tmp_path, read_only=True) as address:
        pushed = repropack("publish", tag, f"{address}/lab/tiny:v1", "--json")
    assert pushed.code == 3, pushed.stdout + pushed.stderr
    assert "Pushing" in pushed.stderr and "Traceback" not in pushed.stderr
    assert pushed.stdout == ""  # no reference is claimed for a push that did not complete

"""Binding an image to anchors outside it: the paper's image id or digest, and the code's git commit.

A "coherent rewrite" changes a code file and rewrites the embedded manifest to match (new sha256,
re-sealed, label updated): the image then agrees with itself, and only an outside anchor can tell. Here
that anchor is ``--source``, the repository the image was built from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from repropack.checksums.index import FileDigest, tree_digest
from repropack.image.embedded import DIGEST_LABEL
from repropack.manifest.seal import seal
from tests.integration.conftest import Experiment, derive, git, repropack

pytestmark = pytest.mark.docker


def coherent_rewrite(client: docker.DockerClient, image: str, experiment: Experiment) -> str:
    """A derived image whose /repro/code/train.py is changed, with a manifest and label that agree."""
    manifest = repropack("inspect", image, "--json").json()
    del manifest["sha256"]
    train = (experiment.folder / "train.py").read_bytes() + b"mean = 6.0  # the number the paper wants\n"
    code = manifest["code"]
    assert isinstance(code, dict)
    code["files"]["train.py"]["sha256"] = hashlib.sha256(train).hexdigest()
    sizes = {path: (experiment.folder / path).stat().st_size for path in code["files"]}
    sizes["train.py"] = len(train)
    code["sha256"] = tree_digest({p: FileDigest(r["sha256"], sizes[p]) for p, r in code["files"].items()})
    forged, digest = seal(manifest)
    steps = (
        "COPY train.py /repro/code/train.py\n"
        "COPY manifest.json /repro/manifest.json\n"
        f"LABEL {DIGEST_LABEL}=sha256:{digest}"
    )
    return derive(client, image, steps, {"train.py": train, "manifest.json": forged})


def test_a_coherent_rewrite_is_caught_by_the_source(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="source")
    tag = str(experiment.build("source")["tag"])
    original = repropack("verify", tag, "--source", str(experiment.root), "--json")
    assert original.code == 0, original.stdout + original.stderr
    source = original.json()["integrity"]["source"]  # type: ignore[index]
    assert source["passed"] is True and source["problems"] == []

    tampered = coherent_rewrite(docker_client, tag, experiment)
    try:
        # The image agrees with itself (whether plain verify also sees the new layer is another check's business).
        itself = repropack("verify", tampered, "--json").json()["integrity"]
        assert itself["manifest"]["passed"] and itself["label"]["passed"]  # type: ignore[index]

        result = repropack("verify", tampered, "--source", str(experiment.root), "--json")
        assert result.code == 1, result.stdout + result.stderr
        report = result.json()
        check = report["integrity"]["source"]  # type: ignore[index]
        assert check["passed"] is False
        assert "/repro/code/train.py: sha256 differs from experiment/train.py at the commit" in check["problems"]
        assert "command" not in report and report["metrics"] == {}  # nothing ran

        shown = repropack("verify", tampered, "--source", str(experiment.root))
        assert shown.code == 1
        assert "FAIL source" in shown.stdout and "/repro/code/train.py: sha256 differs from" in shown.stdout
        assert "running" not in shown.stderr
    finally:
        docker_client.images.remove(tampered, force=True)


def test_a_source_without_the_commit_fails_and_a_bad_one_is_bad_input(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="elsewhere")
    tag = str(experiment.build("elsewhere")["tag"])
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "commit", "-q", "--allow-empty", "-m", "an unrelated history")
    missing = repropack("verify", tag, "--source", str(other), "--json")
    assert missing.code == 1, missing.stdout + missing.stderr
    check = missing.json()["integrity"]["source"]  # type: ignore[index]
    assert check["passed"] is False and "is not in other" in check["problems"][0]
    assert "command" not in missing.json()

    not_git = tmp_path / "plain"
    not_git.mkdir()
    refused = repropack("verify", tag, "--source", str(not_git))
    assert refused.code == 2 and "is not a git repository" in refused.stderr and "Traceback" not in refused.stderr


def test_a_paper_manifest_must_bind_its_image(
    make_experiment: Callable[..., Experiment], registry: str, base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="bound")
    tag = str(experiment.build("bound")["tag"])

    local = tmp_path / "local.json"
    assert repropack("manifest", tag, "--output", str(local)).code == 0
    unbound = json.loads(local.read_text())
    assert unbound["image"]["reference"] is None  # not published: bound by its id alone
    del unbound["image"]["id"]
    (tmp_path / "unbound.json").write_text(json.dumps(unbound))
    refused = repropack("verify", str(tmp_path / "unbound.json"))
    assert refused.code == 2, refused.stdout + refused.stderr
    assert (
        "does not bind its image" in refused.stderr
        and "repropack manifest IMAGE_OR_REF --output FILE" in refused.stderr
    )
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr

    pushed = repropack("publish", tag, f"{registry}/lab/bound:v1", "--json")
    assert pushed.code == 0, pushed.stderr
    reference = str(pushed.json()["reference"])
    paper = tmp_path / "paper.json"
    assert repropack("manifest", reference, "--output", str(paper)).code == 0
    wrong = json.loads(paper.read_text())
    wrong["image"]["id"] = base_image  # a real image id, but not this one
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    result = repropack("verify", str(tmp_path / "wrong.json"), "--json")
    assert result.code == 1, result.stdout + result.stderr
    report = result.json()
    image = report["integrity"]["image"]  # type: ignore[index]
    assert image["passed"] is False and f"the paper names {base_image}" in image["problems"][0]
    assert "command" not in report and report["metrics"] == {}  # nothing ran

    bound = repropack("verify", str(paper), "--source", str(experiment.root), "--json")
    assert bound.code == 0, bound.stdout + bound.stderr
    integrity = bound.json()["integrity"]
    assert integrity["image"]["passed"] and integrity["source"]["passed"]  # type: ignore[index]

"""A paper manifest binds its image from outside: by image id or a registry digest (no Docker).

Without either it is bad input (exit 2, through the real command line); with them, verify checks the image
it reads is the one they name, and a mismatch fails (exit 1) before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from unit_factories import Experiment, RunCli, cli_runner

from repropack.errors import BadInput
from repropack.image.embedded import DIGEST_LABEL
from repropack.manifest.paper import SCHEMA, build_paper, parse_paper, render
from repropack.runtime.layout import MANIFEST_LAYOUT as LAYOUT
from repropack.verify.reproduce import VerifyOptions, verify_target
from repropack.verify.targets import Target, binding_checks

IMAGE_ID = "sha256:" + "5" * 64
DIGEST = "sha256:" + "7" * 64
REFERENCE = f"127.0.0.1:5000/lab/spiral@{DIGEST}"


def paper_bytes(image: dict[str, Any]) -> bytes:
    return json.dumps({"schema": SCHEMA, "manifest": {"sha256": "0" * 64}, "image": image}).encode()


@pytest.mark.parametrize(
    "image",
    [{"id": IMAGE_ID, "reference": None}, {"reference": REFERENCE}, {"id": IMAGE_ID, "reference": REFERENCE}],
    ids=["id", "digest", "both"],
)
def test_an_id_or_a_digest_reference_binds(image: dict[str, Any]) -> None:
    assert parse_paper(paper_bytes(image), "paper.json")["image"] == image


@pytest.mark.parametrize(
    ("image", "said"),
    [
        ({}, "neither image.id"),
        ({"id": None, "reference": None}, "neither image.id"),
        ({"id": "", "reference": ""}, "neither image.id"),
        ({"reference": "127.0.0.1:5000/lab/spiral:paper"}, "not pinned by digest"),
        ({"id": IMAGE_ID, "reference": "127.0.0.1:5000/lab/spiral:paper"}, "not pinned by digest"),
        ({"reference": "127.0.0.1:5000/lab/spiral@sha256:1234"}, "not pinned by digest"),
        ({"id": "5" * 64}, "image.id is '5555"),
        ({"id": "sha256:" + "X" * 64}, "not sha256:<64 hex digits>"),
        ({"id": 5}, "image.id is 5,"),
    ],
    ids=[
        "empty",
        "nulls",
        "empty-strings",
        "a-tag",
        "a-tag-with-id",
        "short-digest",
        "no-prefix",
        "not-hex",
        "not-a-string",
    ],
)
def test_a_paper_that_binds_nothing_or_binds_badly_is_bad_input(image: dict[str, Any], said: str) -> None:
    with pytest.raises(BadInput, match="does not bind its image") as raised:
        parse_paper(paper_bytes(image), "paper.json")
    assert said in str(raised.value)
    assert "repropack manifest IMAGE_OR_REF --output FILE" in str(raised.value)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # exit 2 must come before Docker is asked
    return cli_runner(monkeypatch, capsys)


@pytest.fixture
def frozen(experiment: Experiment, freeze_experiment: Callable[..., Any]) -> Any:
    return freeze_experiment(experiment)


def test_the_cli_refuses_a_paper_without_id_or_digest(run_cli: RunCli, frozen: Any, tmp_path: Path) -> None:
    paper = build_paper(json.loads(frozen.manifest_bytes), IMAGE_ID, None)
    del paper["image"]["id"]  # what the issue saw accepted: an image bound by nothing
    (tmp_path / "paper.json").write_bytes(render(paper, "json"))
    result = run_cli("verify", str(tmp_path / "paper.json"))
    assert result.code == 2, result
    assert result.err.startswith("error: The paper manifest paper.json does not bind its image")
    assert "repropack manifest IMAGE_OR_REF --output FILE" in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err and result.out == ""


class FakeEngine:
    """One image (the frozen experiment's), held under ``REFERENCE`` and its id, whose registry digests
    are ``digests``. Anything beyond reading its manifest is a test failure: nothing may run."""

    def __init__(self, manifest_bytes: bytes, digest: str, digests: list[str]) -> None:
        self.manifest_bytes = manifest_bytes
        self.digest = digest
        self.digests = digests

    def image_id(self, reference: str) -> str | None:
        return IMAGE_ID if reference in (REFERENCE, IMAGE_ID) else None

    def labels(self, reference: str) -> dict[str, str]:
        return {DIGEST_LABEL: f"sha256:{self.digest}"}

    def read_file(self, image_id: str, path: str) -> bytes:
        assert path == LAYOUT["manifest"], path
        return self.manifest_bytes

    def repo_digests(self, image: str) -> list[str]:
        assert image == IMAGE_ID
        return self.digests

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"engine.{name} was called after the image was found not to be the paper's")


def verify_paper(frozen: Any, tmp_path: Path, paper_id: str, digests: list[str]) -> dict[str, Any]:
    path = tmp_path / "paper.json"
    path.write_bytes(render(build_paper(json.loads(frozen.manifest_bytes), paper_id, REFERENCE), "json"))
    engine = FakeEngine(frozen.manifest_bytes, frozen.digest, digests)
    return verify_target(engine, str(path), VerifyOptions(), lambda line: None)  # type: ignore[arg-type]


def test_a_wrong_image_id_fails_before_anything_runs(frozen: Any, tmp_path: Path) -> None:
    other = "sha256:" + "6" * 64
    report = verify_paper(frozen, tmp_path, other, [REFERENCE])
    assert report["reproduced"] is False and report["metrics"] == {} and "command" not in report
    image = report["integrity"]["image"]
    assert image["passed"] is False
    assert image["problems"] == [f"the paper names {other}, the engine holds {IMAGE_ID} for {REFERENCE}"]


def test_an_image_without_the_papers_digest_fails_before_anything_runs(frozen: Any, tmp_path: Path) -> None:
    report = verify_paper(frozen, tmp_path, IMAGE_ID, ["127.0.0.1:5000/lab/spiral@sha256:" + "8" * 64])
    assert report["reproduced"] is False and "command" not in report
    image = report["integrity"]["image"]
    assert image["passed"] is False and "does not carry that digest" in image["problems"][0]


class Digests:
    def __init__(self, digests: list[str]) -> None:
        self.digests = digests

    def repo_digests(self, image: str) -> list[str]:
        return self.digests


def test_binding_checks() -> None:
    paper = {"image": {"id": IMAGE_ID, "reference": REFERENCE}}
    bound = Target(REFERENCE, REFERENCE, paper, pinned=True)
    # the digest counts whatever repository name the engine recorded it under
    (check,) = binding_checks(Digests([f"elsewhere/spiral@{DIGEST}"]), bound, IMAGE_ID)  # type: ignore[arg-type]
    assert check.name == "image" and check.passed and "the paper" in check.detail
    direct = Target(REFERENCE, REFERENCE, None, pinned=True)
    (failed,) = binding_checks(Digests([]), direct, IMAGE_ID)  # type: ignore[arg-type]
    assert not failed.passed and "its registry digests: none" in failed.problems[0]
    assert binding_checks(Digests([]), Target("tiny:tag", None, None), IMAGE_ID) == []  # type: ignore[arg-type]

"""The paper manifest's forms and the publish target's grammar (no Docker)."""

from __future__ import annotations

import json

import pytest

from repropack.errors import BadInput
from repropack.manifest.paper import build_paper, paper_manifest_digest, parse_paper, render
from repropack.manifest.seal import seal
from repropack.publish.registry import parse_target


def manifest() -> dict[str, object]:
    document = {
        "schema": "repropack.manifest.seal/v1",
        "experiment": {"name": "spiral_mlp", "seed": 7},
        "code": {"commit": "a" * 40, "folder": "exp", "source": None, "dirty": False},
        "base": {
            "name": "debian-bookworm",
            "reference": "repropack/base:debian-bookworm",
            "image_id": "sha256:" + "b" * 64,
        },
        "dependencies": {"sha256": "c" * 64, "count": 3},
        "config": {"file": "config.json", "sha256": "d" * 64},
        "datasets": {"points": {"sha256": "e" * 64}},
        "datasets_sha256": "f" * 64,
        "commands": {"train": "python train.py --lr 10% & {seed}"},
        "metrics": {"expected": {"accuracy": {"value": 0.9, "abs_tol": 0.03, "rel_tol": 0.0}}},
    }
    data, _ = seal(document)
    return json.loads(data)  # type: ignore[no-any-return]


REFERENCE = "127.0.0.1:5000/lab/spiral@sha256:" + "1" * 64


def test_json_form_is_deterministic_and_names_the_verify_command() -> None:
    paper = build_paper(manifest(), "sha256:" + "9" * 64, REFERENCE)
    first, second = render(paper, "json"), render(build_paper(manifest(), "sha256:" + "9" * 64, REFERENCE), "json")
    assert first == second
    parsed = parse_paper(first, "paper.json")
    assert parsed["verify"] == f"repropack verify {REFERENCE}"
    assert parsed["summary"]["lockfile"] == {"sha256": "c" * 64, "packages": 3}
    assert paper_manifest_digest(parsed) == parsed["manifest"]["sha256"]


def test_an_unpublished_image_is_named_by_id() -> None:
    paper = build_paper(manifest(), "sha256:" + "9" * 64, None)
    assert paper["verify"] == "repropack verify sha256:" + "9" * 64
    assert "(not published)" in render(paper, "markdown").decode()


def test_markdown_and_latex_forms() -> None:
    paper = build_paper(manifest(), "sha256:" + "9" * 64, REFERENCE)
    markdown = render(paper, "markdown").decode()
    assert f"| Image | `{REFERENCE}` |" in markdown
    assert "| Expected accuracy | `0.9 ± 0.03` |" in markdown
    latex = render(paper, "latex").decode()
    assert r"spiral\_mlp" in latex and r"10\% \& \{seed\}" in latex  # special characters escaped
    assert latex.count(r"\\") >= 8 and r"\end{tabular}" in latex
    with pytest.raises(BadInput):
        render(paper, "html")


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"schema": "other"}',
        json.dumps({"schema": "repropack.manifest.paper/v1", "manifest": {}, "image": {}}).encode(),
    ],
)
def test_parse_paper_rejects_what_is_not_a_paper_manifest(data: bytes) -> None:
    with pytest.raises(BadInput):
        parse_paper(data, "x.json")


@pytest.mark.parametrize(
    ("target", "repository", "tag"),
    [
        ("127.0.0.1:5000/lab/digits-mlp:v1", "127.0.0.1:5000/lab/digits-mlp", "v1"),
        ("ghcr.io/lab/exp:paper-2026", "ghcr.io/lab/exp", "paper-2026"),
        ("localhost:5000/x:latest", "localhost:5000/x", "latest"),
        ("localhost/x:1", "localhost/x", "1"),
    ],
)
def test_publish_targets(target: str, repository: str, tag: str) -> None:
    assert parse_target(target) == (repository, tag)


@pytest.mark.parametrize(
    "target", ["digits-mlp:v1", "ghcr.io/lab/exp", "ghcr.io/Lab/exp:v1", "not a reference", "ghcr.io/lab/exp:"]
)
def test_bad_publish_targets(target: str) -> None:
    with pytest.raises(BadInput, match="REGISTRY/REPOSITORY:TAG"):
        parse_target(target)


def test_a_note_in_words_stays_outside_the_code_span() -> None:
    """'(not published)' and '(N packages)' are words about the value, not part of it."""
    from repropack.manifest.paper import _markdown

    text = _markdown(
        {"experiment": "tiny", "verify": "repropack verify x"},
        [("Image", "sha256:abc", "(not published)"), ("Manifest", "sha256:def", "")],
    )
    assert "| Image | `sha256:abc` (not published) |" in text and "| Manifest | `sha256:def` |" in text

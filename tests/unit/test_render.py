"""Render: the frozen experiment as a Dockerfile (byte-stable, labelled, layers in change-frequency order)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from unit_factories import REMOVE, Experiment, MakeExperiment

from repropack import __version__
from repropack.image.dockerfile import environment_tag, image_labels, render_dockerfiles
from repropack.manifest.seal import SCHEMA

Freeze = Callable[..., Any]


def copy_index(dockerfile: str, source: str) -> int:
    """The line number of the COPY instruction whose source is ``source``."""
    lines = dockerfile.splitlines()
    found = [i for i, line in enumerate(lines) if re.match(rf"^COPY {re.escape(source)}\s", line)]
    assert len(found) == 1, f"expected one 'COPY {source}' line, found {len(found)}"
    return found[0]


def test_same_frozen_input_gives_a_byte_identical_dockerfile(
    make_experiment: MakeExperiment, freeze_experiment: Freeze
) -> None:
    one = render_dockerfiles(freeze_experiment(make_experiment(where="one"))).image
    two = render_dockerfiles(freeze_experiment(make_experiment(where="two"))).image
    assert one == two
    assert render_dockerfiles(freeze_experiment(make_experiment(where="three"))).image.encode() == one.encode()


def test_dockerfile_names_the_manifest_and_base(experiment: Experiment, freeze_experiment: Freeze) -> None:
    frozen = freeze_experiment(experiment)
    dockerfile = render_dockerfiles(frozen).image
    assert frozen.digest in dockerfile.splitlines()[0]
    assert re.search(r"^FROM repropack/base:debian-bookworm\b", dockerfile, re.MULTILINE)
    environment = render_dockerfiles(frozen).environment
    assert re.search(r"^FROM repropack/base:debian-bookworm\b", environment, re.MULTILINE)
    assert "--require-hashes" in environment and "--no-index" in environment
    assert f"COPY --from={environment_tag(frozen)} /repro/venv /repro/venv" in dockerfile
    assert "pip" not in dockerfile.replace("pip, cache", "")  # the image itself runs no installer
    assert "{{" not in dockerfile and "{%" not in dockerfile


def test_labels(experiment: Experiment, freeze_experiment: Freeze) -> None:
    frozen = freeze_experiment(experiment)
    labels = image_labels(frozen)
    assert labels == {
        "io.repropack.manifest.digest": f"sha256:{frozen.digest}",
        "io.repropack.schema": SCHEMA,
        "io.repropack.version": __version__,
        "org.opencontainers.image.base.name": "repropack/base:debian-bookworm",
        "org.opencontainers.image.revision": frozen.code.commit,
        "org.opencontainers.image.title": "spiral-mlp",
    }
    dockerfile = render_dockerfiles(frozen).image
    for key, value in labels.items():
        assert f'{key}="{value}"' in dockerfile
    assert re.search(r"^LABEL ", dockerfile, re.MULTILINE)


def test_source_label_when_the_code_has_a_remote(make_experiment: MakeExperiment, freeze_experiment: Freeze) -> None:
    frozen = freeze_experiment(make_experiment(origin="https://git.example/lab/exp.git"))
    assert image_labels(frozen)["org.opencontainers.image.source"] == "https://git.example/lab/exp.git"
    assert 'org.opencontainers.image.source="https://git.example/lab/exp.git"' in render_dockerfiles(frozen).image


def test_layers_data_then_code_then_config_then_manifest(experiment: Experiment, freeze_experiment: Freeze) -> None:
    dockerfile = render_dockerfiles(freeze_experiment(experiment)).image
    order = [
        next(i for i, line in enumerate(dockerfile.splitlines()) if line.startswith("COPY --from=")),
        copy_index(dockerfile, "data/points/"),
        copy_index(dockerfile, "code/"),
        copy_index(dockerfile, "config/"),
        copy_index(dockerfile, "manifest.json"),
    ]
    assert order == sorted(order)
    lines = dockerfile.splitlines()
    assert lines.index("COPY data/points/ /repro/data/points/") == order[1]
    # nothing that changes per build (the label with the manifest digest) comes before the code
    label = next(i for i, line in enumerate(lines) if "io.repropack.manifest.digest" in line)
    assert label > order[-1]


def test_only_embedded_datasets_are_copied(make_experiment: MakeExperiment, freeze_experiment: Freeze) -> None:
    experiment = make_experiment(
        datasets={"points": {"path": "data/points.csv"}, "big": {"path": "data", "embed": False}},
    )
    dockerfile = render_dockerfiles(freeze_experiment(experiment)).image
    assert "COPY data/points/ /repro/data/points/" in dockerfile
    assert "data/big" not in dockerfile


def test_no_config_no_config_layer(make_experiment: MakeExperiment, freeze_experiment: Freeze) -> None:
    experiment = make_experiment(config=REMOVE, commands={"train": "python train.py {datasets.points}"})
    dockerfile = render_dockerfiles(freeze_experiment(experiment)).image
    assert "COPY config/" not in dockerfile
    assert "COPY code/ /repro/code/" in dockerfile

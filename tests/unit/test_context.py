"""The build context: a deterministic tarball holding exactly what the Dockerfile copies."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from unit_factories import Experiment, MakeExperiment

from repropack.errors import BadInput
from repropack.image.context import EPOCH, write_environment_context, write_image_context
from repropack.image.dockerfile import render_dockerfiles
from repropack.runtime import runtime_sources

Freeze = Callable[..., Any]


@pytest.fixture
def make_wheels(tmp_path: Path) -> Callable[..., dict[str, Path]]:
    """Fake wheel files: package name -> a file in a throwaway wheelhouse."""

    def make(**packages: bytes) -> dict[str, Path]:
        house = tmp_path / "wheelhouse"
        house.mkdir(exist_ok=True)
        found = {}
        for name, data in packages.items():
            path = house / f"{name}-1.0-py3-none-any.whl"
            path.write_bytes(data)
            found[name] = path
        return found

    return make


def context_bytes(frozen: Any, wheels: dict[str, Path] | None = None) -> bytes:
    """The image's context; with ``wheels``, the environment image's context instead."""
    out = io.BytesIO()
    if wheels is None:
        write_image_context(frozen, render_dockerfiles(frozen).image, out)
    else:
        write_environment_context(render_dockerfiles(frozen).environment, frozen.lock.path.read_bytes(), wheels, out)
    return out.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: m for m in archive.getmembers()}


def read_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        handle = archive.extractfile(name)
        assert handle is not None
        return handle.read()


def test_context_is_deterministic(
    make_experiment: MakeExperiment, freeze_experiment: Freeze, make_wheels: Callable[..., dict[str, Path]]
) -> None:
    wheels = make_wheels(numpy=b"fake wheel")
    frozen = freeze_experiment(make_experiment(where="one"))
    first = context_bytes(frozen, wheels)
    assert context_bytes(frozen, wheels) == first
    assert context_bytes(frozen) == context_bytes(frozen)
    elsewhere = freeze_experiment(make_experiment(where="two"))  # same content, another folder
    assert context_bytes(elsewhere, wheels) == first


def test_context_holds_exactly_what_the_dockerfile_copies(
    experiment: Experiment, freeze_experiment: Freeze, make_wheels: Callable[..., dict[str, Path]]
) -> None:
    experiment.write("untracked.py", "not committed\n")
    wheels = make_wheels(numpy=b"np", scipy=b"sp")
    files = {name for name, m in members(context_bytes(freeze_experiment(experiment), wheels)).items() if m.isfile()}
    assert files == {
        "Dockerfile",
        "requirements.lock",
        "wheels/numpy-1.0-py3-none-any.whl",
        "wheels/scipy-1.0-py3-none-any.whl",
    }  # the environment's context: built once per lock
    files = {name for name, m in members(context_bytes(freeze_experiment(experiment))).items() if m.isfile()}
    assert files == {
        "Dockerfile",
        "manifest.json",
        "runtime/command.py",
        "runtime/datasets.py",
        "runtime/entrypoint.py",
        "runtime/exits.py",
        "runtime/hooks/sitecustomize.py",
        "runtime/layout.py",
        "runtime/manifest.schema.json",
        "runtime/outputs.py",
        "runtime/records.py",
        "data/points/points.csv",
        "code/config.json",
        "code/experiment.yaml",
        "code/requirements.in",
        "code/requirements.lock",
        "code/train.py",
        "config/config.json",
        "datasets/points.sha256sums",
    }


def test_context_never_holds_git_metadata(experiment: Experiment, freeze_experiment: Freeze) -> None:
    names = members(context_bytes(freeze_experiment(experiment)))
    assert not any(".git" in name.split("/") for name in names)
    assert not any(name.startswith("/") or ".." in name.split("/") for name in names)


def test_context_entries_are_root_owned_with_fixed_times_and_modes(
    experiment: Experiment, freeze_experiment: Freeze
) -> None:
    script = experiment.write("run.sh", "#!/bin/sh\n")
    os.chmod(script, 0o755)
    experiment.commit("script")
    entries = members(context_bytes(freeze_experiment(experiment)))
    for info in entries.values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", EPOCH)
        assert info.mode == (0o755 if info.isdir() or info.name == "code/run.sh" else 0o644), info.name
    assert entries["code"].isdir() and entries["data/points"].isdir()


def test_context_contents(
    experiment: Experiment, freeze_experiment: Freeze, make_wheels: Callable[..., dict[str, Path]]
) -> None:
    frozen = freeze_experiment(experiment)
    environment = context_bytes(frozen, make_wheels(numpy=b"the wheel"))
    assert read_member(environment, "Dockerfile") == render_dockerfiles(frozen).environment.encode()
    assert read_member(environment, "requirements.lock") == experiment.lockfile.read_bytes()
    assert read_member(environment, "wheels/numpy-1.0-py3-none-any.whl") == b"the wheel"
    data = context_bytes(frozen)
    assert read_member(data, "manifest.json") == frozen.manifest_bytes
    assert read_member(data, "Dockerfile") == render_dockerfiles(frozen).image.encode()
    assert read_member(data, "data/points/points.csv") == (experiment.folder / "data" / "points.csv").read_bytes()
    assert read_member(data, "runtime/entrypoint.py") == runtime_sources()["entrypoint.py"]


def test_committed_code_ships_not_the_working_tree(experiment: Experiment, freeze_experiment: Freeze) -> None:
    frozen = freeze_experiment(experiment)
    experiment.write("train.py", "print('edited after freezing')\n")
    data = context_bytes(frozen)
    assert read_member(data, "code/train.py") == b"print('accuracy: 0.9')\n"


def test_mounted_datasets_are_not_in_the_context(make_experiment: MakeExperiment, freeze_experiment: Freeze) -> None:
    experiment = make_experiment(
        datasets={"points": {"path": "data/points.csv", "embed": False}},
    )
    names = members(context_bytes(freeze_experiment(experiment)))
    assert not any(name.startswith("data/") for name in names)


@pytest.mark.parametrize(
    "new_content",
    [b"x,y,label\n9.9,9.9,9\n", b"x,y,label\n0.1,0.2,0\n0.3,0.4,7\n", b"short\n", b"much longer content\n" * 10],
    ids=["different", "same-size", "shrunk", "grown"],
)
def test_a_dataset_changed_after_freezing_is_refused(
    experiment: Experiment,
    freeze_experiment: Freeze,
    new_content: bytes,
) -> None:
    frozen = freeze_experiment(experiment)
    (experiment.folder / "data" / "points.csv").write_bytes(new_content)
    with pytest.raises(BadInput, match=r"points/points\.csv changed after it was hashed") as caught:
        context_bytes(frozen)
    assert caught.value.exit_code == 2


def test_a_lock_without_packages_still_has_a_wheels_folder(experiment: Experiment, freeze_experiment: Freeze) -> None:
    entries = members(context_bytes(freeze_experiment(experiment), {}))
    assert entries["wheels"].isdir()  # the Dockerfile's COPY wheels/ needs it
    assert not any(name.startswith("wheels/") for name in entries)

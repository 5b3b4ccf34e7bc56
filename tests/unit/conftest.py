"""Fixtures for the unit tests; the factories themselves live in unit_factories.py (importable by tests)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from unit_factories import (
    BASE_SPEC,
    CONFIG,
    POINTS_CSV,
    REMOVE,
    REQUIREMENTS_IN,
    TRAIN_PY,
    Experiment,
    MakeExperiment,
    git,
)


@pytest.fixture
def make_experiment(tmp_path: Path) -> MakeExperiment:
    """``make_experiment(**overrides)``: overrides replace top-level spec keys (``REMOVE`` deletes one).

    Options: ``where`` (folder under tmp_path), ``spec_text`` (raw experiment.yaml instead of the dict),
    ``git`` (False: no repository), ``commit`` (False: repository without commits), ``lock`` (False: no
    lockfile), ``origin`` (a remote URL to record).
    """
    made: list[str] = []

    def make(
        *,
        where: str | None = None,
        spec_text: str | None = None,
        git_repo: bool = True,
        commit: bool = True,
        lock: bool = True,
        origin: str | None = None,
        **overrides: Any,
    ) -> Experiment:
        repo = tmp_path / (where or f"repo{len(made)}")
        made.append(str(repo))
        folder = repo / "exp"
        spec = copy.deepcopy(BASE_SPEC)
        for key, value in overrides.items():
            if value is REMOVE:
                spec.pop(key, None)
            else:
                spec[key] = value
        experiment = Experiment(repo=repo, folder=folder, spec=spec)
        folder.mkdir(parents=True)
        experiment.write("experiment.yaml", spec_text if spec_text is not None else yaml.safe_dump(spec))
        experiment.write("requirements.in", REQUIREMENTS_IN)
        experiment.write("config.json", json.dumps(CONFIG, indent=2) + "\n")
        experiment.write("data/points.csv", POINTS_CSV)
        experiment.write("train.py", TRAIN_PY)
        (repo / "README.md").write_text("a file outside the experiment folder\n")
        if lock:
            experiment.relock()
        if git_repo:
            git(repo, "init", "-q")
            if origin:
                git(repo, "remote", "add", "origin", origin)
            if commit:
                experiment.commit("initial")
        return experiment

    return make


@pytest.fixture
def experiment(make_experiment: MakeExperiment) -> Experiment:
    return make_experiment()


@pytest.fixture
def freeze_experiment(tmp_path: Path) -> Callable[..., Any]:
    """Freeze an experiment without a Docker engine (the base is then recorded by reference)."""
    from repropack.freeze import freeze
    from repropack.manifest.seal import seal_frozen

    def run(experiment: Experiment, *, allow_dirty: bool = False) -> Any:
        frozen = freeze(
            experiment.load(),
            allow_dirty=allow_dirty,
            engine=None,
            lock_missing_to=tmp_path / "scratch" / "requirements.lock",
        )
        return seal_frozen(frozen)

    return run


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never read or write the user's repropack cache (stat cache, integrity cache, wheels)."""
    monkeypatch.setenv("REPROPACK_CACHE_DIR", str(tmp_path_factory.mktemp("repropack-cache")))

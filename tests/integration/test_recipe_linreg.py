"""The linreg-steps recipe end to end on the real engine: its tests run at build, two steps (prepare
writes beside the code), params varied by --set, artifacts hashed, verify against its paper manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.integration.conftest import copy_recipe, repropack
from tests.integration.test_tiny_experiment import run_container

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def linreg(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(copy_recipe(tmp_path_factory.mktemp("recipe"), "linreg-steps").build("linreg")["tag"])


def test_linreg_steps_builds_tested_trains_and_verifies_with_its_artifacts(linreg: str, tmp_path: Path) -> None:
    manifest = repropack("inspect", linreg, "--json").json()
    assert manifest["tests"] == {"command": "test", "at_build": True}  # its unit tests passed before the tag
    assert manifest["params"] == {"epochs": 200, "lr": 0.1} and manifest["dependencies"]["count"] == 0
    code, logs = run_container(linreg, tmp_path / "train", "train")
    assert code == 0, logs
    run = json.loads((tmp_path / "train" / "run.json").read_text())
    assert sorted(run["artifacts"]) == ["code/prepared/train.csv", "output/model.json"]
    model = (tmp_path / "train" / "model.json").read_bytes()
    assert run["artifacts"]["output/model.json"] == hashlib.sha256(model).hexdigest()
    assert json.loads((tmp_path / "train" / "metrics.json").read_text()) == {"mse": 0.100424, "slope": 3.003025}

    slower = repropack("run", linreg, "--set", "epochs=5", "--output", str(tmp_path / "short"))
    assert slower.code == 0, slower.stderr
    assert json.loads((tmp_path / "short" / "metrics.json").read_text())["mse"] > 0.2  # 5 epochs: far from fitted

    paper = tmp_path / "paper.json"
    assert repropack("manifest", linreg, "--run", str(tmp_path / "train" / "run.json"), "-o", str(paper)).code == 0
    verified = repropack("verify", str(paper), "--json")
    assert verified.code == 0, verified.stdout + verified.stderr
    report = verified.json()
    assert report["reproduced"] is True
    assert all(a["passed"] for a in report["artifacts"].values()) and len(report["artifacts"]) == 2

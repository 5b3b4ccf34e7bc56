"""``verify --source GIT_REPO``: the manifest's code.files against the recorded commit's tree (no Docker).

Manifests are made by the real freeze (without an engine) from the unit factory's experiment, a git
repository holding ``exp/`` (experiment.yaml, train.py, config.json, the lockfile, and the dataset
``data/points.csv``, which is committed but ships as data, not code) and a README outside the folder.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from unit_factories import Experiment, MakeExperiment, RunCli, cli_runner, git

from repropack.errors import BadInput
from repropack.verify.checks import Check
from repropack.verify.source import check_source, display_name, source_check

Freeze = Callable[..., Any]


def manifest_of(experiment: Experiment, freeze_experiment: Freeze, **options: Any) -> dict[str, Any]:
    return copy.deepcopy(freeze_experiment(experiment, **options).manifest)


def problems(check: Check) -> list[str]:
    assert check.name == "source"
    return list(check.problems)


def test_a_matching_repository_passes(experiment: Experiment, freeze_experiment: Freeze) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    assert "data/points.csv" not in manifest["code"]["files"]  # the dataset shipped as data
    check = source_check(str(experiment.repo), manifest)
    assert check.passed, check.problems
    assert manifest["code"]["commit"][:12] in check.detail and "repo0" in check.detail
    assert str(experiment.repo.parent) not in check.detail  # no host paths in a report


def test_the_repository_may_be_a_bare_clone_or_a_url(
    experiment: Experiment, freeze_experiment: Freeze, tmp_path: Path
) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    git(tmp_path, "clone", "-q", "--bare", str(experiment.repo), "bare.git")
    assert source_check(str(tmp_path / "bare.git"), manifest).passed
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("repropack-source-*"))
    assert source_check(f"file://{experiment.repo}", manifest).passed  # cloned into a temporary folder
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("repropack-source-*")) == before  # and removed


def test_a_folder_dataset_in_the_tree_is_data(make_experiment: MakeExperiment, freeze_experiment: Freeze) -> None:
    experiment = make_experiment(datasets={"points": {"path": "data"}})
    experiment.write("data/more/extra.csv", "a,b\n1,2\n")
    experiment.commit("more data")
    manifest = manifest_of(experiment, freeze_experiment)
    assert manifest["datasets"]["points"]["kind"] == "directory"
    assert source_check(str(experiment.repo), manifest).passed


def test_an_experiment_at_the_repository_root(make_experiment: MakeExperiment, freeze_experiment: Freeze) -> None:
    experiment = make_experiment(git_repo=False)
    git(experiment.folder, "init", "-q")
    git(experiment.folder, "add", "-A")
    git(experiment.folder, "commit", "-q", "-m", "root")
    manifest = manifest_of(experiment, freeze_experiment)
    assert manifest["code"]["folder"] == "."
    assert source_check(str(experiment.folder), manifest).passed
    manifest["code"]["files"]["train.py"]["sha256"] = "0" * 64
    assert problems(source_check(str(experiment.folder), manifest)) == [
        "/repro/code/train.py: sha256 differs from train.py at the commit"
    ]


def test_symlinks_do_not_ship_and_are_not_expected(experiment: Experiment, freeze_experiment: Freeze) -> None:
    (experiment.folder / "link.py").symlink_to("train.py")
    experiment.commit("a link")
    manifest = manifest_of(experiment, freeze_experiment)
    assert "link.py" not in manifest["code"]["files"]
    assert source_check(str(experiment.repo), manifest).passed


def test_a_changed_file_is_named(experiment: Experiment, freeze_experiment: Freeze) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    manifest["code"]["files"]["train.py"]["sha256"] = "0" * 64  # as in an image whose code was rewritten
    assert problems(source_check(str(experiment.repo), manifest)) == [
        "/repro/code/train.py: sha256 differs from exp/train.py at the commit"
    ]


def test_an_image_built_from_a_dirty_tree_is_named(experiment: Experiment, freeze_experiment: Freeze) -> None:
    experiment.write("train.py", "print('accuracy: 0.99')\n")
    manifest = manifest_of(experiment, freeze_experiment, allow_dirty=True)
    assert manifest["code"]["dirty"] is True
    found = problems(source_check(str(experiment.repo), manifest))
    assert found[0].startswith("the image was built from uncommitted changes (code.dirty)")
    assert found[1:] == ["/repro/code/train.py: sha256 differs from exp/train.py at the commit"]


def test_an_extra_file_is_named(experiment: Experiment, freeze_experiment: Freeze) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    manifest["code"]["files"]["extra.py"] = {"sha256": "1" * 64, "mode": "0644"}
    assert problems(source_check(str(experiment.repo), manifest)) == ["/repro/code/extra.py: not in the commit"]


def test_a_missing_file_is_named(experiment: Experiment, freeze_experiment: Freeze) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    del manifest["code"]["files"]["train.py"]
    assert problems(source_check(str(experiment.repo), manifest)) == ["exp/train.py: in the commit, not in the image"]


def test_a_mode_change_is_named(experiment: Experiment, freeze_experiment: Freeze) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    manifest["code"]["files"]["train.py"]["mode"] = "0755"
    assert problems(source_check(str(experiment.repo), manifest)) == [
        "/repro/code/train.py: mode 0755 differs from the commit's 0644"
    ]


def test_a_dataset_changed_since_the_commit_is_not_proven_data(
    experiment: Experiment, freeze_experiment: Freeze
) -> None:
    """The manifest does not say where a dataset lay on the host; a committed file is counted as the
    dataset only when its content has the dataset's digest. Here it does not (the data was edited after
    the commit), so the committed copy is named as missing from the image."""
    experiment.write("data/points.csv", "x,y,label\n9,9,9\n")
    manifest = manifest_of(experiment, freeze_experiment)
    assert manifest["code"]["dirty"] is False  # an edited dataset is not a code change
    assert problems(source_check(str(experiment.repo), manifest)) == [
        "exp/data/points.csv: in the commit, not in the image"
    ]


def test_a_commit_missing_from_the_repository_fails(experiment: Experiment, freeze_experiment: Freeze) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    manifest["code"]["commit"] = "1" * 40
    check = source_check(str(experiment.repo), manifest)
    assert not check.passed
    assert problems(check) == [f"the commit {'1' * 40} is not in repo0"]


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("commit", "HEAD", "code.commit 'HEAD' is not a full commit id"),
        ("folder", "../elsewhere", "code.folder '../elsewhere' is not a folder inside a repository"),
        ("folder", "/exp", "code.folder '/exp' is not a folder inside a repository"),
        ("files", ["train.py"], "code.files is not a mapping"),
    ],
)
def test_a_malformed_code_record_fails(
    experiment: Experiment, freeze_experiment: Freeze, field: str, value: Any, said: str
) -> None:
    manifest = manifest_of(experiment, freeze_experiment)
    manifest["code"][field] = value
    check = source_check(str(experiment.repo), manifest)
    assert not check.passed and any(said in problem for problem in check.problems), check.problems


def test_names_shown_in_reports(tmp_path: Path) -> None:
    assert display_name("https://user:secret@example.org/lab/exp.git") == "https://example.org/lab/exp.git"
    assert display_name(str(tmp_path)) == tmp_path.name


def test_a_folder_that_is_not_a_repository_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a git repository"):
        check_source(str(tmp_path))
    with pytest.raises(BadInput, match="there is no such folder"):
        check_source(str(tmp_path / "missing"))
    with pytest.raises(BadInput, match="git cannot reach"):
        check_source(f"file://{tmp_path}/missing.git")


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # exit 2 must come before Docker is asked
    return cli_runner(monkeypatch, capsys)


@pytest.mark.parametrize("where", ["not-a-repo", "missing"])
def test_the_cli_refuses_a_bad_source_before_docker(run_cli: RunCli, tmp_path: Path, where: str) -> None:
    (tmp_path / "not-a-repo").mkdir()
    result = run_cli("verify", "some-image:tag", "--source", str(tmp_path / where))
    assert result.code == 2, result
    assert result.err.startswith("error: --source") and result.err.count("\n") == 1
    assert "Traceback" not in result.err and result.out == ""

"""Freeze the code: the commit, the committed tree of the experiment folder, dirty trees, the source URL."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from unit_factories import Experiment, MakeExperiment, git

from repropack.errors import BadInput
from repropack.freeze.code import _source, snapshot

COMMITTED = {"config.json", "data/points.csv", "experiment.yaml", "requirements.in", "requirements.lock", "train.py"}


def files_of(experiment: Experiment, **kwargs: object) -> dict[str, bytes]:
    return {f.path: f.data for f in snapshot(experiment.folder, **kwargs).files}  # type: ignore[arg-type]


def test_records_the_head_commit_and_the_folder(experiment: Experiment) -> None:
    code = snapshot(experiment.folder, allow_dirty=False)
    assert code.commit == git(experiment.repo, "rev-parse", "HEAD").strip()
    assert len(code.commit) == 40
    assert code.folder == "exp"
    assert code.diff is None and code.diff_sha256 is None


def test_ships_only_the_experiment_folder(experiment: Experiment) -> None:
    sibling = experiment.repo / "exp-other"  # shares the folder's name as a prefix
    sibling.mkdir()
    (sibling / "secret.txt").write_text("not part of the experiment\n")
    experiment.commit("sibling")
    files = files_of(experiment, allow_dirty=False)
    assert set(files) == COMMITTED
    assert files["train.py"] == b"print('accuracy: 0.9')\n"


def test_repository_root_as_the_experiment_folder(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(git_repo=False)
    git(experiment.folder, "init", "-q")
    experiment.repo = experiment.folder  # the experiment folder is the whole repository
    experiment.commit()
    code = snapshot(experiment.folder, allow_dirty=False)
    assert code.folder == "."
    assert {f.path for f in code.files} == COMMITTED


def test_untracked_files_are_not_shipped_and_do_not_make_the_tree_dirty(experiment: Experiment) -> None:
    experiment.write("notes.txt", "scratch\n")
    experiment.write("results/big.bin", b"\0" * 100)
    code = snapshot(experiment.folder, allow_dirty=False)
    assert {f.path for f in code.files} == COMMITTED
    assert code.diff is None


def test_a_dirty_tracked_file_is_refused_naming_it(experiment: Experiment) -> None:
    experiment.write("train.py", "print('edited')\n")
    with pytest.raises(BadInput) as caught:
        snapshot(experiment.folder, allow_dirty=False)
    message = str(caught.value)
    assert "exp/train.py" in message
    assert "--allow-dirty" in message
    assert caught.value.exit_code == 2


def test_a_staged_change_is_dirty_too(experiment: Experiment) -> None:
    experiment.write("train.py", "print('staged')\n")
    git(experiment.repo, "add", "exp/train.py")
    with pytest.raises(BadInput, match=r"train\.py"):
        snapshot(experiment.folder, allow_dirty=False)


def test_a_deleted_tracked_file_is_dirty(experiment: Experiment) -> None:
    (experiment.folder / "train.py").unlink()
    with pytest.raises(BadInput, match=r"train\.py"):
        snapshot(experiment.folder, allow_dirty=False)


def test_many_dirty_files_are_summarized(experiment: Experiment) -> None:
    for i in range(7):
        experiment.write(f"mod{i}.py", "x = 1\n")
    experiment.commit("modules")
    for i in range(7):
        experiment.write(f"mod{i}.py", "x = 2\n")
    with pytest.raises(BadInput, match="and 2 more"):
        snapshot(experiment.folder, allow_dirty=False)


def test_changes_outside_the_experiment_folder_do_not_count(experiment: Experiment) -> None:
    (experiment.repo / "README.md").write_text("edited outside\n")
    code = snapshot(experiment.folder, allow_dirty=False)
    assert code.diff is None


def test_allow_dirty_ships_the_working_tree_and_records_the_diff(experiment: Experiment) -> None:
    experiment.write("train.py", "print('edited')\n")
    (experiment.folder / "config.json").unlink()
    code = snapshot(experiment.folder, allow_dirty=True)
    files = {f.path: f.data for f in code.files}
    assert files["train.py"] == b"print('edited')\n"
    assert "config.json" not in files  # deleted in the working tree: not shipped
    assert code.diff is not None
    assert "+print('edited')" in code.diff
    assert code.diff_sha256 == hashlib.sha256(code.diff.encode()).hexdigest()


def test_allow_dirty_ships_staged_additions_and_renames(experiment: Experiment) -> None:
    # The recorded diff adds helper.py and renames train.py: the shipped files must say the same.
    experiment.write("helper.py", "HELP = 1\n")
    git(experiment.repo, "add", "exp/helper.py")
    git(experiment.repo, "mv", "exp/train.py", "exp/main.py")
    code = snapshot(experiment.folder, allow_dirty=True)
    files = {f.path: f.data for f in code.files}
    assert files["helper.py"] == b"HELP = 1\n"
    assert files["main.py"] == b"print('accuracy: 0.9')\n"
    assert "train.py" not in files
    assert code.diff is not None and "helper.py" in code.diff


def test_an_edited_dataset_is_not_a_code_change(experiment: Experiment) -> None:
    # Data ships (and is hashed) as data: editing a tracked dataset must not make the code dirty, and an
    # --allow-dirty diff must not carry the data (it would land in the manifest).
    data = experiment.folder / "data" / "points.csv"
    data.write_text("new,data\n")
    code = snapshot(experiment.folder, allow_dirty=False, exclude=(data,))
    assert code.diff is None
    experiment.write("train.py", "print('edited')\n")
    code = snapshot(experiment.folder, allow_dirty=True, exclude=(data,))
    assert code.diff is not None
    assert "train.py" in code.diff and "points.csv" not in code.diff
    assert "data/points.csv" not in {f.path for f in code.files}


def test_allow_dirty_on_a_clean_tree_records_no_diff(experiment: Experiment) -> None:
    experiment.write("untracked.py", "x\n")
    code = snapshot(experiment.folder, allow_dirty=True)
    assert code.diff is None and code.diff_sha256 is None
    assert {f.path for f in code.files} == COMMITTED


def test_committed_content_ships_even_when_the_working_tree_is_clean_but_different(experiment: Experiment) -> None:
    # A file ignored by git after it was committed: the working-tree version must not ship.
    experiment.write(".gitignore", "*.log\n")
    experiment.write("run.log", "committed\n")
    git(experiment.repo, "add", "-f", "exp/run.log", "exp/.gitignore")
    git(experiment.repo, "commit", "-q", "-m", "log")
    code = snapshot(experiment.folder, allow_dirty=False)
    assert {f.path: f.data for f in code.files}["run.log"] == b"committed\n"


def test_executable_bit_is_recorded(experiment: Experiment) -> None:
    script = experiment.write("run.sh", "#!/bin/sh\necho hi\n")
    os.chmod(script, 0o755)
    experiment.commit("script")
    modes = {f.path: f.executable for f in snapshot(experiment.folder, allow_dirty=False).files}
    assert modes["run.sh"] is True
    assert modes["train.py"] is False


def test_symlinks_are_not_shipped(experiment: Experiment) -> None:
    (experiment.folder / "link.py").symlink_to("train.py")
    experiment.commit("link")
    assert "link.py" not in {f.path for f in snapshot(experiment.folder, allow_dirty=False).files}


def test_binary_content_round_trips(experiment: Experiment) -> None:
    blob = bytes(range(256)) * 3 + b"\n\n"
    experiment.write("weights.bin", blob)
    experiment.write("empty.txt", b"")
    experiment.commit("binary")
    files = files_of(experiment, allow_dirty=False)
    assert files["weights.bin"] == blob
    assert files["empty.txt"] == b""


def test_exclude_drops_dataset_paths(experiment: Experiment) -> None:
    experiment.write("data/more/b.csv", "b\n")
    experiment.commit("more data")
    folder = experiment.folder
    files = files_of(experiment, allow_dirty=False, exclude=(folder / "data",))
    assert not any(path.startswith("data/") for path in files)
    files = files_of(experiment, allow_dirty=False, exclude=(folder / "data" / "points.csv",))
    assert "data/points.csv" not in files and "data/more/b.csv" in files


def test_exclude_outside_the_folder_changes_nothing(experiment: Experiment, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("x\n")
    assert set(files_of(experiment, allow_dirty=False, exclude=(outside,))) == COMMITTED


def test_not_a_git_repository(make_experiment: MakeExperiment, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = make_experiment(git_repo=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(experiment.repo.parent))  # never find a repo above
    with pytest.raises(BadInput, match="not inside a git repository") as caught:
        snapshot(experiment.folder, allow_dirty=False)
    assert caught.value.exit_code == 2


def test_repository_without_commits(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(commit=False)
    with pytest.raises(BadInput, match="has no commits yet") as caught:
        snapshot(experiment.folder, allow_dirty=False)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://user:tok@host.example/x.git", "https://host.example/x.git"),
        ("https://tok@host.example/x.git", "https://host.example/x.git"),
        ("https://user:p@ss@host.example/x.git", "https://host.example/x.git"),
        ("https://host.example/lab/x.git", "https://host.example/lab/x.git"),
        ("ssh://git@host.example/x.git", "ssh://host.example/x.git"),
        ("git@host.example:lab/x.git", "git@host.example:lab/x.git"),
        ("/srv/git/x.git", None),
        ("../x.git", None),
        ("file:///srv/git/x.git", None),
        ("x-local", None),
    ],
)
def test_source_url_without_credentials_or_local_paths(
    make_experiment: MakeExperiment, url: str, source: str | None
) -> None:
    experiment = make_experiment(origin=url, commit=False)  # the remote is all that matters here
    found = _source(experiment.repo)
    assert found == source
    assert "tok" not in (found or "") and "ss@" not in (found or "")


def test_snapshot_records_the_source(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(origin="https://user:tok@host.example/x.git")
    assert snapshot(experiment.folder, allow_dirty=False).source == "https://host.example/x.git"


def test_no_origin_remote_means_no_source(experiment: Experiment) -> None:
    assert snapshot(experiment.folder, allow_dirty=False).source is None


def test_git_is_run_read_only(experiment: Experiment) -> None:
    before = subprocess.run(
        ["git", "-C", str(experiment.repo), "status", "--porcelain"], capture_output=True, text=True, check=True
    ).stdout
    experiment.write("train.py", "print('edited')\n")
    snapshot(experiment.folder, allow_dirty=True)
    after = subprocess.run(
        ["git", "-C", str(experiment.repo), "diff", "--cached", "--name-only"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert before == "" and after == ""  # nothing was staged by the snapshot

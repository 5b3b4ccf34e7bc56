"""Commands as steps: a string is one process run without a shell, so shell operators in it are refused at
validation; a list is steps run in order in one writable working copy, stopping at the first failure."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from unit_factories import MakeExperiment

from repropack.errors import SpecError
from repropack.experiment.commands import shell_operator
from repropack.experiment.validate import load_spec
from tests.unit.test_runtime_entrypoint import load_entrypoint

ep = load_entrypoint()


@pytest.mark.parametrize(
    ("command", "operator"),
    [
        ("python prepare.py && python train.py", "&&"),
        ("python a.py || true", "||"),
        ("python a.py | tee log", "|"),
        ("python a.py; python b.py", ";"),
        ("python a.py > out.txt", ">"),
        ("python a.py < in.txt", "<"),
        ("python a.py --n `nproc`", "`"),
        ("python a.py --n $(nproc)", "$("),
        ("python train.py --config {config}", None),
        ("bash -c 'python prepare.py && python train.py'", None),  # a shell, asked for by name
        ("python a.py --sep \"a|b\" --x '>'", None),  # quoted: plain arguments
        ("python a.py --path a\\;b", None),  # escaped
    ],
)
def test_shell_operators_outside_quotes_are_found(command: str, operator: str | None) -> None:
    assert shell_operator(command) == operator


def test_a_shell_operator_is_bad_input_with_the_way_out(make_experiment: MakeExperiment) -> None:
    experiment = make_experiment(git_repo=False, commands={"train": "python prepare.py && python train.py"})
    with pytest.raises(SpecError) as refused:
        load_spec(experiment.spec_path)
    message = str(refused.value)
    assert refused.value.exit_code == 2 and "commands.train" in message and "'&&' is a shell operator" in message
    assert "as a list" in message and "bash -c" in message


def test_steps_are_a_list_of_commands(make_experiment: MakeExperiment) -> None:
    steps = ["python prepare.py --output {output}", "python train.py --config {config} --seed {seed}"]
    experiment = make_experiment(git_repo=False, commands={"train": steps, "evaluate": "python eval.py"})
    assert load_spec(experiment.spec_path).commands == {"evaluate": "python eval.py", "train": steps}
    for bad, says in (([], "at least one step"), (["python a.py", "x | y"], "commands.train.1")):
        experiment = make_experiment(git_repo=False, commands={"train": bad})
        with pytest.raises(SpecError, match=says):
            load_spec(experiment.spec_path)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_steps_run_in_order_in_one_folder_and_stop_at_the_first_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = [
        py("open('made.txt', 'w').write('prepared')"),
        py("print('read:', open('made.txt').read()); import sys; sys.exit(3)"),
        py("open('never.txt', 'w').write('x')"),
    ]
    result = ep.command.run_steps(steps, dict(os.environ), str(tmp_path), None, {})
    assert result["exit_code"] == 3 and result["failed_step"] == 2
    assert [step["exit_code"] for step in result["steps"]] == [0, 3]
    assert "read: prepared" in result["tail"] and not (tmp_path / "never.txt").exists()
    assert "repropack: step 2 of 3" in capsys.readouterr().out
    one = ep.command.run_steps([py("print('ok')")], dict(os.environ), str(tmp_path), None, {})
    assert one["exit_code"] == 0 and one["failed_step"] is None and len(one["steps"]) == 1


def test_a_timeout_is_for_all_the_steps(tmp_path: Path) -> None:
    steps = [py("import time; time.sleep(0.6)"), py("import time; time.sleep(5)")]
    result = ep.command.run_steps(steps, dict(os.environ), str(tmp_path), 1.0, {})
    assert result["status"] == "timed_out" and result["failed_step"] == 2


def test_the_working_copy_is_writable_and_the_code_is_not_touched(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "train.py").write_text("print('hi')\n")
    (code / "pkg" / "data.txt").write_text("x\n")
    for path in (code / "train.py", code / "pkg" / "data.txt"):
        path.chmod(0o444)
    for folder in (code / "pkg", code):
        folder.chmod(0o555)
    try:
        work = Path(ep.command.working_copy(str(code), None))
        (work / "prepared.bin").write_bytes(b"made next to the code")
        (work / "pkg" / "data.txt").write_text("changed\n")
        assert (work / "train.py").read_text() == "print('hi')\n"
        assert sorted(p.name for p in code.rglob("*")) == ["data.txt", "pkg", "train.py"]
        assert (code / "pkg" / "data.txt").read_text() == "x\n"
        assert not stat.S_IMODE((code / "train.py").stat().st_mode) & 0o222
    finally:
        for folder in (code, code / "pkg"):
            folder.chmod(0o755)


def test_a_command_the_seed_cannot_reach_is_warned_about_at_build(
    make_experiment: MakeExperiment, tmp_path: Path
) -> None:
    from repropack.freeze import freeze
    from repropack.image.build import seed_warnings

    lock = tmp_path / "scratch" / "requirements.lock"

    experiment = make_experiment(commands={"train": "python train.py --seed {seed}", "evaluate": "python eval.py"})
    frozen = freeze(experiment.load(), allow_dirty=False, engine=None, lock_missing_to=lock)
    (warning,) = seed_warnings(frozen)
    assert "'evaluate' takes no {seed} and its code never reads REPRO_SEED" in warning
    experiment.write("train.py", "import os\nseed = int(os.environ['REPRO_SEED'])\n")
    experiment.commit()
    assert seed_warnings(freeze(experiment.load(), allow_dirty=False, engine=None, lock_missing_to=lock)) == []


def test_artifacts_are_hashed_where_the_command_made_them(tmp_path: Path) -> None:
    import hashlib

    work, output = tmp_path / "work", tmp_path / "output"
    (work / "data").mkdir(parents=True)
    output.mkdir()
    (work / "data" / "train.bin").write_bytes(b"prepared")
    (output / "model.pt").write_bytes(b"weights")
    (output / "link.pt").symlink_to(output / "model.pt")
    found, problems = ep.outputs.hash_artifacts(["data/*.bin", "*.pt", "never/*"], str(work), str(output))
    assert found == {
        "code/data/train.bin": hashlib.sha256(b"prepared").hexdigest(),
        "output/model.pt": hashlib.sha256(b"weights").hexdigest(),  # the link is not an artifact's bytes
    }
    assert problems == ["artifact 'never/*' matched no file in the working folder or the output"]


def test_verify_compares_the_original_runs_artifacts_exactly() -> None:
    from repropack.verify.reproduce import compare_artifacts

    same = compare_artifacts({"code/a": "1"}, [{"artifacts": {"code/a": "1"}}, {"artifacts": {"code/a": "1"}}])
    assert same == {"code/a": {"expected": "1", "actual": ["1", "1"], "passed": True}}
    differs = compare_artifacts({"code/a": "1"}, [{"artifacts": {"code/a": "1"}}, {"artifacts": {}}])
    assert differs["code/a"]["passed"] is False and differs["code/a"]["actual"] == ["1", None]


def test_a_run_of_another_image_is_refused_for_the_paper() -> None:
    from repropack.errors import BadInput
    from repropack.manifest.paper import build_paper

    manifest: Any = {"sha256": "a" * 64, "experiment": {"name": "x"}}
    with pytest.raises(BadInput, match="not a run of this image"):
        build_paper(manifest, "sha256:" + "b" * 64, None, {"manifest_sha256": "c" * 64})

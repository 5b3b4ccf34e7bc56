"""The sbatch script repropack writes (checked by content; tests/integration/test_slurm_submit.py runs it
on a real cluster) and Slurm's bad input: malformed limits, names, a missing sbatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from repropack.cluster.slurm import SlurmOptions, render_script, submit
from repropack.errors import BadInput, EnvironmentProblem


def script(options: SlurmOptions, tasks: int = 3, folder: str = "/shared/g1") -> str:
    return render_script(
        folder=Path(folder),
        tasks=tasks,
        image="lab/tiny:v1",
        image_id="sha256:" + "a" * 64,
        experiment="tiny",
        group="g1",
        options=options,
    )


def test_one_array_with_a_concurrency_limit_and_the_asked_limits() -> None:
    text = script(SlurmOptions(partition="gpu", account="lab", time="1:00:00", memory="8g", gpus=1, concurrency=2))
    assert text.startswith("#!/bin/bash\n")
    for line in (
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --time=1:00:00",
        "#SBATCH --mem=8G",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --output=/shared/g1/task-%a/slurm.log",
    ):
        assert line + "\n" in text
    assert "docker run --rm --init" in text and "sha256:" + "a" * 64 in text
    assert "trap 'docker rm -f" in text  # a cancelled task does not leave its container
    assert '--gpus "\\"device=${CUDA_VISIBLE_DEVICES:-all}\\""' in text  # the job's own GPUs
    assert "--gpus" not in script(SlurmOptions()).split("docker run", 1)[1]
    assert script(SlurmOptions()) == script(SlurmOptions())


def test_the_concurrency_limit_is_never_more_than_the_tasks() -> None:
    assert "#SBATCH --array=0-0%1\n" in script(SlurmOptions(concurrency=8), tasks=1)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"time": "soon"}, "--time takes Slurm's form"),
        ({"memory": "lots"}, "--memory takes a size"),
        ({"partition": "gpu; rm -rf /"}, "--partition takes a Slurm name"),
        ({"account": "a b"}, "--account takes a Slurm name"),
    ],
)
def test_malformed_limits_are_bad_input(options: dict[str, str], says: str) -> None:
    with pytest.raises(BadInput, match=says):
        SlurmOptions(**options)  # type: ignore[arg-type]


def test_a_folder_with_a_space_is_refused() -> None:
    with pytest.raises(BadInput, match="holds a space"):
        script(SlurmOptions(), folder="/shared/my runs")


def test_no_sbatch_is_an_environment_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(Path, "exists", lambda self: False)
    with pytest.raises(EnvironmentProblem, match="'sbatch' is not installed"):
        submit(tmp_path / "submit.sbatch")

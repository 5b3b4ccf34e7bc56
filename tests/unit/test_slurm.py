"""The sbatch script repropack writes (checked by content; tests/integration/test_slurm_submit.py runs it
on a real cluster) and Slurm's bad input: malformed limits, names, a missing sbatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from repropack.cluster.slurm import SlurmOptions, default_runtime, render_script, submit
from repropack.errors import BadInput, EnvironmentProblem

PINNED = "registry.example.org:5000/lab/tiny@sha256:" + "c" * 64


def script(
    options: SlurmOptions,
    tasks: int = 3,
    folder: str = "/shared/g1",
    runtime: str = "docker",
    image: str = "lab/tiny:v1",
) -> str:
    return render_script(
        folder=Path(folder),
        tasks=tasks,
        image=image,
        image_id="sha256:" + "a" * 64,
        experiment="tiny",
        group="g1",
        options=options,
        runtime=runtime,
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
    with pytest.raises(EnvironmentProblem, match="'sbatch' is not installed"):
        submit(tmp_path / "submit.sbatch")


def test_apptainer_builds_the_image_once_from_the_registry_and_runs_its_entrypoint() -> None:
    text = script(SlurmOptions(gpus=1), runtime="apptainer", image=PINNED)
    assert f'apptainer build "$SIF.part" docker://{PINNED} ' in text
    assert '( flock 9 && { [ -s "$SIF" ] ||' in text  # one task of the array builds it, the others wait
    assert 'apptainer run --containall --cleanenv --no-home --nv --bind "$DIR/output:/output"' in text
    assert "docker run" not in text
    no_gpu = script(SlurmOptions(), runtime="apptainer", image="lab/tiny:v1")
    assert "--nv" not in no_gpu and "docker-daemon://lab/tiny:v1" in no_gpu  # a local image: the node's engine


def test_pyxis_names_the_image_as_enroot_does_and_calls_the_entrypoint_itself() -> None:
    text = script(SlurmOptions(), runtime="pyxis", image=PINNED)
    assert "--container-image='registry.example.org:5000#lab/tiny@sha256:" + "c" * 64 + "'" in text
    assert '--container-mounts="$DIR/output:/output"' in text
    # pyxis does not run the image's entrypoint: the script names the runtime by its path
    assert '/repro/runtime/entrypoint.py "${ARGS[@]}"' in text and "docker run" not in text


def test_every_runtime_writes_the_markers_and_traps_a_cancel() -> None:
    for runtime in ("docker", "apptainer", "pyxis"):
        text = script(SlurmOptions(), runtime=runtime, image=PINNED)
        assert "stamp started" in text and 'finish "$CODE"' in text
        assert "trap 'finish 143; " in text and "exit 143' TERM INT" in text  # the exit code is written first


def test_an_unknown_runtime_is_bad_input() -> None:
    with pytest.raises(BadInput, match="--runtime takes docker, apptainer, pyxis"):
        script(SlurmOptions(), runtime="singularity")


def test_the_default_runtime_is_apptainer_where_it_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert default_runtime() == "docker"
    (tmp_path / "apptainer").write_text("#!/bin/sh\n")
    (tmp_path / "apptainer").chmod(0o755)
    assert default_runtime() == "apptainer"

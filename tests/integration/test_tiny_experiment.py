"""Build, run and verify small real experiments on the real engine: every exit code of the contract."""

from __future__ import annotations

import datetime
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from testcontainers.core.container import DockerContainer

from repropack.image.build import build_image
from tests.integration.conftest import Experiment, cached_steps, git, repropack

pytestmark = pytest.mark.docker


def run_container(image: str, out: Path, *command: str) -> tuple[int, str]:
    """`docker run --rm -v OUT:/output IMAGE COMMAND`, through testcontainers."""
    out.mkdir(parents=True, exist_ok=True)
    container = DockerContainer(image).with_command(list(command)).with_volume_mapping(str(out), "/output", "rw")
    with container:
        status = container.get_wrapped_container().wait(timeout=300)
        stdout, stderr = container.get_logs()
    return int(status["StatusCode"]), (stdout + stderr).decode()


def test_build_then_docker_run_then_verify(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    experiment = make_experiment()
    head = git(experiment.root, "rev-parse", "HEAD").strip()
    built = experiment.build("ok")
    assert set(built) >= {"image", "tag", "manifest_digest"}
    image = docker_client.images.get(str(built["tag"]))
    assert image.id == built["image"]
    labels = image.labels
    assert labels["org.opencontainers.image.revision"] == head
    assert labels["io.repropack.manifest.digest"] == built["manifest_digest"]
    committed = int(git(experiment.root, "show", "-s", "--format=%ct", "HEAD").strip())
    created = datetime.datetime.fromtimestamp(committed, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert labels["org.opencontainers.image.created"] == created  # the commit's time, not the build's

    code, logs = run_container(str(built["tag"]), tmp_path / "out", "train")
    assert code == 0, logs
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["mean"] == pytest.approx(6.0)
    assert metrics["hashseed"] == 7  # PYTHONHASHSEED comes from the spec's seed
    assert metrics["first_random"] == random.Random(7).random()  # `random` seeded before the command's code
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert record["seed"] == 7 and record["device"] == "cpu" and record["gpu"]["visible"] is False
    assert record["settings"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert record["python"].startswith("3.11")
    assert record["manifest_sha256"] == str(built["manifest_digest"]).removeprefix("sha256:")

    verified = repropack("verify", str(built["tag"]), "--json")
    assert verified.code == 0, verified.stderr
    report = verified.json()
    assert report["reproduced"] is True
    mean = report["metrics"]["mean"]  # type: ignore[index]
    assert mean["expected"] == 6.0 and mean["actual"] == pytest.approx(6.0) and mean["passed"] is True
    assert mean["tolerance"] == pytest.approx(0.001)


def test_verify_fails_when_a_metric_is_out_of_tolerance(
    make_experiment: Callable[..., Experiment], base_image: str
) -> None:
    experiment = make_experiment(expected="mean: {value: 5.0, abs_tol: 0.5}")
    built = experiment.build("wrong")
    verified = repropack("verify", str(built["tag"]), "--json")
    assert verified.code == 1, verified.stderr
    report = verified.json()
    assert report["reproduced"] is False
    mean = report["metrics"]["mean"]  # type: ignore[index]
    assert mean["passed"] is False and mean["actual"] == pytest.approx(6.0) and mean["difference"] == pytest.approx(1.0)
    text = repropack("verify", str(built["tag"]))
    assert text.code == 1 and "NOT REPRODUCED" in text.stdout and "FAIL" in text.stdout


def test_dirty_tree_is_refused_unless_allowed(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="dirty")
    train = experiment.folder / "train.py"
    train.write_text(train.read_text().replace("mean * config", "1.0 * mean * config"))
    tag = experiment.tag("dirty")
    refused = repropack("build", str(experiment.spec), "--tag", tag)
    assert refused.code == 2
    assert "train.py" in refused.stderr and "--allow-dirty" in refused.stderr and "Traceback" not in refused.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)

    allowed = repropack("build", str(experiment.spec), "--tag", tag, "--allow-dirty", "--json")
    assert allowed.code == 0, allowed.stderr
    manifest = repropack("inspect", tag, "--json").json()
    code = manifest["code"]
    assert code["dirty"] is True  # type: ignore[index]
    assert "1.0 * mean * config" in code["diff"]  # type: ignore[index]
    assert len(code["diff_sha256"]) == 64  # type: ignore[index]


def test_one_line_code_edit_rebuilds_only_code_and_later_layers(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    experiment = make_experiment(name="cache")
    first = build_image(
        experiment.spec, allow_dirty=False, tag=experiment.tag("cache"), on_line=lambda _: None, on_note=lambda _: None
    )
    train = experiment.folder / "train.py"
    train.write_text(train.read_text() + "# a one-line edit\n")
    experiment.commit("one-line edit")
    lines: list[str] = []
    second = build_image(
        experiment.spec, allow_dirty=False, tag=experiment.tag("cache"), on_line=lines.append, on_note=lambda _: None
    )
    assert second.image_id != first.image_id
    steps = cached_steps("\n".join(lines))
    order = list(steps)
    code_step = next(i for i, step in enumerate(order) if step.startswith("COPY code/"))
    reused = [step for step in order[:code_step] if not step.startswith("FROM")]
    assert reused and all(steps[step] for step in reused), steps  # environment, runtime and data: from cache
    assert not any(steps[step] for step in order[code_step:]), steps  # code, config, manifest, labels: rebuilt


def test_failing_command_exits_4_and_records_the_failure(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="crash")
    (experiment.folder / "config.json").write_text(json.dumps({"scale": 2.0, "crash": True}) + "\n")
    experiment.commit("crash")
    built = experiment.build("crash")
    out = tmp_path / "out"
    result = repropack("run", str(built["tag"]), "train", "--output", str(out))
    assert result.code == 4
    shown = result.stdout + result.stderr
    assert shown.count("about to fail") == 1  # the command's output once, not again in the error
    assert "The command 'train' failed; its output is above." in result.stderr
    assert "exit code" not in result.stderr and "exit status" not in result.stderr  # one exit code: the process's
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert "about to fail" in record["output_tail"]
    quiet = repropack("run", str(built["tag"]), "train", "--output", str(tmp_path / "quiet"), "--json")
    assert quiet.code == 4 and "its last output: " in quiet.stderr and "about to fail" in quiet.stderr


def test_a_set_value_of_the_wrong_type_is_refused_before_anything_runs(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    built = make_experiment(name="typed").build("typed")
    out = tmp_path / "out"
    result = repropack("run", str(built["tag"]), "--set", "scale=big", "--output", str(out))
    assert result.code == 2, result.stderr
    assert "--set scale=big: scale in config.json is a number (2.0), not text" in result.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing ran
    inside = run_container(str(built["tag"]), tmp_path / "inside", "train", "--set", "scale=big")
    assert inside[0] == 2 and "scale in config.json is a number (2.0), not text" in inside[1]  # docker run too


def test_mounted_data_is_checked_before_the_command_runs(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(embed=False, name="mounted")
    built = experiment.build("mounted")
    image = str(built["tag"])

    missing = repropack("run", image, "--output", str(tmp_path / "a"))
    assert missing.code == 2 and "--data points=PATH" in missing.stderr

    data = experiment.folder / "data"
    ok = repropack("run", image, "--data", f"points={data}", "--output", str(tmp_path / "b"))
    assert ok.code == 0, ok.stderr
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["mean"] == pytest.approx(6.0)

    drifted = tmp_path / "drifted"
    drifted.mkdir()
    (drifted / "points.csv").write_text("x,y\n1,2\n2,3\n3,4\n4,30\n")
    refused = repropack("run", image, "--data", f"points={drifted}", "--output", str(tmp_path / "c"))
    assert refused.code == 2
    assert "points.csv" in refused.stderr and "changed" in refused.stderr
    assert not (tmp_path / "c" / "metrics.json").exists()

    bad_pair = repropack("run", image, "--data", "points")
    assert bad_pair.code == 2 and "NAME=PATH" in bad_pair.stderr
    unknown = repropack("run", image, "--data", f"pionts={data}")
    assert unknown.code == 2 and "points" in unknown.stderr


def test_gpu_required_without_a_gpu_exits_3(make_experiment: Callable[..., Experiment], base_image: str) -> None:
    experiment = make_experiment(gpu="required", name="needsgpu")
    built = experiment.build("needsgpu")
    result = repropack("run", str(built["tag"]))
    assert result.code == 3
    assert "requires a GPU" in result.stderr


def test_run_overrides_seed_and_config(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="overrides")
    built = experiment.build("overrides")
    out = tmp_path / "out"
    result = repropack("run", str(built["tag"]), "train", "--set", "scale=3", "--seed", "3", "--output", str(out))
    assert result.code == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mean"] == pytest.approx(9.0) and metrics["hashseed"] == 3
    assert metrics["first_random"] == random.Random(3).random()
    record = json.loads((out / "run.json").read_text())
    assert record["overrides"] == {"scale": 3} and record["seed"] == 3
    bad = repropack("run", str(built["tag"]), "train", "--set", "nosuchkey=1", "--output", str(tmp_path / "x"))
    assert bad.code == 2 and "nosuchkey" in bad.stderr


def test_inspect_shows_the_manifest_that_freeze_wrote(
    make_experiment: Callable[..., Experiment], base_image: str, tmp_path: Path
) -> None:
    experiment = make_experiment(name="inspect")
    frozen = [repropack("freeze", str(experiment.spec), "--output", str(tmp_path / f"f{i}")) for i in (1, 2)]
    assert all(r.code == 0 for r in frozen), frozen[0].stderr
    first, second = tmp_path / "f1", tmp_path / "f2"
    assert (first / "manifest.json").read_bytes() == (second / "manifest.json").read_bytes()
    assert (first / "Dockerfile").read_bytes() == (second / "Dockerfile").read_bytes()
    built = experiment.build("inspect")
    shown = repropack("inspect", str(built["tag"]), "--json")
    assert shown.code == 0
    assert shown.json() == json.loads((first / "manifest.json").read_text())
    summary = repropack("inspect", str(built["tag"]))
    assert "experiment  inspect" in summary.stdout and "mean" in summary.stdout


def test_a_second_build_of_the_same_commit_is_the_same_image(
    make_experiment: Callable[..., Experiment], base_image: str, docker_client: docker.DockerClient
) -> None:
    """No clock in the image: building an unchanged commit again gives the same image id (the tag does not
    move, a saved `verify sha256:...` still names it); SOURCE_DATE_EPOCH, when set, is the creation time."""
    experiment = make_experiment(name="twice")
    first = experiment.build("twice")
    time.sleep(1.1)  # a build-time timestamp would differ by now
    second = experiment.build("twice")
    assert second["image"] == first["image"]
    dated = experiment.build("dated", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert docker_client.images.get(str(dated["tag"])).labels["org.opencontainers.image.created"] == (
        "2023-11-14T22:13:20Z"
    )
    assert dated["image"] != first["image"]

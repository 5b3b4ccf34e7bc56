"""Steps on the real engine: a prepare step that writes next to its own code, then training that reads it,
run as root, as another user, and under verify's sandbox (read-only root) with the same result; a failing
step named in the error; a shell operator refused at validation."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Experiment, new_experiment, repropack
from tests.integration.test_tiny_experiment import run_container

pytestmark = pytest.mark.docker

PREPARE = """\
import pathlib, sys
rows = [line.split(",") for line in open(sys.argv[1]).read().splitlines()[1:]]
pathlib.Path("prepared.txt").write_text(str(sum(float(x) + float(y) for x, y in rows)))  # beside the code
print("prepared", len(rows), "rows")
"""
TRAIN = """\
import json, os, sys
total = float(open("prepared.txt").read())
out = sys.argv[sys.argv.index("--output") + 1]
json.dump({"mean": total / 4, "uid": os.getuid()}, open(os.path.join(out, "metrics.json"), "w"))
print("trained on", total)
"""


@pytest.fixture(scope="module")
def stepped(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[str]:
    experiment: Experiment = new_experiment(
        tmp_path_factory.mktemp("steps") / "steps",
        name="stepped",
        expected="mean: {value: 5.5, abs_tol: 0.001}",
        files={"prepare.py": PREPARE.encode()},
        train_py=TRAIN,
    )
    text = experiment.spec.read_text()
    one = "  train: python train.py --config {config} --data {datasets.points} --output {output} --seed {seed}"
    assert one in text
    experiment.spec.write_text(
        text.replace(
            one, "  train:\n    - python prepare.py {datasets.points}\n    - python train.py --output {output}"
        )
        + "artifacts:\n  - prepared.txt\n"
    )
    experiment.commit("steps")
    yield str(experiment.build("stepped")["tag"])


def test_a_prepare_step_that_writes_beside_its_code_works_for_every_user(stepped: str, tmp_path: Path) -> None:
    as_root = tmp_path / "root"
    code, logs = run_container(stepped, as_root, "train")
    assert code == 0, logs
    assert "step 1 of 2" in logs and "step 2 of 2" in logs and "prepared 4 rows" in logs
    assert json.loads((as_root / "metrics.json").read_text()) == {"mean": 5.5, "uid": 0}
    as_user = tmp_path / "user"
    as_user.mkdir()
    os.chown(as_user, 1234, 1234)  # the runtime runs the command as the output folder's owner
    code, logs = run_container(stepped, as_user, "train")
    assert code == 0, logs
    assert json.loads((as_user / "metrics.json").read_text()) == {"mean": 5.5, "uid": 1234}
    run = json.loads((as_user / "run.json").read_text())
    assert [step["exit_code"] for step in run["steps"]] == [0, 0] and run["failed_step"] is None
    verified = repropack("verify", stepped, "--json")  # the sandbox: read-only root file system
    assert verified.code == 0, verified.stdout + verified.stderr
    assert verified.json()["metrics"]["mean"]["actual"] == 5.5


def test_a_shell_operator_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    experiment = new_experiment(tmp_path / "shell", name="shelly")
    text = experiment.spec.read_text()
    experiment.spec.write_text(
        text.replace("  train: python train.py", "  train: python prepare.py && python train.py")
    )
    experiment.commit("shell")
    built = repropack("build", str(experiment.spec), "--json")
    assert built.code == 2 and "'&&' is a shell operator" in built.stderr and "bash -c" in built.stderr


def test_a_missing_expected_metric_fails_the_run(tmp_path: Path, base_image: str) -> None:
    experiment = new_experiment(
        tmp_path / "missing",
        name="missing",
        expected="mean: {value: 6.0, abs_tol: 0.001}\naccuracy: {value: 0.9, abs_tol: 0.01}",
    )
    tag = str(experiment.build("missing")["tag"])
    result = repropack("run", tag, "--output", str(tmp_path / "out"))
    assert result.code == 4, result.stderr
    assert "did not produce the metric accuracy that the experiment expects" in result.stderr
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "missing_metrics" and run["missing_metrics"] == ["accuracy"]
    code, logs = run_container(tag, tmp_path / "direct", "train")
    assert code == 4 and "did not produce the metric accuracy" in logs  # the image's own entrypoint too


def test_seeds_that_change_nothing_are_reported(stepped: str) -> None:
    verified = repropack("verify", stepped, "--seeds", "0,1", "--json")
    assert verified.code == 0, verified.stderr
    assert verified.json()["seeds_had_no_effect"] is True
    shown = repropack("verify", stepped, "--seeds", "0,1")
    assert "seeds had no effect: all 2 seeds gave exactly the same metrics" in shown.stdout


FLAGS = """\
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--factor", type=float)
parser.add_argument("--label")
parser.add_argument("--output")
args = parser.parse_args()
json.dump({"mean": 6.0, "product": 2.0 * args.factor}, open(os.path.join(args.output, "metrics.json"), "w"))
print("label", args.label)
"""


def test_params_vary_a_flag_driven_script_by_set_and_sweep(tmp_path: Path, base_image: str) -> None:
    experiment = new_experiment(tmp_path / "flags", name="flags", train_py=FLAGS)
    text = experiment.spec.read_text()
    one = "  train: python train.py --config {config} --data {datasets.points} --output {output} --seed {seed}"
    experiment.spec.write_text(
        text.replace(
            one, "  train: python train.py --factor {params.factor} --label {params.label} --output {output}"
        ).replace("commands:\n", "params:\n  factor: 1.5\n  label: base\ncommands:\n")
    )
    experiment.commit("params")
    tag = str(experiment.build("flags")["tag"])
    out = tmp_path / "out"
    default = repropack("run", tag, "--output", str(out / "a"), "--json")
    assert default.code == 0, default.stderr
    assert json.loads((out / "a" / "metrics.json").read_text())["product"] == 3.0
    changed = repropack("run", tag, "--set", "factor=4", "--set", "label=x", "--output", str(out / "b"))
    assert changed.code == 0, changed.stderr
    assert json.loads((out / "b" / "metrics.json").read_text())["product"] == 8.0
    run = json.loads((out / "b" / "run.json").read_text())
    assert run["params"] == {"factor": 4, "label": "x"} and run["overrides"] == {"factor": 4, "label": "x"}
    bad = repropack("run", tag, "--set", "factor=big", "--output", str(out / "c"))
    assert bad.code == 2 and "factor in the spec's params is a number (1.5), not text" in bad.stderr
    swept = repropack("run", tag, "--sweep", "factor=1,2", "--group", "flagged", "--output", str(out / "d"))
    assert swept.code == 0, swept.stderr
    listed = json.loads(repropack("runs", "--group", "flagged", "--json").stdout)
    assert sorted((r["overrides"]["factor"], r["metrics"]["product"]) for r in listed) == [(1, 2.0), (2, 4.0)]
    code, logs = run_container(tag, tmp_path / "direct", "train", "--set", "label=inside")
    assert code == 0 and "label inside" in logs  # the image's own entrypoint takes them too


def test_the_experiments_tests_run_in_the_new_image_before_it_is_tagged(tmp_path: Path, base_image: str) -> None:
    import docker

    client = docker.from_env()
    experiment = new_experiment(
        tmp_path / "tested", name="tested", files={"check.py": b"import sys\nprint('tests: ok')\nsys.exit(0)\n"}
    )
    text = experiment.spec.read_text().replace("commands:\n", "commands:\n  test: python check.py\n")
    experiment.spec.write_text(text)
    experiment.commit("tests")
    built = experiment.build("tested")
    manifest = json.loads(repropack("inspect", str(built["tag"]), "--json").stdout)
    assert manifest["tests"] == {"command": "test", "at_build": True}
    code, logs = run_container(str(built["tag"]), tmp_path / "direct", "test")
    assert code == 0 and "tests: ok" in logs  # docker run IMAGE test runs them too

    (experiment.folder / "check.py").write_text("import sys\nprint('tests: 1 failed')\nsys.exit(1)\n")
    experiment.commit("a failing test")
    failing = experiment.tag("failing")
    refused = repropack("build", str(experiment.spec), "--json", "--tag", failing)
    assert refused.code == 4, refused.stdout + refused.stderr
    assert "The command 'test' failed" in refused.stderr and "tests: 1 failed" in refused.stderr
    assert not [image for image in client.images.list() if failing in image.tags]  # no tag, nothing left named
    skipped = experiment.build("skipped", "--no-test")
    manifest = json.loads(repropack("inspect", str(skipped["tag"]), "--json").stdout)
    assert manifest["tests"] == {"command": "test", "at_build": False}  # the manifest says they were skipped


def test_an_artifact_of_the_original_run_is_compared_exactly(stepped: str, tmp_path: Path) -> None:
    import hashlib

    code, logs = run_container(stepped, tmp_path / "original", "train")
    assert code == 0, logs
    run = json.loads((tmp_path / "original" / "run.json").read_text())
    assert run["artifacts"] == {"code/prepared.txt": hashlib.sha256(b"22.0").hexdigest()}
    paper = tmp_path / "paper.json"
    written = repropack("manifest", stepped, "--run", str(tmp_path / "original" / "run.json"), "--output", str(paper))
    assert written.code == 0, written.stderr
    assert json.loads(paper.read_text())["run"]["artifacts"] == run["artifacts"]
    verified = repropack("verify", str(paper), "--json")
    assert verified.code == 0, verified.stdout + verified.stderr
    assert verified.json()["artifacts"]["code/prepared.txt"]["passed"] is True
    claimed = json.loads(paper.read_text())
    claimed["run"]["artifacts"]["code/prepared.txt"] = "0" * 64  # a paper whose intermediate data differs
    paper.write_text(json.dumps(claimed))
    differs = repropack("verify", str(paper))
    assert differs.code == 1 and "FAIL code/prepared.txt" in differs.stdout and "NOT REPRODUCED" in differs.stdout


def test_a_yaml_config_takes_set(tmp_path: Path, base_image: str) -> None:
    experiment = new_experiment(tmp_path / "yamlcfg", name="yamlcfg")
    (experiment.folder / "config.json").unlink()
    (experiment.folder / "config.yaml").write_text('# YAML in flow style\n{"scale": 2.0, "crash": false}\n')
    experiment.spec.write_text(experiment.spec.read_text().replace("config: config.json", "config: config.yaml"))
    experiment.commit("a YAML config")
    tag = str(experiment.build("yamlcfg")["tag"])
    changed = repropack("run", tag, "--set", "scale=3", "--output", str(tmp_path / "out"))
    assert changed.code == 0, changed.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["mean"] == 9.0
    typed = repropack("run", tag, "--set", "scale=big", "--output", str(tmp_path / "bad"))
    assert typed.code == 2 and "scale in config.yaml is a number (2.0), not text" in typed.stderr

"""The image's entrypoint (stdlib only), imported straight from its file as the image runs it."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import repropack

ENTRYPOINT = Path(repropack.__file__).parent / "runtime" / "entrypoint.py"


def load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("repro_entrypoint_under_test", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ep = load_entrypoint()

BASE_MANIFEST: dict[str, Any] = {
    "experiment": {"name": "spiral-mlp", "seed": 7, "gpu": "auto"},
    "commands": {
        "train": "python train.py --config {config} --data {datasets.points} --output {output} --seed {seed}",
        "evaluate": "python eval.py --weights {datasets.my-weights} --literal {{braces}}",
    },
    "config": {
        "file": "config.json",
        "path": "/repro/config/config.json",
        "content": json.dumps({"lr": 0.1, "model": {"hidden": 16, "act": "relu"}}),
    },
    "datasets": {
        "points": {
            "path": "/repro/data/points/points.csv",
            "mount": "/repro/data/points",
            "kind": "file",
            "embed": True,
            "files": {},
        },
        "my-weights": {
            "path": "/repro/data/my-weights",
            "mount": "/repro/data/my-weights",
            "kind": "directory",
            "embed": False,
            "files": {},
        },
    },
    "metrics": {"file": "metrics.json", "stdout": {}, "expected": {}},
    "layout": {"output": "/output", "code": "/repro/code"},
}


@pytest.fixture
def make_manifest() -> Callable[..., dict[str, Any]]:
    def make(**sections: Any) -> dict[str, Any]:
        manifest = copy.deepcopy(BASE_MANIFEST)
        manifest.update(sections)
        return manifest

    return make


def stop(call: Callable[[], Any]) -> Any:
    with pytest.raises(ep.Stop) as caught:
        call()
    return caught.value


# -- parse_args --------------------------------------------------------------------------------------------


def test_parse_args_defaults(make_manifest: Callable[..., dict[str, Any]]) -> None:
    options = ep.parse_args(["train"], make_manifest())
    assert options == {
        "command": "train",
        "seed": 7,
        "sets": [],
        "timeout": None,
        "determinism": "strict",
        "output": "/output",
        "new_data": [],
    }


def test_parse_args_all_options(make_manifest: Callable[..., dict[str, Any]]) -> None:
    options = ep.parse_args(
        [
            "evaluate",
            "--seed",
            "42",
            "--set",
            "lr=0.5",
            "--set",
            "model.hidden=8",
            "--timeout",
            "1.5",
            "--determinism",
            "warn",
            "--output",
            "/elsewhere",
        ],
        make_manifest(),
    )
    assert options["seed"] == 42
    assert options["sets"] == ["lr=0.5", "model.hidden=8"]
    assert (options["timeout"], options["determinism"], options["output"]) == (1.5, "warn", "/elsewhere")


def test_unknown_command_is_bad_input(make_manifest: Callable[..., dict[str, Any]]) -> None:
    error = stop(lambda: ep.parse_args(["trian"], make_manifest()))
    assert error.code == 2
    assert "Unknown command 'trian'" in error.message and "evaluate, train" in error.message


def test_no_command_is_bad_input_and_help_is_not(make_manifest: Callable[..., dict[str, Any]]) -> None:
    assert stop(lambda: ep.parse_args([], make_manifest())).code == 2
    shown = stop(lambda: ep.parse_args(["--help"], make_manifest()))
    assert shown.code == 0 and "commands: evaluate, train" in shown.message


@pytest.mark.parametrize("seed", ["-1", "x", "1.5", "4294967296", "", "²", "1e3"])
def test_bad_seed(make_manifest: Callable[..., dict[str, Any]], seed: str) -> None:
    error = stop(lambda: ep.parse_args(["train", "--seed", seed], make_manifest()))
    assert error.code == 2
    assert "--seed takes a whole number" in error.message


def test_largest_seed(make_manifest: Callable[..., dict[str, Any]]) -> None:
    assert ep.parse_args(["train", "--seed", "4294967295"], make_manifest())["seed"] == 2**32 - 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--set", "novalue"], "--set takes KEY=VALUE"),
        (["train", "--set", "=1"], "--set takes KEY=VALUE"),
        (["train", "--timeout", "soon"], "--timeout takes seconds"),
        (["train", "--determinism", "maybe"], "--determinism is one of strict, warn, off"),
        (["train", "--verbose"], "Unexpected argument '--verbose'"),
        (["train", "--seed"], "Unexpected argument '--seed'"),
    ],
)
def test_bad_options(make_manifest: Callable[..., dict[str, Any]], argv: list[str], fragment: str) -> None:
    error = stop(lambda: ep.parse_args(argv, make_manifest()))
    assert error.code == 2
    assert fragment in error.message


# -- check_dataset -----------------------------------------------------------------------------------------


@pytest.fixture
def mounted(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A dataset folder and its manifest record, as the image would see them."""
    mount = tmp_path / "mount"
    mount.mkdir()
    files = {"a.csv": b"a\n", "sub/b.csv": b"b\n"}
    for rel, data in files.items():
        (mount / rel).parent.mkdir(parents=True, exist_ok=True)
        (mount / rel).write_bytes(data)
    record = {"mount": str(mount), "kind": "directory", "embed": False, **indexed(tmp_path / "d.idx", files)}
    return mount, record


def indexed(path: Path, files: dict[str, bytes]) -> dict[str, Any]:
    """Write a dataset index (sorted 'sha256  size  path' lines) and the manifest fields that pin it."""
    lines = "".join(f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {rel}\n" for rel, data in sorted(files.items()))
    path.write_text(lines)
    return {"index": str(path), "sha256": hashlib.sha256(lines.encode()).hexdigest(), "files": len(files)}


def test_check_dataset_accepts_matching_files(mounted: tuple[Path, dict[str, Any]]) -> None:
    assert ep.datasets.check_dataset("d", mounted[1]) is None


def test_check_dataset_names_changed_missing_and_extra(mounted: tuple[Path, dict[str, Any]]) -> None:
    mount, record = mounted
    (mount / "a.csv").write_bytes(b"A\n")
    (mount / "sub" / "b.csv").unlink()
    (mount / "new.csv").write_bytes(b"n\n")
    problem = ep.datasets.check_dataset("d", record)
    assert problem == "'d' differs from the manifest (changed: a.csv; missing: sub/b.csv; extra: new.csv)"


def test_file_names_with_spaces_and_odd_separators_are_read_as_written(tmp_path: Path) -> None:
    files = {" leading.csv": b"1\n", "two  spaces.csv": b"2\n", "form\x0cfeed.csv": b"3\n"}
    mount = tmp_path / "odd"
    mount.mkdir()
    for rel, data in files.items():
        (mount / rel).write_bytes(data)
    record = {"mount": str(mount), "kind": "directory", "embed": False, **indexed(tmp_path / "odd.idx", files)}
    assert set(ep.datasets.read_index("odd", record)) == set(files)
    assert ep.datasets.check_dataset("odd", record) is None


def test_check_dataset_missing_mount(tmp_path: Path, mounted: tuple[Path, dict[str, Any]]) -> None:
    record = {**mounted[1], "mount": str(tmp_path / "nowhere")}
    problem = ep.datasets.check_dataset("d", record)
    assert problem is not None and "'d' is not there" in problem


def test_check_dataset_file_kind_ignores_neighbours(mounted: tuple[Path, dict[str, Any]]) -> None:
    mount, record = mounted
    single = {**record, "kind": "file", **indexed(mount.parent / "single.idx", {"a.csv": b"a\n"})}
    assert ep.datasets.check_dataset("d", single) is None  # sub/b.csv sits beside it: fine for a single-file dataset
    (mount / "a.csv").write_bytes(b"changed\n")
    assert ep.datasets.check_dataset("d", single) == "'d' differs from the manifest (changed: a.csv)"


def test_a_tampered_or_missing_index_is_code_1(mounted: tuple[Path, dict[str, Any]]) -> None:
    _mount, record = mounted
    Path(record["index"]).write_text(Path(record["index"]).read_text().replace("a.csv", "z.csv"))
    assert stop(lambda: ep.datasets.check_dataset("d", record)).code == 1
    Path(record["index"]).unlink()
    assert "is missing" in stop(lambda: ep.datasets.check_dataset("d", record)).message


def test_check_datasets_embedded_mismatch_is_code_1_mounted_is_code_2(mounted: tuple[Path, dict[str, Any]]) -> None:
    mount, record = mounted
    (mount / "a.csv").write_bytes(b"tampered\n")
    assert stop(lambda: ep.datasets.check_datasets({"datasets": {"d": {**record, "embed": True}}})).code == 1
    error = stop(lambda: ep.datasets.check_datasets({"datasets": {"d": record}}))
    assert error.code == 2
    assert f"-v HOST_PATH:{mount}:ro" in error.message


def test_check_datasets_reports_each_datasets_digest_and_how_it_came(mounted: tuple[Path, dict[str, Any]]) -> None:
    _mount, record = mounted
    uses = ep.datasets.check_datasets({"datasets": {"d": record, "e": {**record, "embed": True}}})
    assert uses == {
        "d": {"sha256": record["sha256"], "embedded": False, "as_frozen": True},
        "e": {"sha256": record["sha256"], "embedded": True, "as_frozen": True},
    }


def test_new_data_is_hashed_not_refused_and_its_digest_is_the_manifests_kind(
    mounted: tuple[Path, dict[str, Any]],
) -> None:
    mount, record = mounted
    same = ep.datasets.check_datasets({"datasets": {"d": record}}, ["d"])
    assert same["d"] == {"sha256": record["sha256"], "embedded": False, "as_frozen": True}  # same bytes, same digest
    (mount / "a.csv").write_bytes(b"new data\n")
    for embed in (False, True):  # new data in place of an embedded dataset is not "the image was modified"
        uses = ep.datasets.check_datasets({"datasets": {"d": {**record, "embed": embed}}}, ["d"])
        assert uses["d"]["as_frozen"] is False and uses["d"]["sha256"] != record["sha256"]
    assert stop(lambda: ep.datasets.check_datasets({"datasets": {"d": record}})).code == 2  # without: refused


def test_new_data_names_a_dataset_of_the_manifest(make_manifest: Callable[..., dict[str, Any]]) -> None:
    manifest = make_manifest()
    name = sorted(manifest["datasets"])[0]
    assert ep.parse_args(["train", "--new-data", name], manifest)["new_data"] == [name]
    error = stop(lambda: ep.parse_args(["train", "--new-data", "nope"], manifest))
    assert error.code == 2 and "no dataset 'nope'" in error.message


# -- apply_overrides ---------------------------------------------------------------------------------------


def test_no_overrides_use_the_frozen_config(make_manifest: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    assert ep.command.apply_overrides(make_manifest(), [], str(tmp_path)) == ("/repro/config/config.json", {})
    assert not (tmp_path / "config.json").exists()


def test_overrides_with_dotted_keys(make_manifest: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    path, applied = ep.command.apply_overrides(
        make_manifest(), ["lr=0.5", "model.hidden=32", "model.act=tanh", 'model.act="gelu"'], str(tmp_path)
    )
    assert path == str(tmp_path / "config.json")
    assert applied == {"lr": 0.5, "model.hidden": 32, "model.act": "gelu"}
    assert json.loads(Path(path).read_text()) == {"lr": 0.5, "model": {"hidden": 32, "act": "gelu"}}


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("lr_typo=1", "has no key 'lr_typo' (it has: lr, model)"),
        ("model.width=1", "has no key 'width' (it has: act, hidden)"),
        ("lr.x=1", "'lr' is not a section of config.json"),
        ("nothing.x=1", "'nothing' is not a section of config.json"),
    ],
)
def test_unknown_override_key(
    make_manifest: Callable[..., dict[str, Any]], tmp_path: Path, item: str, fragment: str
) -> None:
    error = stop(lambda: ep.command.apply_overrides(make_manifest(), [item], str(tmp_path)))
    assert error.code == 2
    assert fragment in error.message


def test_overrides_need_a_json_config(make_manifest: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    assert stop(lambda: ep.command.apply_overrides(make_manifest(config=None), ["lr=1"], str(tmp_path))).code == 2
    yaml_config = {"file": "config.yaml", "path": "/repro/config/config.yaml", "content": "lr: 1\n"}
    assert (
        stop(lambda: ep.command.apply_overrides(make_manifest(config=yaml_config), ["lr=1"], str(tmp_path))).code == 2
    )


def test_dotted_override_of_a_config_that_is_not_a_mapping(
    make_manifest: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    config = {"file": "config.json", "path": "/repro/config/config.json", "content": "[1, 2]"}
    for item in ("lr=1", "model.hidden=1"):
        assert (
            stop(lambda item=item: ep.command.apply_overrides(make_manifest(config=config), [item], str(tmp_path))).code
            == 2
        )


# -- command_argv ------------------------------------------------------------------------------------------


def test_command_argv_fills_placeholders(make_manifest: Callable[..., dict[str, Any]]) -> None:
    argv = ep.command.command_argv(make_manifest(), "train", "/out dir/config.json", 3, "/out dir")
    assert argv == [
        "python",
        "train.py",
        "--config",
        "/out dir/config.json",
        "--data",
        "/repro/data/points/points.csv",
        "--output",
        "/out dir",
        "--seed",
        "3",
    ]


def test_command_argv_dataset_names_with_dashes_and_literal_braces(
    make_manifest: Callable[..., dict[str, Any]],
) -> None:
    argv = ep.command.command_argv(make_manifest(), "evaluate", None, 0, "/output")
    assert argv == ["python", "eval.py", "--weights", "/repro/data/my-weights", "--literal", "{braces}"]


def test_command_argv_keeps_quoted_arguments_whole(make_manifest: Callable[..., dict[str, Any]]) -> None:
    manifest = make_manifest(commands={"run": "python -c 'print(1 + 1)' {seed}"})
    assert ep.command.command_argv(manifest, "run", None, 5, "/output") == ["python", "-c", "print(1 + 1)", "5"]


# -- metrics -----------------------------------------------------------------------------------------------


def test_collect_metrics_from_file_and_stdout(make_manifest: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(
        json.dumps({"accuracy": 0.9, "eval": {"loss": 0.25, "steps": 3}, "note": "text", "flag": True})
    )
    manifest = make_manifest(
        metrics={
            "file": "metrics.json",
            "stdout": {"loss": "x"},
            "expected": {"accuracy": {}, "eval.loss": {}, "loss": {}},
        }
    )
    metrics, problems = ep.outputs.collect_metrics(manifest, str(tmp_path), {"loss": "1.5"})
    assert metrics == {"accuracy": 0.9, "eval.loss": 0.25, "eval.steps": 3.0, "loss": 1.5}
    assert problems == []


def test_collect_metrics_reports_what_is_missing(make_manifest: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    manifest = make_manifest(metrics={"file": "metrics.json", "stdout": {}, "expected": {"accuracy": {}}})
    metrics, problems = ep.outputs.collect_metrics(manifest, str(tmp_path), {"loss": "not-a-number"})
    assert metrics == {}
    assert any("metrics file metrics.json could not be read" in p for p in problems)
    assert "metric loss: 'not-a-number' is not a number" in problems
    assert "expected metric 'accuracy' was not produced" in problems


def test_collect_metrics_bad_json(make_manifest: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    _, problems = ep.outputs.collect_metrics(make_manifest(), str(tmp_path), {})
    assert len(problems) == 1 and "could not be read" in problems[0]


@pytest.mark.parametrize("plant", ["fifo", "link", "zero", "folder", "huge"])
def test_collect_metrics_reads_only_a_regular_file(
    make_manifest: Callable[..., dict[str, Any]], tmp_path: Path, plant: str
) -> None:
    """A FIFO would block the runtime for ever, /dev/zero fill its memory: the command's failure (4)."""
    path = tmp_path / "metrics.json"
    if plant == "fifo":
        os.mkfifo(path)
    elif plant == "link":
        (tmp_path / "real.json").write_text('{"a": 1}')
        path.symlink_to(tmp_path / "real.json")
    elif plant == "zero":
        path.symlink_to("/dev/zero")
    elif plant == "folder":
        path.mkdir()
    else:
        path.write_bytes(b" " * (ep.outputs.METRICS_CAP + 1))
    with pytest.raises(ep.Stop) as stopped:
        ep.outputs.collect_metrics(make_manifest(), str(tmp_path), {})  # a FIFO opened blocking would hang here
    assert stopped.value.code == 4
    assert f"The metrics file {path} is" in stopped.value.message


@pytest.mark.parametrize(
    ("data", "flat"),
    [
        ({"a": 1, "b": {"c": 2, "d": {"e": 3}}}, {"a": 1, "b.c": 2, "b.d.e": 3}),
        ({"a": [1, 2]}, {"a": [1, 2]}),
        ({}, {}),
        (5, {}),
        ({"a": {}}, {}),
    ],
)
def test_flatten(data: Any, flat: dict[str, Any]) -> None:
    assert ep.outputs.flatten(data) == flat


# -- environment -------------------------------------------------------------------------------------------


def test_command_environment_sets_seeds_and_dataset_paths(make_manifest: Callable[..., dict[str, Any]]) -> None:
    options = {"seed": 11, "determinism": "warn", "output": "/output"}
    env = ep.command.command_environment(make_manifest(), options, "/repro/config/config.json", "cpu", "/state")
    assert (env["PYTHONHASHSEED"], env["REPRO_SEED"], env["REPRO_DETERMINISM"]) == ("11", "11", "warn")
    assert env["REPRO_DATA_MY_WEIGHTS"] == "/repro/data/my-weights"
    assert env["REPRO_CONFIG"] == "/repro/config/config.json"
    assert env["PYTHONPATH"].split(":")[0] == ep.command.HOOKS_DIR
    assert "CUDA_VISIBLE_DEVICES" not in env or env["CUDA_VISIBLE_DEVICES"] != ""


def test_the_command_environment_inherits_nothing_that_loads_code(
    make_manifest: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    inherited = {
        "PYTHONPATH": "/evil",
        "PYTHONSTARTUP": "/evil.py",
        "PYTHONPYCACHEPREFIX": "/evil",
        "LD_PRELOAD": "/evil.so",
        "LD_LIBRARY_PATH": "/evil",
        "PATH": "/evil:/usr/bin",
        "BASH_ENV": "/evil.sh",
        "REPRO_MANIFEST": "/evil.json",
        "GLIBC_TUNABLES": "x",
    }
    for key, value in {**inherited, "NVIDIA_VISIBLE_DEVICES": "all"}.items():
        monkeypatch.setenv(key, value)
    env = ep.command.command_environment(
        make_manifest(), {"seed": 1, "determinism": "off", "output": "/o"}, None, "cpu", "/state"
    )
    assert not [key for key in inherited if "evil" in env.get(key, "") or env.get(key) == "x"], env
    assert env["PATH"] == ep.layout.COMMAND_PATH and env["PYTHONPATH"] == ep.command.HOOKS_DIR
    assert env["PYTHONPYCACHEPREFIX"] == "/state/pycache"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"  # the container runtime's own settings stay
    assert ep.layout.MANIFEST == "/repro/manifest.json"


def test_gpu_none_hides_devices(make_manifest: Callable[..., dict[str, Any]]) -> None:
    manifest = make_manifest(experiment={"name": "x", "seed": 0, "gpu": "none"})
    env = ep.command.command_environment(manifest, {"seed": 0, "determinism": "off", "output": "/o"}, None, "cpu", "/s")
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert "REPRO_CONFIG" not in env

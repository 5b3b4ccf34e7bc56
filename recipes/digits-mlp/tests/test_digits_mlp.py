"""Unit tests for the digits-mlp recipe, on a 100-row slice so the whole file runs in seconds.

They need torch (the recipe's only dependency); in an environment without it, such as repropack's
own dev venv, the module is skipped rather than failing at import.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from digits_mlp import evaluate, train  # noqa: E402
from digits_mlp.config import Config, load_config  # noqa: E402
from digits_mlp.data import load_digits, load_split, split  # noqa: E402
from digits_mlp.device import pick_device  # noqa: E402
from digits_mlp.model import DigitsMLP  # noqa: E402

RECIPE_DIR = Path(__file__).resolve().parent.parent
# Inside the image (commands.test) the data and weights are the shipped datasets, not files of the code.
DATA = Path(os.environ.get("REPRO_DATA_DIGITS") or RECIPE_DIR / "data" / "digits.csv.gz")
SHIPPED_WEIGHTS = Path(os.environ.get("REPRO_DATA_WEIGHTS") or RECIPE_DIR / "weights" / "model.pt")
CONFIG = Path(os.environ.get("REPRO_CONFIG") or RECIPE_DIR / "config.json")
LIMIT = 100
TINY = {"hidden_size": 16, "epochs": 2, "batch_size": 16, "learning_rate": 0.01, "test_fraction": 0.2}


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact equality between runs is only promised on CPU, so the tests never pick a GPU."""
    monkeypatch.setenv("REPRO_DEVICE", "cpu")


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config for a 2-epoch run with a small hidden layer."""
    path = tmp_path_factory.mktemp("config") / "config.json"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    return path


def cli(**options: object) -> list[str]:
    """Turn keyword arguments into ``--name value`` pairs for the commands' ``main``."""
    return [item for name, value in options.items() for item in (f"--{name}", str(value))]


def run_train(config: Path, output: Path, seed: int) -> dict[str, float]:
    """Train on the slice in-process (no interpreter start-up per run) and return metrics.json.

    The device is pinned here as well as in ``_cpu_only`` because module-scoped fixtures that call
    this are set up before any function-scoped fixture.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPRO_DEVICE", "cpu")
        assert train.main(cli(config=config, data=DATA, output=output, seed=seed, limit=LIMIT)) == 0
    metrics: dict[str, float] = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    return metrics


@pytest.fixture(scope="module")
def trained(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seed-7 training run shared by the tests that only read its outputs."""
    output = tmp_path_factory.mktemp("train-seed7")
    run_train(tiny_config, output, seed=7)
    return output


def test_load_digits_shapes_and_ranges() -> None:
    features, labels = load_digits(DATA, limit=LIMIT)
    assert features.shape == (LIMIT, 64) and features.dtype == torch.float32
    assert labels.shape == (LIMIT,) and labels.dtype == torch.int64
    assert features.min().item() >= 0.0 and features.max().item() <= 1.0
    assert set(labels.tolist()) == set(range(10))


def test_full_file_has_all_rows() -> None:
    features, labels = load_digits(DATA)
    assert features.shape == (1797, 64) and labels.shape == (1797,)


def test_split_is_deterministic_and_disjoint() -> None:
    _, labels = load_digits(DATA, limit=LIMIT)
    index = torch.arange(LIMIT, dtype=torch.float32).unsqueeze(1)  # tag rows to trace them
    first = split(index, labels, test_fraction=0.2, seed=0)
    again = split(index, labels, test_fraction=0.2, seed=0)
    other = split(index, labels, test_fraction=0.2, seed=1)
    assert first.test_x.shape[0] == 20 and first.train_x.shape[0] == 80
    assert torch.equal(first.test_x, again.test_x) and torch.equal(first.train_x, again.train_x)
    assert not torch.equal(first.test_x, other.test_x)
    seen = torch.cat([first.train_x, first.test_x]).squeeze(1).sort().values
    assert torch.equal(seen, index.squeeze(1))
    assert load_split(DATA, 0.2, 0, LIMIT).test_x.shape == (20, 64)


def test_split_ignores_the_global_rng() -> None:
    features, labels = load_digits(DATA, limit=LIMIT)
    torch.manual_seed(1)
    first = split(features, labels, 0.2, seed=0)
    torch.manual_seed(2)
    second = split(features, labels, 0.2, seed=0)
    assert torch.equal(first.test_y, second.test_y)


def test_model_output_shape() -> None:
    logits = DigitsMLP(hidden_size=8)(torch.zeros(5, 64))
    assert logits.shape == (5, 10)


def test_config_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hiden_size": 3}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(path)
    assert load_config(CONFIG).hidden_size == Config().hidden_size


def test_pick_device_honours_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("REPRO_DEVICE", "tpu")
    with pytest.raises(ValueError, match="REPRO_DEVICE"):
        pick_device()


def test_train_writes_weights_and_metrics(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text(encoding="utf-8"))
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["test_loss"] > 0.0
    assert metrics["epochs"] == TINY["epochs"] and metrics["test_rows"] == 20
    state = torch.load(trained / "model.pt", weights_only=True)
    assert state["layers.0.weight"].shape == (TINY["hidden_size"], 64)


def test_evaluate_reproduces_train_metrics(
    trained: Path, tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = cli(config=tiny_config, data=DATA, weights=trained / "model.pt", output=tmp_path, limit=LIMIT)
    assert evaluate.main(argv) == 0
    trained_metrics = json.loads((trained / "metrics.json").read_text(encoding="utf-8"))
    evaluated = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert evaluated["accuracy"] == trained_metrics["accuracy"]
    assert evaluated["test_loss"] == trained_metrics["test_loss"]
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line == f"test accuracy: {evaluated['accuracy']:.4f} test loss: {evaluated['test_loss']:.4f}"


def test_same_seed_gives_identical_weights(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    run_train(tiny_config, tmp_path / "again", seed=7)
    run_train(tiny_config, tmp_path / "other", seed=8)
    reference = torch.load(trained / "model.pt", weights_only=True)
    again = torch.load(tmp_path / "again" / "model.pt", weights_only=True)
    other = torch.load(tmp_path / "other" / "model.pt", weights_only=True)
    assert all(torch.equal(reference[name], again[name]) for name in reference)
    assert not all(torch.equal(reference[name], other[name]) for name in reference)


def expected_metrics() -> dict[str, float]:
    """The ``value`` of each expected metric in experiment.yaml (a regex: the recipe has no YAML parser)."""
    text = (RECIPE_DIR / "experiment.yaml").read_text(encoding="utf-8")
    return {name: float(value) for name, value in re.findall(r"^\s+(\w+): \{value: ([0-9.]+)", text, re.M)}


def test_shipped_weights_match_experiment_yaml(tmp_path: Path) -> None:
    """The committed weights, scored on the full test split, give the values experiment.yaml expects."""
    argv = cli(config=CONFIG, data=DATA, weights=SHIPPED_WEIGHTS, output=tmp_path)
    assert evaluate.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    expected = expected_metrics()
    assert set(expected) == {"accuracy", "test_loss"}
    assert metrics["accuracy"] >= 0.95
    for name, value in expected.items():
        assert round(metrics[name], 4) == value, name

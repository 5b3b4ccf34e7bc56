"""The seeding hook: run real interpreters with a copy of sitecustomize.py on PYTHONPATH.

numpy and torch are replaced by small fake packages on the same path (the dev venv has neither), so
the import hook, the seeding and the torch record are all exercised; a real-torch check runs only where
torch is importable.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import repropack

SITECUSTOMIZE = Path(repropack.__file__).parent / "runtime" / "sitecustomize.py"

FAKE_NUMPY = """
class random:
    seeded = None

    @staticmethod
    def seed(value):
        random.seeded = value
"""

FAKE_TORCH = """
from types import SimpleNamespace

__version__ = "0.0-fake"
calls = {"manual_seed": None, "deterministic": None, "warn_only": None}
version = SimpleNamespace(cuda=None)
cuda = SimpleNamespace(is_available=lambda: False)
backends = SimpleNamespace(cudnn=SimpleNamespace(
    deterministic=False, benchmark=True, is_available=lambda: False, version=lambda: None))


def manual_seed(value):
    calls["manual_seed"] = value


def use_deterministic_algorithms(flag, warn_only=False):
    calls["deterministic"] = flag
    calls["warn_only"] = warn_only


def are_deterministic_algorithms_enabled():
    return bool(calls["deterministic"])
"""


@pytest.fixture
def hooks(tmp_path: Path) -> Path:
    """A folder like the image's /repro/runtime/hooks, plus fake numpy and torch packages."""
    folder = tmp_path / "hooks"
    folder.mkdir()
    shutil.copyfile(SITECUSTOMIZE, folder / "sitecustomize.py")
    for name, source in (("numpy", FAKE_NUMPY), ("torch", FAKE_TORCH)):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(source)
    return folder


def run_python(hooks: Path, code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REPRO_") and k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**clean, "PYTHONPATH": str(hooks), **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_random_is_seeded_at_start_up(hooks: Path) -> None:
    random.seed(3)
    expected = repr(random.random())
    assert run_python(hooks, "import random; print(repr(random.random()))", REPRO_SEED="3") == expected


def test_another_seed_gives_another_stream(hooks: Path) -> None:
    random.seed(3)
    seeded_3 = repr(random.random())
    assert run_python(hooks, "import random; print(repr(random.random()))", REPRO_SEED="4") != seeded_3


def test_without_a_seed_random_is_left_alone(hooks: Path) -> None:
    code = "import random, sys; print(sys.modules['sitecustomize'].__file__); print(repr(random.random()))"
    first = run_python(hooks, code).splitlines()
    second = run_python(hooks, code).splitlines()
    assert first[0] == str(hooks / "sitecustomize.py")  # our hook was the one imported
    assert first[1] != second[1]


def test_numpy_is_seeded_when_imported(hooks: Path) -> None:
    assert run_python(hooks, "import numpy; print(numpy.random.seeded)", REPRO_SEED="3") == "3"


def test_numpy_is_not_imported_up_front(hooks: Path) -> None:
    out = run_python(hooks, "import sys; print('numpy' in sys.modules, 'torch' in sys.modules)", REPRO_SEED="3")
    assert out == "False False"


@pytest.mark.parametrize(
    ("mode", "deterministic", "warn_only", "benchmark"),
    [("strict", True, False, False), ("warn", True, True, False), ("off", None, None, True)],
)
def test_torch_seed_determinism_and_record(
    hooks: Path, tmp_path: Path, mode: str, deterministic: bool | None, warn_only: bool | None, benchmark: bool
) -> None:
    state = tmp_path / "state"
    out = run_python(
        hooks,
        "import json, torch; print(json.dumps([torch.calls, torch.backends.cudnn.benchmark]))",
        REPRO_SEED="5",
        REPRO_DETERMINISM=mode,
        REPRO_STATE=str(state),
    )
    calls, bench = json.loads(out)
    assert calls == {"manual_seed": 5, "deterministic": deterministic, "warn_only": warn_only}
    assert bench is benchmark
    record = json.loads((state / "torch.json").read_text())
    assert record["version"] == "0.0-fake"
    assert record["determinism"] == mode
    assert record["deterministic_algorithms"] is bool(deterministic)
    assert record["cudnn_benchmark"] is benchmark


def test_real_torch_is_seeded(hooks: Path) -> None:
    pytest.importorskip("torch")
    for fake in ("torch", "numpy"):
        shutil.rmtree(hooks / fake)
    code = "import torch; print(torch.rand(1).item(), torch.are_deterministic_algorithms_enabled())"
    seeded = run_python(hooks, code, REPRO_SEED="3")
    again = run_python(hooks, code, REPRO_SEED="3")
    assert seeded == again
    assert seeded.endswith("True")

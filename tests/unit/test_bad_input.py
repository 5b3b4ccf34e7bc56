"""Bad input, through the real command line: exit 2, one paragraph, nothing written.

Every case in bad_input_cases.py runs ``repropack ...`` in this process through ``cli.main`` (as the
console script does) with ``DOCKER_HOST`` pointing nowhere, so anything that reaches for Docker answers
3 instead of 2 and fails the case: arguments must be checked before the engine is contacted. A few
cases need an image's manifest (dataset names, config keys, commands); a fake engine serves one image
for those, and fails the test if anything beyond reading that image is asked of it.

Each case checks: exit code 2; stderr is exactly one line, ``error: ...``, naming the file (and the
line, where there is one) and saying what to do; no traceback; and nothing written anywhere: every file
under the test's folder (the experiment, its repository, the --output target, the temporary folder
repropack would use) has the same content and mtime afterwards, and no file or folder appeared. The
cache folder is there too but left out of the comparison (see ``snapshot``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bad_input_cases import (
    ARGUMENT_CASES,
    FREEZE_CASES,
    SPEC,
    SPEC_CASES,
    USAGE_CASES,
    Case,
)
from unit_factories import Experiment, MakeExperiment, Result, RunCli, cli_runner, git

from repropack.engine.client import Engine
from repropack.image.embedded import DIGEST_LABEL
from repropack.runtime.layout import MANIFEST_LAYOUT as LAYOUT

IMAGE = "spiral-mlp:test"
IMAGE_ID = "sha256:" + "5" * 64

Snapshot = dict[str, tuple[str, int, str]]


def snapshot(root: Path) -> Snapshot:
    """Every path under ``root`` -> (kind, mtime in ns, sha256 of a file's content). Left out: .git (git
    may refresh its index while reading the tree) and repropack's cache (the dataset stat cache may be
    opened before a problem is found); neither is a file the user wrote."""
    found: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git" and not (Path(folder) == root and d == "cache"))
        for name in [*dirs, *files]:
            path = Path(folder) / name
            stat = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            relative = str(path.relative_to(root))
            # The temporary folder's own mtime moves when a scratch folder comes and goes; what is in it is watched.
            mtime = 0 if relative == "tmp" else stat.st_mtime_ns
            found[relative] = ("dir" if path.is_dir() else "file", mtime, digest)
    return found


class FakeEngine:
    """Serves one repropack image (its labels and embedded manifest) and nothing else."""

    def __init__(self, manifest_bytes: bytes, digest: str) -> None:
        self.manifest_bytes = manifest_bytes
        self.digest = digest

    def image_id(self, reference: str) -> str | None:
        return IMAGE_ID if reference in (IMAGE, IMAGE_ID) else None

    def labels(self, reference: str) -> dict[str, str]:
        return {DIGEST_LABEL: f"sha256:{self.digest}"}

    def read_file(self, image_id: str, path: str) -> bytes:
        assert path == LAYOUT["manifest"], path
        return self.manifest_bytes

    def repo_digests(self, reference: str) -> list[str]:
        return []

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"engine.{name} was called: arguments must be checked before the engine is used")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Docker, and repropack's temporary and cache folders inside the test's folder (the temporary one
    watched; see ``snapshot`` for the cache)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("REPROPACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # 'repropack run' writes to ./out by default
    return tmp_path


@pytest.fixture
def run_cli(world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """The CLI in this process, once ``world`` has set up the environment it runs in."""
    return cli_runner(monkeypatch, capsys)


def commit_only_the_readme(experiment: Experiment) -> None:
    """A repository with a commit, but not of the experiment folder."""
    git(experiment.repo, "add", "README.md")
    git(experiment.repo, "commit", "-q", "-m", "readme")


def empty_dataset_folder(experiment: Experiment) -> None:
    (experiment.folder / "data" / "empty").mkdir()


SETUPS: dict[str, Callable[[Experiment], None]] = {
    "commit-only-the-readme": commit_only_the_readme,
    "empty-dataset-folder": empty_dataset_folder,
}


@pytest.fixture
def prepare(make_experiment: MakeExperiment, world: Path) -> Callable[[Case], Experiment]:
    def make(case: Case) -> Experiment:
        experiment = make_experiment(**case.make)
        if case.spec is not None:
            experiment.write("experiment.yaml", case.spec)
        for name, content in case.files.items():
            experiment.write(name, content)
        if (
            (case.spec is not None or case.files)
            and case.commit
            and case.make.get("git_repo", True)
            and case.make.get("commit", True)
        ):
            experiment.commit("the case's change")
        if case.setup:
            SETUPS[case.setup](experiment)
        return experiment

    return make


@pytest.fixture
def fake_engine(
    freeze_experiment: Callable[..., Any], make_experiment: MakeExperiment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Engine.connect answers a fake that serves the factory experiment's image."""
    frozen = freeze_experiment(make_experiment(where="image-source"))
    engine = FakeEngine(frozen.manifest_bytes, frozen.digest)
    monkeypatch.setattr(Engine, "connect", classmethod(lambda cls: engine))
    yield


def fill(argv: tuple[str, ...], experiment: Experiment, out: Path) -> list[str]:
    values = {"spec": str(experiment.spec_path), "folder": str(experiment.folder), "out": str(out), "image": IMAGE}
    return [arg.format(**values) for arg in argv]


def assert_bad_input(result: Result, case: Case) -> None:
    """Exit 2 and one paragraph that names the file (and line) and says what to do."""
    assert result.code == 2, f"exit {result.code}, expected 2: {result.err}"
    assert "Traceback" not in result.err + result.out
    assert result.err.startswith("error: "), result.err
    assert result.err.count("\n") == 1 and result.err.endswith("\n"), f"not one paragraph: {result.err!r}"
    assert len(result.err) < 800, f"not short: {len(result.err)} characters"
    assert "unexpectedly" not in result.err, result.err
    assert case.names in result.err, f"does not name {case.names!r}: {result.err}"
    if case.line is not None:
        assert f"line {case.line}" in result.err, f"does not name line {case.line}: {result.err}"
    for fragment in case.says:
        assert fragment in result.err, f"does not say {fragment!r}: {result.err}"
    assert result.out == "", result.out


def check_case(
    case: Case, argv: tuple[str, ...], prepare: Callable[[Case], Experiment], run_cli: RunCli, world: Path
) -> None:
    experiment = prepare(case)
    out = world / "out"
    before = snapshot(world)
    result = run_cli(*fill(argv, experiment, out))
    assert_bad_input(result, case)
    assert not out.exists(), "the --output folder was created"
    assert snapshot(world) == before, "files were written or changed"
    assert list((world / "tmp").iterdir()) == [], "scratch files were left behind"


FREEZE = ("freeze", "{spec}", "--output", "{out}")
BUILD = ("build", "{spec}")
LOCK = ("lock", "{spec}")

SPEC_RUNS = [
    pytest.param(case, argv, id=f"{argv[0]}:{case.id}")
    for case in SPEC_CASES
    for argv in (FREEZE, BUILD, LOCK)
    if argv is not LOCK or case.lock_too
]
FREEZE_RUNS = [pytest.param(case, FREEZE, id=f"freeze:{case.id}") for case in FREEZE_CASES] + [
    pytest.param(case, BUILD, id=f"build:{case.id}") for case in FREEZE_CASES
]


@pytest.mark.parametrize(("case", "argv"), SPEC_RUNS)
def test_bad_spec(
    case: Case, argv: tuple[str, ...], prepare: Callable[[Case], Experiment], run_cli: RunCli, world: Path
) -> None:
    check_case(case, argv, prepare, run_cli, world)


@pytest.mark.parametrize(("case", "argv"), FREEZE_RUNS)
def test_bad_experiment(
    case: Case, argv: tuple[str, ...], prepare: Callable[[Case], Experiment], run_cli: RunCli, world: Path
) -> None:
    check_case(case, argv, prepare, run_cli, world)


@pytest.mark.parametrize("case", ARGUMENT_CASES, ids=lambda case: case.id)
def test_bad_argument(
    case: Case, request: pytest.FixtureRequest, prepare: Callable[[Case], Experiment], run_cli: RunCli, world: Path
) -> None:
    if case.fake_engine:
        request.getfixturevalue("fake_engine")
    check_case(case, case.argv, prepare, run_cli, world)


@pytest.mark.parametrize(("argv"), [argv for _, argv in USAGE_CASES], ids=[name for name, _ in USAGE_CASES])
def test_usage_error(argv: tuple[str, ...], make_experiment: MakeExperiment, run_cli: RunCli, world: Path) -> None:
    experiment = make_experiment()
    out = world / "out"
    before = snapshot(world)
    result = run_cli(*fill(argv, experiment, out))
    assert result.code == 2, result
    assert "Traceback" not in result.err and "unexpectedly" not in result.err
    assert "Error:" in result.err and "--help" in result.err
    assert not out.exists()
    assert snapshot(world) == before


# -- the harness itself: a valid experiment passes, and the spec the cases edit is the factory's -----------


def test_the_unedited_spec_freezes(prepare: Callable[[Case], Experiment], run_cli: RunCli, world: Path) -> None:
    """Every case breaks exactly one thing in an experiment that is otherwise fine."""
    experiment = prepare(Case("valid", (), spec=SPEC))
    result = run_cli("freeze", str(experiment.spec_path), "--output", str(world / "out"))
    assert result.code == 0, result
    written = sorted(p.name for p in (world / "out").iterdir())
    assert written == ["Dockerfile", "environment.Dockerfile", "manifest.json"]
    assert list((world / "tmp").iterdir()) == []  # no scratch left behind


def test_the_fake_engine_serves_a_runnable_request(
    fake_engine: None, prepare: Callable[[Case], Experiment], run_cli: RunCli, world: Path
) -> None:
    """A valid run gets past every check and reaches engine.run (which the fake refuses): the argument
    cases above fail for their own reason, not because the fake image is broken."""
    experiment = prepare(Case("valid", ()))
    result = run_cli("run", IMAGE, "--data", f"points={experiment.folder}/data", "--set", "model.hidden=32")
    assert result.code == 3 and "engine.run was called" in result.err, result


def test_a_spec_names_a_missing_lockfile_that_lock_creates(
    prepare: Callable[[Case], Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision behind 'lockfile-named-but-missing': freeze and build refuse, 'repropack lock' makes it."""
    from repropack.freeze import lockfile
    from repropack.freeze.lockfile import Lock

    experiment = prepare(Case("named-lock", (), spec=SPEC + "lockfile: other.lock\n"))
    made: list[Path] = []

    def compile_lock(requirements: Path, python: str, dest: Path, *, previous: Path | None = None) -> Lock:
        made.append(dest)
        return Lock(dest, "0" * 64, "0" * 64, ())

    monkeypatch.setattr(lockfile, "compile_lock", compile_lock)  # no resolver in unit tests
    result = lockfile.lock_experiment(experiment.spec_path, upgrade=False)
    assert made == [experiment.folder.resolve() / "other.lock"] and result.changed


def test_at_least_forty_cases() -> None:
    assert len(SPEC_CASES) + len(FREEZE_CASES) + len(ARGUMENT_CASES) >= 40


def test_naming_the_default_lockfile_is_not_a_typo(prepare: Callable[[Case], Experiment]) -> None:
    """'lockfile: requirements.lock' may be missing, like the unnamed default that build makes."""
    from repropack.experiment.validate import load_spec

    experiment = prepare(Case("default-named", (), spec=SPEC + "lockfile: requirements.lock\n"))
    experiment.lockfile.unlink()
    assert load_spec(experiment.spec_path).lockfile == experiment.folder.resolve() / "requirements.lock"

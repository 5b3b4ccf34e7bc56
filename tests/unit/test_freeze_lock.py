"""The hash-pinned lockfile: reading, checking and the inputs digest (no pip-compile runs here)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from unit_factories import Experiment, fake_hash, lock_text

from repropack.errors import BadInput
from repropack.freeze.lockfile import HEADER, check_current, inputs_digest, read_lock

HASH_A = fake_hash("a")
HASH_B = fake_hash("b")


def write_lock(tmp_path: Path, body: str, *, header: bool = True) -> Path:
    path = tmp_path / "requirements.lock"
    head = HEADER + f"# repropack-inputs: sha256:{'c' * 64}\n" if header else ""
    path.write_text(head + body)
    return path


def test_read_lock_accepts_the_factory_lockfile(experiment: Experiment) -> None:
    lock = read_lock(experiment.lockfile)
    assert lock.versions() == {"numpy": "1.26.4"}
    (package,) = lock.packages
    assert package.hashes == (fake_hash("numpy1.26.4a"), fake_hash("numpy1.26.4b"))
    assert lock.sha256 == hashlib.sha256(experiment.lockfile.read_bytes()).hexdigest()
    assert lock.inputs_sha256 == inputs_digest(experiment.folder / "requirements.in", "3.11")


def test_read_lock_normalizes_sorts_and_keeps_markers(tmp_path: Path) -> None:
    body = (
        f"Zope.Interface==6.0 --hash=sha256:{HASH_A}\n"
        "# a comment line\n"
        f'attrs==23.1.0 ; python_version >= "3.8" \\\n    --hash=sha256:{HASH_B}  # via zope\n'
    )
    lock = read_lock(write_lock(tmp_path, body))
    assert [p.name for p in lock.packages] == ["attrs", "zope-interface"]
    assert lock.versions() == {"attrs": "23.1.0", "zope-interface": "6.0"}
    assert lock.packages[0].line == f'attrs==23.1.0 ; python_version >= "3.8" --hash=sha256:{HASH_B}'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"numpy>=1.0 --hash=sha256:{HASH_A}\n", "line 3: 'numpy>=1.0"),
        ("numpy==1.26.4\n", "line 3: 'numpy==1.26.4' is not a requirement pinned"),
        ("numpy==1.26.4 --hash=sha256:abc\n", "is not a requirement pinned"),
        ("numpy==1.26.4 --hash=md5:" + "a" * 32 + "\n", "is not a requirement pinned"),
        (
            f"--index-url https://example.invalid/simple\nnumpy==1.0 --hash=sha256:{HASH_A}\n",
            "line 3: option '--index-url' is not allowed",
        ),
        (f"numpy==1.0 --hash=sha256:{HASH_A}\n-e ./local\n", "line 4: option '-e' is not allowed"),
        (f"numpy==1.0 --hash=sha256:{HASH_A}\n  --find-links /wheels\n", "option '--find-links' is not allowed"),
    ],
    ids=["unpinned", "no-hash", "short-hash", "md5-hash", "index-url", "editable", "find-links"],
)
def test_read_lock_rejects(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(BadInput) as caught:
        read_lock(write_lock(tmp_path, body))
    assert expected in str(caught.value)
    assert "repropack lock" in str(caught.value)
    assert caught.value.exit_code == 2


def test_read_lock_accepts_a_lock_that_pins_nothing(tmp_path: Path) -> None:
    lock = read_lock(write_lock(tmp_path, "# an experiment with no dependencies\n"))
    assert lock.packages == ()
    assert lock.inputs_sha256 == "c" * 64


def test_read_lock_rejects_a_file_without_the_repropack_header(tmp_path: Path) -> None:
    path = write_lock(tmp_path, f"numpy==1.26.4 --hash=sha256:{HASH_A}\n", header=False)
    with pytest.raises(BadInput, match="was not made by 'repropack lock'"):
        read_lock(path)


def test_read_lock_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        read_lock(tmp_path / "requirements.lock")


def test_check_current_accepts_an_unchanged_lock(experiment: Experiment) -> None:
    check_current(read_lock(experiment.lockfile), experiment.folder / "requirements.in", "3.11")


def test_check_current_detects_an_edited_requirements_file(experiment: Experiment) -> None:
    lock = read_lock(experiment.lockfile)
    requirements = experiment.write("requirements.in", "numpy==1.26.4\nscipy\n")
    with pytest.raises(BadInput, match="is stale") as caught:
        check_current(lock, requirements, "3.11")
    assert "repropack lock" in str(caught.value)


def test_check_current_detects_another_python(experiment: Experiment) -> None:
    with pytest.raises(BadInput, match="is stale"):
        check_current(read_lock(experiment.lockfile), experiment.folder / "requirements.in", "3.12")


def test_inputs_digest_follows_included_files(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("-r other.in\nnumpy\n")
    other = tmp_path / "other.in"
    other.write_text("scipy==1.0\n")
    before = inputs_digest(requirements, "3.11")
    assert inputs_digest(requirements, "3.11") == before  # stable
    other.write_text("scipy==1.1\n")
    assert inputs_digest(requirements, "3.11") != before


@pytest.mark.parametrize("include", ["-r other.in", "--requirement=other.in", "-c other.in", "--constraint other.in"])
def test_inputs_digest_follows_every_include_form(tmp_path: Path, include: str) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text(f"{include}\n")
    other = tmp_path / "other.in"
    other.write_text("a\n")
    before = inputs_digest(requirements, "3.11")
    other.write_text("b\n")
    assert inputs_digest(requirements, "3.11") != before


def test_inputs_digest_survives_include_cycles_and_ignores_unrelated_files(tmp_path: Path) -> None:
    (tmp_path / "a.in").write_text("-r b.in\n")
    (tmp_path / "b.in").write_text("-r a.in\nnumpy\n")
    before = inputs_digest(tmp_path / "a.in", "3.11")
    (tmp_path / "unrelated.in").write_text("torch\n")
    assert inputs_digest(tmp_path / "a.in", "3.11") == before


def test_inputs_digest_depends_on_python_and_content(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("numpy\n")
    first = inputs_digest(requirements, "3.11")
    assert inputs_digest(requirements, "3.12") != first
    requirements.write_text("numpy \n")
    assert inputs_digest(requirements, "3.11") != first


def test_factory_lock_text_is_current(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("numpy\n")
    path = tmp_path / "requirements.lock"
    path.write_text(lock_text(requirements, "3.11", {"numpy": "2.0.0", "Pillow": "10.0"}))
    lock = read_lock(path)
    check_current(lock, requirements, "3.11")
    assert lock.versions() == {"numpy": "2.0.0", "pillow": "10.0"}


@pytest.mark.parametrize(("raw", "normal"), [("Zope.Interface", "zope-interface"), ("a__b--c", "a-b-c"), ("X", "x")])
def test_locked_names_are_normalized(tmp_path: Path, raw: str, normal: str) -> None:
    lock = read_lock(write_lock(tmp_path, f"{raw}==1.0 --hash=sha256:{HASH_A}\n"))
    assert lock.versions() == {normal: "1.0"}

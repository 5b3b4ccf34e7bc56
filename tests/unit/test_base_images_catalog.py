"""Unit tests for the base image catalog and the torch -> CUDA table (no Docker, no network)."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from repropack.bases import bootstrap
from repropack.bases.bootstrap import import_changes, recipe_packages
from repropack.bases.catalog import (
    BaseImage,
    check_base_matches,
    choose_cuda_base,
    load_catalog,
    lookup,
    parse_catalog,
    torch_cuda,
)
from repropack.errors import BadInput, EnvironmentProblem

MakeBase = Callable[..., BaseImage]


@pytest.fixture
def make_base() -> MakeBase:
    """Factory for catalog entries, so each test states only what it cares about."""

    def make(name: str, python: str = "3.10", cuda: str | None = "12.4", **fields: object) -> BaseImage:
        values: dict[str, object] = {
            "reference": f"example/{name}:latest",
            "digest": None,
            "recipe": None,
            "setup": (),
        }
        values.update(fields)
        return BaseImage(name=name, python=python, cuda=cuda, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def small_catalog(make_base: MakeBase) -> dict[str, BaseImage]:
    bases = [
        make_base("cuda11.8-jammy", "3.10", "11.8"),
        make_base("cuda12.1-jammy", "3.10", "12.1"),
        make_base("cuda12.4-jammy", "3.10", "12.4"),
        make_base("cuda12.6-noble", "3.12", "12.6"),
        make_base("cuda12.8-noble", "3.12", "12.8"),
        make_base("local", "3.11", None, recipe="debian-bookworm"),
    ]
    return {base.name: base for base in bases}


# -- the packaged catalog ---------------------------------------------------------------------------------


def test_packaged_catalog_loads_and_is_sorted() -> None:
    catalog = load_catalog()
    assert list(catalog) == sorted(catalog)
    assert all(isinstance(base, BaseImage) for base in catalog.values())


def test_local_base_is_debian_bookworm_with_python_311_and_no_setup() -> None:
    base = lookup("debian-bookworm")
    assert base.reference == "repropack/base:debian-bookworm"
    assert (base.python, base.cuda, base.recipe, base.setup) == ("3.11", None, "debian-bookworm", ())


def test_cuda_bases_pull_nvidia_images_and_install_python_venv() -> None:
    cuda_bases = [base for base in load_catalog().values() if base.cuda is not None]
    assert {base.cuda for base in cuda_bases} >= {"11.8", "12.1", "12.4", "12.6", "12.8"}
    for base in cuda_bases:
        assert base.reference.startswith("nvidia/cuda:")
        assert base.recipe is None
        assert base.setup and any("python3-venv" in line for line in base.setup)
        distro = base.reference.rsplit("-", 1)[1]
        assert {"ubuntu22.04": "3.10", "ubuntu24.04": "3.12"}[distro] == base.python
        assert base.cuda is not None and base.reference.split(":")[1].startswith(base.cuda)


def test_catalog_versions_are_strings_not_yaml_numbers() -> None:
    # An unquoted 3.10 in YAML is the float 3.1: the loader must refuse it.
    for base in load_catalog().values():
        assert isinstance(base.python, str) and base.python.count(".") == 1
        assert base.cuda is None or isinstance(base.cuda, str)


def test_loaded_catalog_is_a_copy() -> None:
    first = load_catalog()
    first.clear()
    assert load_catalog()


def test_parse_catalog_reports_every_problem_at_once() -> None:
    data = {
        "good": {"reference": "a:b", "python": "3.10", "cuda": None},
        "float-python": {"reference": "a:b", "python": 3.1, "cuda": "12.4"},
        "typo": {"reference": "a:b", "python": "3.10", "cuda": None, "setpu": []},
    }
    with pytest.raises(BadInput) as caught:
        parse_catalog(data, "catalog.yaml")
    message = str(caught.value)
    assert message.startswith("catalog.yaml:")
    assert "float-python: python must be a quoted string" in message
    assert "typo: unknown key 'setpu'" in message


def test_lookup_unknown_name_lists_known_names_nearest_first() -> None:
    with pytest.raises(BadInput) as caught:
        lookup("debian-bookwrom")
    message = str(caught.value)
    assert "Unknown base image 'debian-bookwrom'" in message
    listed = message.split("nearest first: ", 1)[1]
    assert listed.startswith("debian-bookworm, ")
    assert "cuda12.4-ubuntu22.04" in listed


def test_lookup_ranks_by_name_start(small_catalog: dict[str, BaseImage]) -> None:
    with pytest.raises(BadInput) as caught:
        lookup("cuda12.8", catalog=small_catalog)
    assert str(caught.value).split("nearest first: ", 1)[1].startswith("cuda12.8-noble, ")


# -- torch -> CUDA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "cuda"),
    [
        ("2.13.0+cpu", None),
        ("2.5.1+cu121", "12.1"),
        ("2.5.1+cu118", "11.8"),
        ("2.9.0+cu130", "13.0"),
        ("1.8.1+cu92", "9.2"),  # a local tag decides even for a release the table does not list
        ("2.5.1", "12.4"),  # PyPI's Linux wheel for 2.5 is the CUDA 12.4 build
        ("2.1.2", "12.1"),
        ("2.0.1", "11.7"),
        ("2.7.0", "12.6"),
        ("2.10.0", "12.8"),  # "2.10" must not be read as 2.1
        ("2.13.0", "13.0"),
        (" 2.4.0 ", "12.1"),
    ],
)
def test_torch_cuda(version: str, cuda: str | None) -> None:
    assert torch_cuda(version) == cuda


def test_torch_cuda_unknown_minor_names_the_known_ones() -> None:
    with pytest.raises(BadInput) as caught:
        torch_cuda("1.13.1")
    message = str(caught.value)
    assert "torch 1.13" in message
    assert "2.0, 2.1, 2.2" in message and "2.10, 2.11, 2.12, 2.13" in message  # numeric order, not text order


@pytest.mark.parametrize("version", ["2.5.1+rocm6.2", "latest", ""])
def test_torch_cuda_rejects_what_it_cannot_read(version: str) -> None:
    with pytest.raises(BadInput):
        torch_cuda(version)


# -- choosing and checking a base -------------------------------------------------------------------------


def test_choose_cuda_base_from_packaged_catalog() -> None:
    assert choose_cuda_base("3.10", "12.4").name == "cuda12.4-ubuntu22.04"
    assert choose_cuda_base("3.12", "12.8").name == "cuda12.8-ubuntu24.04"
    assert choose_cuda_base("3.12.3", "12.6.3").name == "cuda12.6-ubuntu24.04"  # patch levels ignored


def test_choose_cuda_base_never_returns_a_cpu_base(small_catalog: dict[str, BaseImage]) -> None:
    with pytest.raises(BadInput):
        choose_cuda_base("3.11", "12.4", catalog={"local": small_catalog["local"]})


def test_choose_cuda_base_error_lists_same_cuda_then_same_python(small_catalog: dict[str, BaseImage]) -> None:
    with pytest.raises(BadInput) as caught:
        choose_cuda_base("3.12", "12.4", catalog=small_catalog)
    message = str(caught.value)
    assert message.startswith("No base image in the catalog has Python 3.12 with CUDA 12.4.")
    choices = message.split("Nearest choices: ", 1)[1].split(". ", 1)[0]
    assert choices.split("; ") == [
        "cuda12.4-jammy (Python 3.10, CUDA 12.4)",  # the CUDA asked for, other Python
        "cuda12.6-noble (Python 3.12, CUDA 12.6)",  # the Python asked for, nearest CUDA
        "cuda12.8-noble (Python 3.12, CUDA 12.8)",
        "cuda12.1-jammy (Python 3.10, CUDA 12.1)",
    ]
    assert "local" not in message


def test_choose_cuda_base_unknown_cuda_lists_nearest_for_same_python(
    small_catalog: dict[str, BaseImage],
) -> None:
    with pytest.raises(BadInput) as caught:
        choose_cuda_base("3.10", "12.2", catalog=small_catalog)
    choices = str(caught.value).split("Nearest choices: ", 1)[1]
    assert choices.startswith("cuda12.1-jammy (Python 3.10, CUDA 12.1); cuda12.4-jammy (Python 3.10, CUDA 12.4)")


def test_check_base_matches_accepts_matching_and_cpu_combinations(small_catalog: dict[str, BaseImage]) -> None:
    cuda124 = small_catalog["cuda12.4-jammy"]
    check_base_matches(cuda124, "3.10", "2.5.1+cu124", catalog=small_catalog)
    check_base_matches(cuda124, "3.10", "2.5.1", catalog=small_catalog)  # PyPI default for 2.5 is 12.4
    check_base_matches(cuda124, "3.10.12", None, catalog=small_catalog)  # no torch locked
    check_base_matches(cuda124, "3.10", "2.13.0+cpu", catalog=small_catalog)  # CPU torch on a CUDA base
    check_base_matches(small_catalog["local"], "3.11", "2.13.0+cpu", catalog=small_catalog)
    check_base_matches(small_catalog["local"], "3.11", "2.5.1+cu121", catalog=small_catalog)


def test_check_base_matches_rejects_other_python(small_catalog: dict[str, BaseImage]) -> None:
    with pytest.raises(BadInput) as caught:
        check_base_matches(small_catalog["local"], "3.12", None, catalog=small_catalog)
    message = str(caught.value)
    assert "Base image local has Python 3.11, but the dependencies were locked for Python 3.12" in message
    assert "Base images with Python 3.12: cuda12.6-noble, cuda12.8-noble." in message


def test_check_base_matches_rejects_other_cuda_and_lists_valid_choices(
    small_catalog: dict[str, BaseImage],
) -> None:
    with pytest.raises(BadInput) as caught:
        check_base_matches(small_catalog["cuda12.4-jammy"], "3.10", "2.5.1+cu121", catalog=small_catalog)
    message = str(caught.value)
    assert "has CUDA 12.4, but the locked torch 2.5.1+cu121 is built for CUDA 12.1" in message
    assert "Valid choices: cuda12.1-jammy (Python 3.10, CUDA 12.1)." in message
    assert "torch==2.5.1+cu124" in message


def test_check_base_matches_with_no_valid_choice_lists_nearest_others(
    small_catalog: dict[str, BaseImage],
) -> None:
    with pytest.raises(BadInput) as caught:
        check_base_matches(small_catalog["cuda12.4-jammy"], "3.10", "2.8.0", catalog=small_catalog)
    message = str(caught.value)
    assert "built for CUDA 12.8" in message  # 2.8's PyPI default
    nearest = message.split("nearest: ", 1)[1]
    assert nearest.startswith("cuda12.8-noble (Python 3.12, CUDA 12.8)")
    assert "cuda12.4-jammy (" not in nearest  # the rejected base is not offered back


# -- the local recipe -------------------------------------------------------------------------------------


def test_debian_bookworm_recipe_packages() -> None:
    packages = recipe_packages("debian-bookworm")
    assert {"python3", "python3-venv", "ca-certificates"} <= set(packages)
    assert all(package and " " not in package and "#" not in package for package in packages)


def test_unknown_recipe_is_bad_input() -> None:
    with pytest.raises(BadInput, match="debian-bookworm"):
        recipe_packages("alpine")


def test_import_changes() -> None:
    changes = import_changes("3.11")
    assert "ENV LANG=C.UTF-8" in changes
    assert changes[-1] == 'CMD ["/bin/bash"]'
    assert 'LABEL io.repropack.base.python="3.11"' in changes
    assert any(change.startswith("ENV PATH=/usr/local/sbin:/usr/local/bin:") for change in changes)


# -- the rootfs tar (no debootstrap: the writer and the checks around it) ---------------------------------


def test_rootfs_tar_is_sorted_numeric_and_clamped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    (root / "usr/bin/python3").write_text("binary")
    os.link(root / "usr/bin/python3", root / "usr/bin/python3.11")
    (root / "bin").symlink_to("usr/bin")
    os.utime(root / "etc/passwd", (4_000_000_000, 4_000_000_000))  # in the future: clamped
    os.utime(root / "usr/bin/python3", (1_000, 1_000))  # older: kept
    dest = tmp_path / "rootfs.tar"

    bootstrap._write_tar_atomically(root, dest, epoch=2_000)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["root", "rootfs.tar"]  # no temporary left
    with tarfile.open(dest) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == ["bin", "etc", "etc/passwd", "usr", "usr/bin", "usr/bin/python3", "usr/bin/python3.11"]
    by_name = {m.name: m for m in members}
    assert by_name["bin"].issym() and by_name["bin"].linkname == "usr/bin"
    assert by_name["usr/bin/python3.11"].islnk() and by_name["usr/bin/python3.11"].linkname == "usr/bin/python3"
    assert by_name["etc/passwd"].mtime == 2_000
    assert by_name["usr/bin/python3"].mtime == 1_000
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert by_name["etc/passwd"].uid == os.stat(root / "etc/passwd").st_uid


def test_shadow_dates_are_clamped(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text("root:*:20415:0:99999:7:::\nnobody:*::0:99999:7:::\n")
    bootstrap._clamp_shadow_dates(shadow, epoch=86400 * 19723)
    assert shadow.read_text() == "root:*:19723:0:99999:7:::\nnobody:*::0:99999:7:::\n"


def test_missing_debootstrap_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("shutil.which", lambda *args, **kwargs: None)
    with pytest.raises(EnvironmentProblem, match="apt-get install debootstrap"):
        bootstrap.make_rootfs_tar("debian-bookworm", tmp_path / "rootfs.tar")


def test_not_root_is_an_environment_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("shutil.which", lambda *args, **kwargs: "/usr/sbin/debootstrap")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match="needs root"):
        bootstrap.make_rootfs_tar("debian-bookworm", tmp_path / "rootfs.tar")
    assert list(tmp_path.iterdir()) == []


def test_rootfs_tar_destination_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        bootstrap.make_rootfs_tar("debian-bookworm", tmp_path / "missing" / "rootfs.tar")

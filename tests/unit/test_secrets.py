"""Secret-looking files are refused by name, anywhere in the code, config or data, unless named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from unit_factories import MakeExperiment

from repropack.errors import BadInput
from repropack.freeze.secrets import SECRET_FILES, SECRET_FOLDERS, could_hold_secret, is_secret, refuse_secrets


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "src/.env.local",
        "prod.env",
        ".envrc",
        "keys/id_rsa",
        "id_ed25519.pub",
        "x/.ssh/config",
        "a/.aws/credentials",
        "cert.pem",
        "tls/server.key",
        "gcp-credentials.json",
        "service-account-prod.json",
        ".netrc",
        "deep/.DOCKER/config.json",
        "home/.config/gcloud/adc.json",
        "store.p12",
        "client_secret_123.json",
    ],
)
def test_secret_looking_paths(path: str) -> None:
    assert is_secret(path)
    assert could_hold_secret(f"data/a.csv\n{path}\nmodel.pt")  # the quick look never misses one


def test_the_quick_look_finds_every_pattern_however_it_is_written() -> None:
    """Every pattern, its wildcards filled in, in any case, anywhere among other names: is_secret says yes,
    so could_hold_secret must too (it is the only look a dataset without hits gets)."""
    for pattern in SECRET_FILES:
        for fill in ("", "x", "Prod-2"):
            name = pattern.replace("*", fill)
            for written in (name, name.upper(), f"deep/folder/{name.title()}"):
                assert is_secret(written), written
                assert could_hold_secret("train.py\n" + written + "\nweights.pt"), written
    for folder in SECRET_FOLDERS:
        assert is_secret(f"home/{folder.upper()}/file") and could_hold_secret(f"x\nhome/{folder.upper()}/file")


def test_the_quick_look_passes_a_dataset_of_ordinary_names() -> None:
    names = "\n".join(f"images/{i:05d}.png" for i in range(5000)) + "\nlabels.csv\nREADME.md"
    assert not could_hold_secret(names)


@pytest.mark.parametrize(
    "path",
    [
        "train.py",
        "environment.yml",
        "data/points.csv",
        "config.json",
        "keyboard.py",
        "docs/ssh.md",
        "envelope.txt",
        "monkey.py",
        "aws_regions.csv",
        "credentials_test.py",
    ],
)
def test_ordinary_paths(path: str) -> None:
    assert not is_secret(path)


def test_refusal_names_every_secret_and_how_to_let_one_through() -> None:
    with pytest.raises(BadInput) as caught:
        refuse_secrets("in the experiment's code", ["train.py", ".env", "keys/id_rsa"], frozenset())
    message = str(caught.value)
    assert ".env" in message and "keys/id_rsa" in message and "--allow-secret" in message
    assert "train.py" not in message and caught.value.exit_code == 2


def test_only_the_named_files_are_let_through() -> None:
    refuse_secrets("code", [".env", "train.py"], frozenset({".env"}))
    with pytest.raises(BadInput, match="keys/id_rsa"):
        refuse_secrets("code", [".env", "keys/id_rsa"], frozenset({".env"}))


@pytest.mark.parametrize("embed", [True, False])
def test_a_datasets_paths_are_checked_from_the_experiment_folder(
    make_experiment: MakeExperiment, freeze_experiment: Callable[..., Any], embed: bool
) -> None:
    """The secret-looking part may span the dataset's own folder and a file's path inside it."""
    experiment = make_experiment(
        datasets={"points": {"path": "data/points.csv"}, "cloud": {"path": "data/.config", "embed": embed}}
    )
    experiment.write("data/.config/gcloud/adc.json", "{}\n")
    experiment.write("data/.config/other/readme.txt", "not a secret\n")
    experiment.commit("a dataset")
    with pytest.raises(BadInput, match=r"data/\.config/gcloud/adc\.json") as caught:
        freeze_experiment(experiment)
    assert "readme" not in str(caught.value) and "in the dataset 'cloud'" in str(caught.value)


def test_the_quick_look_is_one_search_for_any_fragment() -> None:
    import re

    from repropack.freeze.secrets import _trie

    words = ("ab", "abd", "b.c", "xyz")
    found = re.compile(_trie(words))
    assert found.pattern == r"(?:ab(?:d)?|b\.c|xyz)"
    for text in ("..ab..", "abd", "a b.c", "wxyz"):
        assert found.search(text), text
    for text in ("a", "bxc", "xy", "ba", ""):
        assert not found.search(text), text

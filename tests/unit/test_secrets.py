"""Secret-looking files are refused by name, anywhere in the code, config or data, unless named."""

from __future__ import annotations

import pytest

from repropack.errors import BadInput
from repropack.freeze.secrets import is_secret, refuse_secrets


@pytest.mark.parametrize(
    "path",
    [".env", "src/.env.local", "prod.env", ".envrc", "keys/id_rsa", "id_ed25519.pub", "x/.ssh/config",
     "a/.aws/credentials", "cert.pem", "tls/server.key", "gcp-credentials.json", "service-account-prod.json",
     ".netrc", "deep/.DOCKER/config.json", "home/.config/gcloud/adc.json", "store.p12", "client_secret_123.json"],
)
def test_secret_looking_paths(path: str) -> None:
    assert is_secret(path)


@pytest.mark.parametrize(
    "path",
    ["train.py", "environment.yml", "data/points.csv", "config.json", "keyboard.py", "docs/ssh.md",
     "envelope.txt", "monkey.py", "aws_regions.csv", "credentials_test.py"],
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

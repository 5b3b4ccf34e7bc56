"""Secrets never enter an image: files that look like credentials are refused, even when committed.

The patterns cover the usual ways keys and tokens end up in a research repository. A file can be let
through only by naming it explicitly (``--allow-secret PATH``): a blanket switch would defeat the point.
"""

from __future__ import annotations

import re
from fnmatch import translate

from repropack.errors import BadInput

# Matched against every path component's name (folders) and the file name (files), case-insensitively.
SECRET_FOLDERS = (".ssh", ".aws", ".gnupg", ".docker", ".kube", ".azure", ".config/gcloud")
SECRET_FILES = (
    ".env", ".env.*", "*.env", ".envrc", ".netrc", "_netrc", ".pypirc", ".npmrc", ".git-credentials",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    "credentials", "credentials.json", "*credentials*.json", "client_secret*.json", "service-account*.json",
    "*serviceaccount*.json", "secrets.json", "secrets.yaml", "secrets.yml", "*.secret", "kubeconfig",
    "htpasswd", ".htpasswd",
)


# One regular expression for all file patterns: a dataset can hold hundreds of thousands of names.
_SECRET_FOLDER = re.compile("(?:^|/)(?:" + "|".join(re.escape(folder) for folder in SECRET_FOLDERS) + ")/")
_SECRET_NAME = re.compile("|".join(f"(?:{translate(pattern)})" for pattern in SECRET_FILES))


def is_secret(path: str) -> bool:
    """Whether a relative POSIX path names a file that looks like a credential."""
    lowered = path.lower()
    folders, _, name = lowered.rpartition("/")
    if folders and _SECRET_FOLDER.search(folders + "/"):
        return True
    return _SECRET_NAME.match(name) is not None


def refuse_secrets(where: str, paths: list[str], allowed: frozenset[str]) -> None:
    """BadInput naming every secret-looking path of ``where`` that was not explicitly allowed."""
    found = sorted(p for p in paths if is_secret(p) and p not in allowed)
    if not found:
        return
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    raise BadInput(
        f"Refusing to put what looks like a secret into the image: {shown} ({where}). Anyone who can pull "
        "the image could read it.",
        hint="Remove it from the experiment (and rotate it if it was ever pushed), or, if it is not a secret, "
             "let it through with --allow-secret PATH for each file.",
    )

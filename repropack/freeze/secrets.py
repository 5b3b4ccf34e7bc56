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
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.ppk",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "client_secret*.json",
    "service-account*.json",
    "*serviceaccount*.json",
    "secrets.json",
    "secrets.yaml",
    "secrets.yml",
    "*.secret",
    "kubeconfig",
    "htpasswd",
    ".htpasswd",
)


# One regular expression for all file patterns: a dataset can hold hundreds of thousands of names.
_SECRET_FOLDER = re.compile("(?:^|/)(?:" + "|".join(re.escape(folder) for folder in SECRET_FOLDERS) + ")/")
_SECRET_NAME = re.compile("|".join(f"(?:{translate(pattern)})" for pattern in SECRET_FILES))


def _fragment(pattern: str) -> str:
    """The longest run of plain characters in a pattern: any name the pattern matches holds it."""
    plain = re.sub(r"\[[^\]]*\]", "*", pattern)  # a [set] matches one character, not its letters
    return max(re.split(r"[*?]", plain), key=len)


def _fragments() -> tuple[str, ...]:
    """Each pattern's fragment, less those that hold another (text that holds 'credentials.json' holds
    'credentials'): text that holds none of them cannot name a secret-looking file."""
    every = {_fragment(pattern) for pattern in SECRET_FILES} | set(SECRET_FOLDERS)
    return tuple(sorted(f for f in every if not any(other != f and other in f for other in every)))


def _trie(words: tuple[str, ...]) -> str:
    """One regular expression for any of ``words``, as a tree of shared prefixes: the search tries one
    branch per character instead of every word at every position (three times faster over many names)."""
    tree: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def branch(node: dict[str, dict]) -> str:  # type: ignore[type-arg]
        ways = [re.escape(char) + branch(rest) for char, rest in sorted(node.items()) if char]
        if not ways:
            return ""
        body = ways[0] if len(ways) == 1 and "" not in node else "(?:" + "|".join(ways) + ")"
        return body + ("?" if "" in node else "")

    return branch(tree)


FRAGMENTS = _fragments()
_ANY_FRAGMENT = re.compile(_trie(FRAGMENTS))


def could_hold_secret(text: str) -> bool:
    """Whether ``text`` (any number of paths, and whatever else) might name a secret-looking file: False
    means none of its paths does; True means look at them one by one with :func:`is_secret`."""
    return _ANY_FRAGMENT.search(text.lower()) is not None


def is_secret(path: str) -> bool:
    """Whether a relative POSIX path names a file that looks like a credential."""
    lowered = path.lower()
    folders, _, name = lowered.rpartition("/")
    if folders and _SECRET_FOLDER.search(folders + "/"):
        return True
    return _SECRET_NAME.match(name) is not None


def refuse_secrets(where: str, paths: list[str], allowed: frozenset[str]) -> None:
    """BadInput naming every secret-looking path of ``where`` that was not explicitly allowed (one quick
    look at all the paths first: a dataset can hold hundreds of thousands)."""
    if not could_hold_secret("\n".join(paths)):
        return
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

"""Canonical bytes: everything repropack writes or seals is sorted and byte-stable."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8, one trailing newline: readable and byte-stable."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def record_seal(body: dict[str, Any]) -> str:
    """The sha256 that seals a cache record's ``body`` (its JSON with sorted keys): a record whose seal
    does not match was damaged, and is not trusted."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

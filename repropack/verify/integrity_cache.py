"""The integrity cache: passing results of the costly checks, remembered per image id and manifest digest.

An image id is the sha256 of the image's configuration, which names every layer by the digest of its
content, so the same id is the same bytes. Only passing results are kept, one small sealed JSON file per
(image id, manifest digest), with this module's check version; a damaged record is deleted, and
``REPROPACK_NO_CACHE=1`` checks afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from repropack import __version__
from repropack.cache import cache_root, disabled
from repropack.canonical import record_seal
from repropack.files import atomic_write
from repropack.verify.checks import Check

CACHE_VERSION = 3  # raise when a cached check changes what it checks: older records then no longer count
CACHED_CHECKS = ("files", "packages")
CACHED_NOTE = " (cached: it held on an earlier verify of this image id)"
KEEP_S = 180 * 24 * 3600  # records not rewritten for this long are dropped
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
HEX64 = re.compile(r"[0-9a-f]{64}")


class IntegrityCache:
    """Passing results of the costly checks, one small JSON file per (image id, manifest digest)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def default(cls) -> IntegrityCache | None:
        return None if disabled() else cls(cache_root() / "integrity")

    def _path(self, image: str, digest: str) -> Path | None:
        image_hex = image.removeprefix("sha256:")
        if not (IMAGE_ID.fullmatch(image) and HEX64.fullmatch(digest)):
            return None  # not an image id (a tag can move): nothing is remembered for it
        return self.folder / f"{image_hex}-{digest[:16]}.json"

    def _body(self, image: str, digest: str, checks: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "repropack": __version__,
            "image_id": image,
            "manifest_sha256": digest,
            "checks": checks,
        }

    def get(self, image: str, digest: str) -> dict[str, Check]:
        """Check name -> the passing result recorded for this image id and manifest; {} when none."""
        path = self._path(image, digest)
        if path is None:
            return {}
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            record = None
        try:
            body = self._body(image, digest, record["checks"])
            if record != {**body, "sha256": record_seal(body)}:
                raise ValueError("the record is not this image's, or not intact")
            return {
                name: Check(name, True, str(entry["detail"]) + CACHED_NOTE, (), cached=True)
                for name, entry in record["checks"].items()
                if name in CACHED_CHECKS and entry["passed"] is True
            }
        except (TypeError, KeyError, ValueError):
            with contextlib.suppress(OSError):
                os.unlink(path)  # damaged, stale or foreign: not trusted, and not kept
            return {}

    def put(self, image: str, digest: str, checks: list[Check]) -> None:
        """Remember passing ``checks`` beside those already remembered; a cache that cannot be written
        is no error."""
        path = self._path(image, digest)
        passed = {c.name: {"passed": True, "detail": c.detail} for c in checks if c.passed and not c.cached}
        if path is None or not passed:
            return
        known = {
            name: {"passed": True, "detail": c.detail.removesuffix(CACHED_NOTE)}
            for name, c in self.get(image, digest).items()
        }
        body = self._body(image, digest, {**known, **passed})
        with contextlib.suppress(OSError):
            atomic_write(path, json.dumps({**body, "sha256": record_seal(body)}, sort_keys=True).encode())
            cutoff = time.time() - KEEP_S
            for old in self.folder.glob("*.json"):  # images long gone: their records need not stay
                if old.stat().st_mtime < cutoff:
                    old.unlink()

"""Where repropack keeps its caches (wheels, stat cache, integrity results), and whether to use them."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``REPROPACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/repropack`` (``~/.cache/repropack``)."""
    configured = os.environ.get("REPROPACK_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "repropack"


def disabled() -> bool:
    """``REPROPACK_NO_CACHE`` is set: the stat cache and the remembered integrity results are not used,
    so every dataset is hashed and every image checked afresh (the wheelhouse is: it is the builds' input)."""
    return os.environ.get("REPROPACK_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")

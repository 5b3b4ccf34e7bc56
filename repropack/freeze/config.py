"""Freeze the experiment's config file: its content and sha256, shipped under /repro/config/."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.spec import read_text

CONFIG_ROOT = "/repro/config"


@dataclass(frozen=True)
class FrozenConfig:
    name: str
    text: str

    @property
    def data(self) -> bytes:
        return self.text.encode()

    @property
    def target(self) -> str:
        return f"{CONFIG_ROOT}/{self.name}"

    def record(self) -> dict[str, Any]:
        return {
            "file": self.name, "path": self.target,
            "sha256": hashlib.sha256(self.data).hexdigest(), "content": self.text,
        }


def freeze_config(path: Path) -> FrozenConfig:
    return FrozenConfig(name=path.name, text=read_text(path, "config file"))

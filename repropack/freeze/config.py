"""Freeze the experiment's config file: its content and sha256, shipped under /repro/config/."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repropack.errors import BadInput
from repropack.experiment.yamldoc import check_syntax
from repropack.files import read_text
from repropack.runtime import layout


@dataclass(frozen=True)
class FrozenConfig:
    name: str
    text: str
    values: dict[str, Any] | None = None  # a YAML config's mapping, as JSON: what --set changes in the image

    @property
    def data(self) -> bytes:
        return self.text.encode()

    @property
    def target(self) -> str:
        return layout.config_path(self.name)

    def record(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "path": self.target,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "content": self.text,
            "values": self.values,
        }


def freeze_config(path: Path) -> FrozenConfig:
    """The config as text; a .json or .yaml config must parse, so a typo fails here rather than in a run."""
    text = read_text(path, "config file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        _check_json(text, path.name)
    elif suffix in (".yaml", ".yml"):
        check_syntax(text, path.name)  # the syntax; the experiment's own loader reads the values
        return FrozenConfig(name=path.name, text=text, values=_yaml_values(text))
    return FrozenConfig(name=path.name, text=text)


def _yaml_values(text: str) -> dict[str, Any] | None:
    """The YAML config as JSON values (the image's runtime has no YAML parser): a mapping whose values JSON
    can hold, or None (then --set refuses to change it)."""
    import yaml

    try:
        values = yaml.safe_load(text)
        json.dumps(values, allow_nan=False)
    except (yaml.YAMLError, TypeError, ValueError):
        return None
    return values if isinstance(values, dict) and all(isinstance(key, str) for key in values) else None


def _check_json(text: str, name: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"The config file {name} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}.",
            hint="Fix the JSON there (no trailing commas or comments; strings in double quotes).",
        ) from None

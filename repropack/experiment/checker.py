"""Collecting a spec's problems as 'line N: key: message' strings, and showing a bad value in a message."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from repropack.experiment.yamldoc import Located


class Checker:
    """Collects problems as 'line N: key: message' strings while the spec is being read."""

    def __init__(self, doc: Located, root: Path, spec_name: str = "experiment.yaml") -> None:
        self.doc = doc
        self.root = root
        self.spec_name = spec_name
        self.problems: list[str] = []

    def problem(self, path: tuple[str, ...], message: str) -> None:
        line = self.doc.line(*path)
        where = f"line {line}: " if line is not None else ""
        key = ".".join(path)
        self.problems.append(f"{where}{key + ': ' if key else ''}{message}")

    def unknown_keys(self, mapping: dict[str, Any], allowed: tuple[str, ...], path: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                suggestion = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(allowed)}"
                self.problem((*path, key), f"unknown key; {suggestion}")

    def mapping(self, value: Any, path: tuple[str, ...], example: str = "") -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        shape = f" (for example {example})" if example else ""
        self.problem(path, f"must be a mapping of keys to values, not {kind(value)}{shape}")
        return None

    def text(self, value: Any, path: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        self.problem(path, f"must be a non-empty string, not {kind(value)}")
        return None

    def number(self, value: Any, path: tuple[str, ...], *, minimum: float | None = None) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            self.problem(path, f"must be a number, not {kind(value)}")
            return None
        if not math.isfinite(value):
            self.problem(path, f"must be a finite number, not {value}")
            return None
        if minimum is not None and value < minimum:
            self.problem(path, f"must be at least {minimum}, not {value}")
            return None
        return float(value)

    def existing_file(self, value: Any, path: tuple[str, ...], *, directory_ok: bool = False) -> Path | None:
        text = self.text(value, path)
        if text is None:
            return None
        resolved = (self.root / text).resolve() if not Path(text).is_absolute() else Path(text)
        if not resolved.exists():
            self.problem(path, f"'{text}' does not exist (looked for it relative to the spec's folder)")
            return None
        if resolved.is_dir() and not directory_ok:
            self.problem(path, f"'{text}' is a directory; name a file")
            return None
        return resolved


def kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {short(value)!r}"
    return f"{type(value).__name__} {short(repr(value))}"


def short(text: str, limit: int = 40) -> str:
    """A value as a message shows it: a whole file read as one string must not become the message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."

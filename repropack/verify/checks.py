"""A check's result: its name, whether it held, what it checks, and the mismatches it names.

Every check of ``verify`` (integrity, the paper binding, ``--source``) reports as a :class:`Check`; a report
names at most ``MAX_NAMED`` mismatches per check, then counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_NAMED = 20  # a report names at most this many mismatches per check, then counts the rest


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    problems: tuple[str, ...] = field(default_factory=tuple)
    cached: bool = False  # the result of an earlier verify of the same image id, not checked again now

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "detail": self.detail, "problems": list(self.problems), "cached": self.cached}


def make_check(name: str, detail: str, problems: list[str]) -> Check:
    shown = problems[:MAX_NAMED]
    if len(problems) > MAX_NAMED:
        shown.append(f"... and {len(problems) - MAX_NAMED} more")
    return Check(name, not problems, detail, tuple(shown))

"""One error hierarchy, written for the user. The CLI maps each class to its exit code in one place.

Exit codes are a contract (README.md, DESIGN.md): 0 ok, 1 not reproduced / image does not match its
manifest, 2 bad input, 3 environment, 4 the experiment's own command failed.
"""

from __future__ import annotations


class ReproError(Exception):
    """Base class: ``str(error)`` is one short paragraph saying what failed, where, and how to fix it."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message.strip()
        self.hint = hint.strip() if hint else None
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class NotReproduced(ReproError):
    """A metric is out of tolerance, or an image does not match its manifest."""

    exit_code = 1


class BadInput(ReproError):
    """The spec, a config, a lockfile, a manifest, an argument or a file the user named is wrong."""

    exit_code = 2


class SpecError(BadInput):
    """experiment.yaml has one or more problems; ``problems`` lists each with its line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "; ".join(problems)
        noun = "problem" if len(problems) == 1 else "problems"
        end = "" if listing.endswith(("?", ".")) else "."  # not "did you mean 'seed'?."
        super().__init__(f"{path}: {len(problems)} {noun}: {listing}{end}")


class EnvironmentProblem(ReproError):
    """Docker or a registry is unreachable, a build step failed, a required GPU is absent."""

    exit_code = 3


class CommandFailed(ReproError):
    """The experiment's own command failed inside the container."""

    exit_code = 4

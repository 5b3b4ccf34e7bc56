"""The entry point: run the app and turn every error into its one-paragraph message and exit code."""

from __future__ import annotations

import sys

from repropack.cli import clusters, making, records, running, sharing  # noqa: F401  (they register the commands)
from repropack.cli.app import app, say, state
from repropack.errors import ReproError


def main() -> None:
    """Entry point: run the app and turn every error into its one-paragraph message and exit code."""
    try:
        app()  # standalone mode: usage errors print their message and exit 2, --help exits 0
    except ReproError as error:
        if state["debug"]:
            raise
        say(f"error: {error.paragraph()}")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
    except Exception as error:  # a bug of ours: still one paragraph, and the way to see more
        if state["debug"]:
            raise
        say(
            f"error: repropack failed unexpectedly ({type(error).__name__}: {error}). "
            "Run again with --debug for the traceback, and please report it."
        )
        sys.exit(3)


def console() -> None:
    """The ``repropack`` console script (and ``python -m repropack``)."""
    main()

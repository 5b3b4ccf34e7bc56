"""The command line: parse options, call one pipeline function, print, map errors to exit codes.

Nothing below this package prints for the user or exits; errors are ReproError subclasses whose
``exit_code`` is the contract in README.md (0 ok, 1 not reproduced, 2 bad input, 3 environment,
4 the experiment's command failed). May import every package; none imports it.
"""

from repropack.cli.app import app
from repropack.cli.main import console, main

__all__ = ["app", "console", "main"]

"""How the runtime ends a run: :class:`Stop`, an exit code with its one-paragraph message.

Standard library only and Python 3.8-compatible, a sibling of the entrypoint in ``/repro/runtime``. The
codes follow repropack's contract: 0 ok, 1 the image's own files differ from its manifest, 2 bad input
(arguments, mounted data), 3 environment (GPU required but absent, output folder not writable), 4 the
command failed.
"""

from __future__ import annotations


class Stop(Exception):
    """Ends the run with an exit code and a one-paragraph message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

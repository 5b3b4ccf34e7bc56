"""The ``repropack`` console script: a helper for the datasets' stat pass is started before anything is
imported (see :mod:`repropack.prefetch`), then the command line runs (:func:`repropack.cli.console`)."""

from __future__ import annotations

import sys

from repropack import prefetch


def main() -> None:
    prefetch.start(sys.argv[1:])
    try:
        from repropack.cli import console

        console()  # leaves with os._exit (stopping the helper first) unless an error escapes (--debug)
    finally:
        prefetch.cancel()

"""Verify, for a reader who does not trust the image's author: the integrity checks (is the image exactly
what its manifest says, read from outside), the source binding (``--source``), the targets verify
accepts, and the re-run whose metrics are compared within tolerance. May import run and everything
below it; nothing imports verify but the command line.
"""

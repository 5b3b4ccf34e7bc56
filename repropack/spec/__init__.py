"""The spec: experiment.yaml, version 1, read, validated (every problem at once, with its line) and
normalized into a :class:`Spec`, the only thing later stages read. Paths in it are absolute on this
host; nothing host-specific leaves this package except through explicit, relative fields. May import
errors, files and bases.catalog (a base is checked against the catalog).
"""

from __future__ import annotations

from pathlib import Path

from repropack.files import read_text
from repropack.spec.commands import command_fields
from repropack.spec.model import NAME_COMPONENT, TAG_NAME, Dataset, Expected, Metrics, Spec
from repropack.spec.validate import validate
from repropack.spec.yamldoc import load_yaml

__all__ = ["NAME_COMPONENT", "TAG_NAME", "Dataset", "Expected", "Metrics", "Spec", "command_fields", "load_spec"]


def load_spec(path: Path, *, lockfile_may_be_missing: bool = False) -> Spec:
    """Read, validate and normalize ``path``; raise :class:`SpecError` listing every problem.

    A lockfile the spec names explicitly must exist (``freeze`` and ``build`` only create the default
    one): a typo there would otherwise make a second lockfile. ``repropack lock`` passes
    ``lockfile_may_be_missing`` because creating it is its job.
    """
    text = read_text(path, "experiment spec")
    doc = load_yaml(text, path.name)
    return validate(doc, path.resolve(), lockfile_may_be_missing=lockfile_may_be_missing)

"""The experiment spec: experiment.yaml, version 1, read, validated (every problem at once, with its line) and
normalized into a :class:`Spec`, the only thing later stages read. Paths in it are absolute on this
host; nothing host-specific leaves this package except through explicit, relative fields. May import
errors, files and bases.catalog (a base is checked against the catalog).
"""

from repropack.experiment.commands import command_fields
from repropack.experiment.model import NAME_COMPONENT, TAG_NAME, Dataset, Expected, Metrics, Spec
from repropack.experiment.validate import load_spec

__all__ = ["NAME_COMPONENT", "TAG_NAME", "Dataset", "Expected", "Metrics", "Spec", "command_fields", "load_spec"]

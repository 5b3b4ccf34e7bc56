"""repropack: one ML experiment becomes one Docker image plus one manifest."""

__version__ = "0.1.0"

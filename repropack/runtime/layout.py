"""The image's layout and the dataset index format: the one place both sides spell them.

Standard library only and Python 3.8-compatible: the image's runtime imports it as a sibling file
(``/repro/runtime/layout.py``), and the host (freeze, the Dockerfile template, integrity) imports it
as ``repropack.runtime.layout``. Changing a path here changes every image's manifest.
"""

from __future__ import annotations

ROOT = "/repro"
CODE = "/repro/code"  # the experiment's code at the recorded commit; the working folder
CONFIG = "/repro/config"  # the experiment's config file, if any
DATA = "/repro/data"  # embedded datasets, one folder each (mounted ones land here too)
INDEXES = "/repro/datasets"  # one index per dataset, pinned by the dataset's digest in the manifest
MANIFEST = "/repro/manifest.json"  # always this file: a path from the environment could name a forged one
RUNTIME = "/repro/runtime"  # this runtime: entrypoint.py, layout.py, hooks/sitecustomize.py
VENV = "/repro/venv"  # the locked packages, installed offline from hash-checked wheels
PYTHON = VENV + "/bin/python"
OUTPUT = "/output"  # where a run writes metrics.json, run.json and the experiment's outputs

ENTRYPOINT = [PYTHON, "-I", RUNTIME + "/entrypoint.py"]
COMMAND_PATH = VENV + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the Dockerfile's ENV sets (over the base image's environment); verify expects exactly this.
IMAGE_ENV = {"PATH": COMMAND_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "HOME": "/tmp"}
# The manifest's "layout" record: where a reader finds each part in the image.
MANIFEST_LAYOUT = {
    "code": CODE,
    "config": CONFIG,
    "data": DATA,
    "manifest": MANIFEST,
    "output": OUTPUT,
    "python": PYTHON,
}


def config_path(name: str) -> str:
    return CONFIG + "/" + name


def dataset_folder(name: str) -> str:
    return DATA + "/" + name


def index_path(name: str) -> str:
    return INDEXES + "/" + name + ".sha256sums"


# -- the dataset index: sorted "sha256  size  path" lines, one per file ---------------------------------
def index_line(sha256: str, size: int, path: str) -> str:
    return f"{sha256}  {size}  {path}\n"


def index_lines(data: bytes) -> list[str]:
    """The lines of an index, in order (a path may hold any character but the newline that ends its
    line, so the lines are split on that alone)."""
    return data.decode().split("\n")[:-1]


def index_entry(line: str) -> tuple[str, int, str]:
    """(sha256, size, path) of one index line: the path is all after the second two-space separator,
    spaces included."""
    digest, size, path = line.split("  ", 2)
    return digest, int(size), path

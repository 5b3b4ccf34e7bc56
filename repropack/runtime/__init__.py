"""The runtime files repropack puts in every image, read from the installed package."""

from __future__ import annotations

from importlib import resources

# path in the image's /repro/runtime/ -> file of the repropack.runtime package
RUNTIME_FILES = {
    "command.py": "command.py",
    "datasets.py": "datasets.py",
    "entrypoint.py": "entrypoint.py",
    "exits.py": "exits.py",
    "hooks/sitecustomize.py": "sitecustomize.py",
    "layout.py": "layout.py",
    "manifest.schema.json": "manifest.schema.json",
    "outputs.py": "outputs.py",
    "records.py": "records.py",
}


def runtime_sources() -> dict[str, bytes]:
    package = resources.files("repropack.runtime")
    return {target: package.joinpath(source).read_bytes() for target, source in RUNTIME_FILES.items()}

"""Stage an image's /repro tree (without its venv) as a tar, for the GPU checks on a machine without Docker.

    python -m tests.gpu.stage IMAGE OUTPUT.tar

The tar holds exactly the image's manifest, code, config, runtime, dataset indexes and embedded data, read
through repropack's engine (a created-never-started container). Unpacked at / on a GPU machine, it lets
tests/gpu run the image's own entrypoint with that machine's CUDA build of torch.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from repropack.engine.client import Engine

SKIPPED = "repro/venv"  # the image's CPU environment: the GPU machine brings its own torch


def stage(image: str, output: Path) -> int:
    """Write the tar; returns how many files it holds."""
    engine = Engine.connect()
    count = 0
    partial = output.with_name(output.name + ".partial")
    with engine.files(image) as files, tarfile.open(partial, "w") as tar:
        for path, member, content in files.walk("/repro"):
            name = path.lstrip("/")
            if name == SKIPPED or name.startswith(SKIPPED + "/"):
                continue
            member.name = name
            tar.addfile(member, content)
            count += member.isfile()
    partial.replace(output)
    return count


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{stage(sys.argv[1], Path(sys.argv[2]))} files staged in {sys.argv[2]}")

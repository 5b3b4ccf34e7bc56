"""Images: rebuild after a one-line code edit against a hand-written floor and a naive Dockerfile, the
image's size and what its layers hold, and the build context sent to the engine."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import IO

from bench.common import BASE_IMAGE, PREFIX, Bench, Row, human_bytes, median

# only the code layer rebuilds after a code edit: what a careful person writes by hand
FLOOR = f"""FROM {BASE_IMAGE}
COPY requirements.lock /tmp/req/requirements.lock
COPY wheels/ /tmp/req/wheels/
RUN python3 -m venv /venv && /venv/bin/pip install --no-index --find-links /tmp/req/wheels --require-hashes \\
      --no-deps --no-cache-dir --disable-pip-version-check -r /tmp/req/requirements.lock
COPY data/ /app/data/
COPY weights/ /app/weights/
COPY config.json /app/config.json
COPY digits_mlp/ /app/digits_mlp/
WORKDIR /app
"""

# copy the project, then install its requirements: every code edit reinstalls everything
NAIVE = f"""FROM {BASE_IMAGE}
COPY . /app
WORKDIR /app
RUN python3 -m venv /venv && /venv/bin/pip install --no-index --find-links /app/wheels -r requirements.lock
"""

RP_TAG = f"{PREFIX}rp:latest"
FLOOR_TAG = f"{PREFIX}floor:latest"
NAIVE_TAG = f"{PREFIX}naive:latest"


def edit_code(folder: Path, round_: int) -> None:
    """The one-line edit: a comment appended to the package's __init__.py (the caller commits it)."""
    init = folder / "digits_mlp" / "__init__.py"
    init.write_text(init.read_text() + f"# bench edit {round_}\n")


def repropack_build(bench: Bench, spec: Path) -> tuple[float, str]:
    seconds, done = bench.timed([*bench.repropack(), "build", spec, "--tag", RP_TAG, "--json"])
    image = str(json.loads(done.stdout)["image"])
    bench.images += [RP_TAG, image]
    return seconds, image


def rebuild(bench: Bench) -> list[Row]:
    spec = bench.experiment("rebuild-exp")
    folder = spec.parent
    bench.wheels(spec, folder / "wheels")  # untracked: the floor and the naive build copy them
    bench.log("rebuild: first builds (repropack, floor, naive)")
    first = {
        "repropack": repropack_build(bench, spec)[0],
        "floor": bench.docker_build(folder, FLOOR, FLOOR_TAG)[0],
        "naive": bench.docker_build(folder, NAIVE, NAIVE_TAG)[0],
    }
    times: dict[str, list[float]] = {"repropack": [], "floor": [], "naive": []}
    naive_rounds = 1 if bench.quick else max(2, bench.repeat - 1)  # ~50 s each
    for round_ in range(bench.repeat):
        edit_code(folder, round_)
        bench.commit(folder, f"one-line edit {round_}", "digits_mlp/__init__.py")
        bench.log(f"rebuild: round {round_ + 1}/{bench.repeat}")
        seconds, image = repropack_build(bench, spec)
        times["repropack"].append(seconds)
        times["floor"].append(bench.docker_build(folder, FLOOR, FLOOR_TAG)[0])
        if round_ < naive_rounds:
            times["naive"].append(bench.docker_build(folder, NAIVE, NAIVE_TAG)[0])
    bench.built["repropack"] = image
    bench.built["naive"] = NAIVE_TAG
    rp, floor, naive = (median(times[k]) for k in ("repropack", "floor", "naive"))
    return [
        Row(
            "rebuild",
            "repropack build after a committed one-line edit",
            rp,
            "s",
            floor,
            "floor Dockerfile",
            rp / floor,
            "<= 1.5x floor",
            rp / floor <= 1.5,
            samples=times["repropack"],
            baseline_samples=times["floor"],
            note=f"first builds: repropack {first['repropack']:.1f} s, floor {first['floor']:.1f} s, "
            f"naive {first['naive']:.1f} s",
            extra={"first_build_s": first},
        ),
        Row(
            "rebuild",
            "the same, against the naive Dockerfile",
            rp,
            "s",
            naive,
            "naive Dockerfile",
            rp / naive,
            "<= 0.25x naive",
            rp / naive <= 0.25,
            samples=times["repropack"],
            baseline_samples=times["naive"],
        ),
    ]


# -- size and layer content ---------------------------------------------------------------------------------
FORBIDDEN = {
    "pip cache": re.compile(r"(^|/)\.cache/pip(/|$)"),
    "wheel files": re.compile(r"\.whl$"),
    "compilers": re.compile(
        r"(^|/)usr/(local/)?bin/([\w.-]+-)?(gcc|g\+\+|cc|c\+\+|clang|clang\+\+|gfortran)"
        r"(-[\d.]+)?$|(^|/)usr/lib/gcc/.*/cc1(plus)?$"
    ),
}


def layer_findings(image: str, base_layers: int) -> dict[str, dict[str, list[str]]]:
    """Walk every layer tar of ``docker save IMAGE``: per kind of forbidden content, the paths found in
    the base's layers and in the layers the image adds (first few of each)."""
    found: dict[str, dict[str, list[str]]] = {kind: {"base": [], "added": []} for kind in FORBIDDEN}
    per_layer: dict[str, list[tuple[str, str]]] = {}
    order: list[str] = []
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as saving:
        assert saving.stdout is not None
        with tarfile.open(fileobj=saving.stdout, mode="r|") as archive:
            for member in archive:
                if member.name.endswith("/layer.tar") and member.isfile():
                    layer = archive.extractfile(member)
                    if layer is not None:
                        per_layer[member.name] = _scan_layer(layer)
                elif member.name == "manifest.json":
                    content = archive.extractfile(member)
                    if content is not None:
                        order = list(json.loads(content.read())[0]["Layers"])
    for index, name in enumerate(order):
        for kind, path in per_layer.get(name, []):
            bucket = found[kind]["base" if index < base_layers else "added"]
            if len(bucket) < 5:
                bucket.append(path)
            elif len(bucket) == 5:
                bucket.append("...")
    return found


def _scan_layer(layer: IO[bytes]) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    with tarfile.open(fileobj=layer, mode="r|") as files:
        for entry in files:
            for kind, pattern in FORBIDDEN.items():
                if pattern.search(entry.name):
                    hits.append((kind, entry.name))
    return hits


def image_size(bench: Bench, image: str) -> int:
    return int(bench.run(["docker", "image", "inspect", "-f", "{{.Size}}", image]).stdout)


def size(bench: Bench) -> list[Row]:
    if "repropack" not in bench.built:
        rebuild_for_others(bench)
    rp, naive = bench.built["repropack"], bench.built["naive"]
    base_layers = len(
        json.loads(bench.run(["docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", BASE_IMAGE]).stdout)
    )
    sizes = {"repropack": image_size(bench, rp), "naive": image_size(bench, naive)}
    bench.log("size: walking every layer of both images (docker save)")
    findings = {"repropack": layer_findings(rp, base_layers), "naive": layer_findings(naive, base_layers)}
    added = {kind: paths["added"] for kind, paths in findings["repropack"].items()}
    in_base = sorted(kind for kind, paths in findings["repropack"].items() if paths["base"])
    clean = not any(added.values())
    naive_bad = sorted(kind for kind, paths in findings["naive"].items() if paths["added"])
    return [
        Row(
            "size",
            "image size",
            sizes["repropack"] / 2**20,
            "MiB",
            sizes["naive"] / 2**20,
            "naive image",
            sizes["repropack"] / sizes["naive"],
            "<= 1.0x naive",
            sizes["repropack"] <= sizes["naive"],
            extra={"bytes": sizes},
        ),
        Row(
            "size",
            "pip cache, wheels, compilers in its layers",
            None,
            "",
            target="none",
            ok=clean,
            note=("none in the layers repropack adds" if clean else f"found: {added}")
            + (f"; the base image's own layers hold: {', '.join(in_base)}" if in_base else "")
            + (f"; the naive image adds: {', '.join(naive_bad)}" if naive_bad else ""),
            extra={"findings": findings},
        ),
    ]


def rebuild_for_others(bench: Bench) -> None:
    """--only verify/size: one build of each image those scenarios look at."""
    spec = bench.experiment("images-exp")
    bench.wheels(spec, spec.parent / "wheels")
    bench.log("building the repropack and naive images")
    bench.built["repropack"] = repropack_build(bench, spec)[1]
    bench.docker_build(spec.parent, NAIVE, NAIVE_TAG)
    bench.built["naive"] = NAIVE_TAG


# -- build context -------------------------------------------------------------------------------------------
CONTEXT_ONLY = f"FROM {BASE_IMAGE}\nLABEL io.repropack.bench=context\n"


def context(bench: Bench) -> list[Row]:
    spec = bench.experiment("context-exp")
    folder = spec.parent
    with open(folder / "untracked-500MB.bin", "wb") as handle:  # an untracked file, as a checkpoint would be
        chunk = b"\0" * (1 << 20)
        for _ in range(500):
            handle.write(chunk)
    git_bytes = sum(p.stat().st_size for p in (folder / ".git").rglob("*") if p.is_file())
    seconds, _, sent = bench.docker_build(folder, CONTEXT_ONLY, f"{PREFIX}context:latest")
    ours, parts = repropack_context(spec)
    breakdown = ", ".join(f"{name} {human_bytes(count)}" for name, count in sorted(parts.items(), key=lambda p: -p[1]))
    return [
        Row(
            "context",
            "build context sent to the engine",
            ours / 1e6,
            "MB",
            (sent or 0) / 1e6,
            "docker build . (500 MB untracked + .git)",
            ours / sent if sent else None,
            "only what the image needs",
            "untracked-500MB.bin" not in parts and ".git" not in parts,
            note=f"repropack's context: {breakdown}; docker build . sent it in {seconds:.1f} s "
            f"(.git is {human_bytes(git_bytes)})",
            extra={"parts": parts, "docker_bytes": sent},
        )
    ]


def repropack_context(spec: Path) -> tuple[int, dict[str, int]]:
    """The exact context `repropack build` sends: its size, and its bytes per top-level folder."""
    import tempfile

    from repropack.engine.client import Engine
    from repropack.errors import EnvironmentProblem
    from repropack.experiment.validate import load_spec
    from repropack.freeze import freeze
    from repropack.freeze.wheelhouse import ensure_wheels
    from repropack.image.context import write_environment_context, write_image_context
    from repropack.image.dockerfile import render_dockerfiles
    from repropack.manifest.seal import seal_frozen

    loaded = load_spec(spec)
    try:
        engine: Engine | None = Engine.connect()
    except EnvironmentProblem:
        engine = None
    with tempfile.TemporaryDirectory(prefix=PREFIX) as scratch:
        frozen = seal_frozen(freeze(loaded, allow_dirty=False, engine=engine, lock_missing_to=Path(scratch) / "x.lock"))
        dockerfiles = render_dockerfiles(frozen)
        total = 0
        parts: dict[str, int] = {}
        # Each build sends the image's context; the environment's (lock and wheels) is sent once per lock.
        for kind in ("image", "environment"):
            with tempfile.TemporaryFile(dir=scratch) as out:
                if kind == "image":
                    write_image_context(frozen, dockerfiles.image, out)
                else:
                    lockfile = frozen.lock.path.read_bytes()
                    write_environment_context(dockerfiles.environment, lockfile, ensure_wheels(frozen.lock), out)
                if kind == "image":
                    total = out.tell()
                out.seek(0)
                with tarfile.open(fileobj=out, mode="r|") as archive:
                    for member in archive:
                        top = member.name.split("/", 1)[0]
                        key = top if kind == "image" else f"once per lock: {top}"
                        parts[key] = parts.get(key, 0) + member.size
    return total, parts

"""`repropack verify` of an image against a plain `docker run` of the same command: cold (the first
verify of an image id: the integrity checks read every file of the image) and warm (their passing
results are remembered by image id).

Each cold verify gets a cache folder of its own that holds the wheelhouse and the base listings (what
is kept per lockfile and per base, as on the machine that built the image), but no integrity result; a
third row shows the first verify on a base, which lists the base image's files too. The differences
are paired round by round, the plain run taking turns before and after the verifies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.common import Bench, Row, median
from bench.images import rebuild_for_others
from repropack.cache import cache_root

ROUNDS = 7  # at least: one run of the recipe's evaluate varies by +-2 s here (torch's import), more than the checks


def scenario(bench: Bench) -> list[Row]:
    if "repropack" not in bench.built:
        rebuild_for_others(bench)
    image = bench.built["repropack"]
    cli = bench.repropack()
    output = bench.scratch / "verify-output"
    verify = [*cli, "verify", image, "--json", "--command", "evaluate"]
    wheels = cache_root() / "wheels"
    listings = bench.scratch / "verify-base-listings"

    def plain_run() -> float:
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir()
        return bench.timed(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-u",
                f"{os.getuid()}:{os.getgid()}",
                "-v",
                f"{output}:/output",
                image,
                "evaluate",
            ]
        )[0]

    bench.log("verify: the first verify on the base (it lists the base image's files and keeps the listing)")
    first_on_base = bench.timed(verify, env=_cache(bench, "verify-first", wheels, listings))[0]
    plain, cold, warm = [], [], []
    cached: set[bool] = set()
    rounds = 1 if bench.quick else max(bench.repeat, ROUNDS)
    for round_ in range(rounds):
        bench.log(f"verify: round {round_ + 1}/{rounds}")
        if round_ % 2 == 0:  # the plain run first in one round, last in the next: drift cancels
            plain.append(plain_run())
        env = _cache(bench, f"verify-cache-{round_}", wheels, listings)  # no integrity result yet: cold
        cold.append(bench.timed(verify, env=env)[0])
        seconds, done = bench.timed(verify, env=env)
        warm.append(seconds)
        if round_ % 2 == 1:
            plain.append(plain_run())
        report = json.loads(done.stdout)
        cached |= {
            bool(check.get("cached")) for name, check in report["integrity"].items() if name in ("files", "packages")
        }
    base = median(plain)
    more_cold = median([c - p for c, p in zip(cold, plain, strict=True)])  # paired, round by round
    more_warm = median([w - p for w, p in zip(warm, plain, strict=True)])
    note = "ratio column: seconds more than docker run, the median of the rounds' paired differences"
    return [
        Row(
            "verify",
            "verify, first on its base (lists the base image's files too)",
            first_on_base,
            "s",
            base,
            "docker run",
            first_on_base - base,
            "—",
            None,
            samples=[first_on_base],
            baseline_samples=plain,
            note="one run; ratio column: seconds more than the median docker run",
        ),
        Row(
            "verify",
            "verify, cold (first verify of this image id)",
            median(cold),
            "s",
            base,
            "docker run",
            more_cold,
            "<= +6 s",
            more_cold <= 6.0,
            samples=cold,
            baseline_samples=plain,
            note=f"{note}; the integrity checks read every file of the image (one export of its filesystem)",
        ),
        Row(
            "verify",
            "verify, warm (integrity results cached)",
            median(warm),
            "s",
            base,
            "docker run",
            more_warm,
            "<= +0.5 s",
            more_warm <= 0.5,
            samples=warm,
            baseline_samples=plain,
            note=f"{note}; files/packages checks reported cached: {sorted(cached)}",
        ),
    ]


def _cache(bench: Bench, name: str, wheels: Path, listings: Path) -> dict[str, str]:
    """A cache folder of its own: no integrity result, the wheelhouse, and ``listings`` as its base
    listings (a first verify on a base writes there)."""
    folder = bench.scratch / name
    folder.mkdir()
    (folder / "wheels").symlink_to(wheels, target_is_directory=True)
    listings.mkdir(exist_ok=True)
    (folder / "base-listings").symlink_to(listings, target_is_directory=True)
    return {"REPROPACK_CACHE_DIR": str(folder)}

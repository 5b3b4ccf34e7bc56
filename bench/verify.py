"""`repropack verify` of an image against a plain `docker run` of the same command: cold (the first
verify of an image id, integrity checks read the image) and warm (their passing results are cached)."""

from __future__ import annotations

import json
import os
import shutil

from bench.common import Bench, Row, median
from bench.images import rebuild_for_others


def scenario(bench: Bench) -> list[Row]:
    if "repropack" not in bench.built:
        rebuild_for_others(bench)
    image = bench.built["repropack"]
    cli = bench.repropack()
    output = bench.scratch / "verify-output"
    plain, cold, warm = [], [], []
    cached: set[bool] = set()
    for round_ in range(bench.repeat):
        bench.log(f"verify: round {round_ + 1}/{bench.repeat}")
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir()
        plain.append(bench.timed(["docker", "run", "--rm", "--network", "none", "-u", f"{os.getuid()}:{os.getgid()}",
                                  "-v", f"{output}:/output", image, "evaluate"])[0])
        env = {"REPROPACK_CACHE_DIR": str(bench.scratch / f"verify-cache-{round_}")}  # a fresh cache: cold
        seconds, done = bench.timed([*cli, "verify", image, "--json", "--command", "evaluate"], env=env)
        cold.append(seconds)
        seconds, done = bench.timed([*cli, "verify", image, "--json", "--command", "evaluate"], env=env)
        warm.append(seconds)
        report = json.loads(done.stdout)
        cached |= {bool(check.get("cached")) for name, check in report["integrity"].items()
                   if name in ("files", "packages")}
    base = median(plain)
    return [
        Row("verify", "verify, cold (first verify of this image id)", median(cold), "s", base, "docker run",
            median(cold) - base, "<= +6 s", median(cold) - base <= 6.0, samples=cold, baseline_samples=plain,
            note=f"ratio column: seconds more than docker run; cold - warm = {median(cold) - median(warm):.1f} s, the "
                 "integrity checks reading every layer above the base (docker save) and the locked wheels"),
        Row("verify", "verify, warm (integrity results cached)", median(warm), "s", base, "docker run",
            median(warm) - base, "<= +0.5 s", median(warm) - base <= 0.5, samples=warm, baseline_samples=plain,
            note=f"files/packages checks reported cached: {sorted(cached)}"),
    ]

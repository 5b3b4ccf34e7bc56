"""Dataset hashing inside `repropack freeze`: cold against single-thread hashlib, warm, one file changed.

The dataset's share of a freeze is the freeze's time minus the same experiment's freeze without that
dataset: each freeze with it is paired with the freezes without it just before and after (so that the
machine's drift cancels out), and the medians of those shares are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.common import Bench, Row, median

LARGE_FILES = 64
LARGE_SIZE = 16 << 20
SMALL_FILES = 20_000
SMALL_SIZE = 4 << 10
FOLDERS = 200
QUIET_S = 2.1  # a file must be this old for the stat cache to trust it (its racy rule is 2 s)
WARM_PAIRS = 8  # warm freezes per round, each after a freeze without the dataset


def make_dataset(root: Path) -> tuple[int, int]:
    """64 x 16 MiB of incompressible data plus 20,000 files of 4 KiB in 200 folders; (files, bytes)."""
    block = os.urandom(LARGE_SIZE)
    (root / "large").mkdir(parents=True)
    for i in range(LARGE_FILES):
        (root / "large" / f"part-{i:03d}.bin").write_bytes(block[i * 4096 :] + block[: i * 4096])
    pool = os.urandom(1 << 20)
    for folder in range(FOLDERS):
        (root / "small" / f"{folder:03d}").mkdir(parents=True)
        for j in range(SMALL_FILES // FOLDERS):
            k = (folder * (SMALL_FILES // FOLDERS) + j) * 31 % (len(pool) - SMALL_SIZE)
            (root / "small" / f"{folder:03d}" / f"{j:03d}.txt").write_bytes(pool[k : k + SMALL_SIZE])
    return LARGE_FILES + SMALL_FILES, LARGE_FILES * LARGE_SIZE + SMALL_FILES * SMALL_SIZE


def single_thread_hashlib(paths: list[str]) -> float:
    """The baseline: hashlib.file_digest (sha256) of every file in one thread (the list made beforehand)."""
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
    return time.perf_counter() - start


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only), as for a dataset that does not fit in memory."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as knob:
            knob.write("3\n")
        return True
    except OSError:
        return False


def change_one_file(path: Path, round_: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(LARGE_SIZE // 2)
        handle.write(round_.to_bytes(8, "little") + os.urandom(56))


def scenario(bench: Bench) -> list[Row]:
    spec = bench.experiment("data-exp")
    data = bench.scratch / "dataset"
    bench.log(f"data: writing {LARGE_FILES} x 16 MiB + {SMALL_FILES} x 4 KiB to {data}")
    files, size = make_dataset(data)
    big = spec.with_name("experiment-big.yaml")
    text = spec.read_text()
    big.write_text(text.replace("datasets:\n", f"datasets:\n  big:\n    path: {data}\n    embed: false\n", 1))
    bench.commit(spec.parent, "the same experiment with a 1 GiB dataset", big.name)
    time.sleep(QUIET_S)  # data as a researcher has it: not written in the last two seconds
    paths = [str(p) for p in sorted(data.rglob("*")) if p.is_file()]
    repeat = max(3, bench.repeat)
    cli = bench.repropack()
    out = bench.scratch / "freeze-out"

    def freeze(which: Path, cache: Path) -> tuple[float, dict[str, Any]]:
        env = {"REPROPACK_CACHE_DIR": str(cache)}
        seconds, done = bench.timed([*cli, "freeze", which, "-o", out, "--json"], env=env)
        return seconds, json.loads(done.stdout)

    baseline: list[float] = []
    small: list[float] = []  # freezes without the dataset
    cold: list[float] = []  # shares: a freeze with the dataset less the mean of its two neighbours without
    warm: list[float] = []
    changed: list[float] = []
    disk_baseline: list[float] = []
    disk_cold: list[float] = []
    counts: list[dict[str, int]] = []
    large = sorted((data / "large").iterdir())

    def without() -> float:
        small.append(freeze(spec, cache)[0])
        return small[-1]

    def share(before: float, seconds: float) -> float:
        """``seconds`` less the freezes without the dataset just before and just after it: paired, so that
        the machine's drift (tens of ms here from one run to the next) cancels out."""
        return seconds - (before + without()) / 2

    for round_ in range(repeat):
        bench.log(f"data: round {round_ + 1}/{repeat}")
        cache = bench.scratch / f"cache-{round_}"
        baseline.append(single_thread_hashlib(paths))
        cold.append(share(without(), freeze(big, cache)[0]))
        for _ in range(WARM_PAIRS):  # a share of tens of ms is a difference of two noisy timings: many pairs
            warm.append(share(small[-1], freeze(big, cache)[0]))
        change_one_file(large[round_ % len(large)], round_)
        time.sleep(QUIET_S)  # the edit is older than the racy window, as after a human's edit
        before = without()
        seconds, answer = freeze(big, cache)
        changed.append(share(before, seconds))
        counts.append(answer["hashed"])
    floor = median(small)
    for round_ in range(repeat):  # last: emptying the page cache slows whatever runs next
        if not drop_page_cache():
            break
        bench.log(f"data: from disk {round_ + 1}/{repeat}")
        disk_baseline.append(single_thread_hashlib(paths))
        drop_page_cache()
        before = without()  # also brings the interpreter's own files back into memory
        disk_cold.append(share(before, freeze(big, bench.scratch / f"cache-disk-{round_}")[0]))
    cold_share = median(cold)
    warm_share = median(warm)
    changed_share = median(changed)
    base = median(baseline)
    in_process = hash_split(data, bench.scratch / "cache-split", repeat)
    hashed_files = sorted({c["hashed_files"] for c in counts})
    alone_cold, alone_warm = in_process["cold_s"], in_process["warm_s"]
    return [
        Row(
            "data",
            "hashing alone: hash_tree, cold (cache written)",
            alone_cold,
            "s",
            base,
            "single-thread hashlib",
            base / alone_cold,
            "(component)",
            None,
            note="no CLI, no manifest: the part parallel hashing owns",
        ),
        Row(
            "data",
            "hashing alone: hash_tree, warm",
            alone_warm,
            "s",
            alone_cold,
            "hash_tree cold",
            alone_warm / alone_cold,
            "(component)",
            None,
            note="a stat per file, one cache record read",
        ),
        Row(
            "data",
            "cold share of freeze (1 GiB, 20,064 files)",
            cold_share,
            "s",
            base,
            "single-thread hashlib",
            base / cold_share,
            ">= 1.3x faster",
            base / cold_share >= 1.3,
            note=f"each a freeze with the data less the two without it beside it (median without: {floor:.2f} s); "
            "warm page cache",
            samples=cold,
            baseline_samples=baseline,
            extra={"without_data": small, "files": files, "bytes": size, "in_process": in_process},
        ),
        *disk_rows(disk_cold, disk_baseline, warm_share),
        Row(
            "data",
            "warm share (unchanged, stat cache)",
            warm_share,
            "s",
            cold_share,
            "cold share",
            warm_share / cold_share,
            "<= 0.15x",
            warm_share / cold_share <= 0.15,
            note=f"hash_tree alone, warm: {alone_warm:.3f} s = {alone_warm / cold_share:.0%} of the cold share: "
            "one stat per file, in the CLI's own process",
            samples=warm,
        ),
        Row(
            "data",
            "one 16 MiB file changed",
            changed_share,
            "s",
            cold_share,
            "cold share",
            changed_share / cold_share,
            "re-hash only that file",
            hashed_files == [1],
            note=f"files re-hashed per run: {', '.join(map(str, hashed_files))}",
            samples=changed,
            extra={"counts": counts},
        ),
    ]


def disk_rows(disk_cold: list[float], disk_baseline: list[float], warm_share: float) -> list[Row]:
    """The cold share again with the page cache emptied first (each side): reading from the disk, as a
    dataset larger than memory always is. Shown beside the targets, which are measured on a warm page
    cache (there the work is the hashing itself, the stricter test of using both cores)."""
    if not disk_cold:
        return []
    share = median(disk_cold)
    base = median(disk_baseline)
    return [
        Row(
            "data",
            "cold share, page cache emptied (from disk)",
            share,
            "s",
            base,
            "single-thread hashlib, page cache emptied",
            base / share,
            "(context)",
            None,
            note=f"the warm share is {warm_share / share:.1%} of this one",
            samples=disk_cold,
            baseline_samples=disk_baseline,
        )
    ]


def hash_split(data: Path, cache_path: Path, repeat: int) -> dict[str, float]:
    """hash_tree alone (no CLI, no manifest): cold and warm medians, to show where a warm freeze spends."""
    from repropack.checksums.hashing import hash_tree
    from repropack.checksums.statcache import StatCache

    cold, warm = [], []
    for round_ in range(repeat):
        path = cache_path / f"{round_}.sqlite3"
        with StatCache(path) as cache:
            start = time.perf_counter()
            hash_tree(data, cache=cache)
            cold.append(time.perf_counter() - start)
        with StatCache(path) as cache:
            start = time.perf_counter()
            hash_tree(data, cache=cache)
            warm.append(time.perf_counter() - start)
    return {"cold_s": median(cold), "warm_s": median(warm)}

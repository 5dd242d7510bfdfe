"""Hotlist benchmark: load time, memory and lookup latency for a generated list of N entries.

    python -m benchmarks.hotlist --entries 10000000 --json

Writes N fictitious entries (random VRMs, all four markers, quoted text with commas) to a real
CSV file in a temporary directory, then measures:

- load_s: `load_hotlists` on that CSV file: reading, validating, building both indexes, on
  every core (load_cpu_s: the CPU time of all its threads, user + system; load_system_s: the
  system part, mostly first touches of fresh memory, which on a virtual machine that hands freed
  memory back to its host costs 2 to 4 s per GB, varying from run to run).
- rss_mb / peak_rss_mb: resident memory after loading / the process's peak (psutil, getrusage).
- exact_ns_*: `Hotlist.exact_matches` per read, half of the reads on the list, half not.
- fuzzy_ns_*: `Hotlist.misread_matches` (max_distance 1) on misreads of listed VRMs (a confusable
  swap, or one missing, extra or wrong character); `fuzzy_found` is the share found, and
  `fuzzy_hits_mean` the possible misreads returned per read (random VRMs crowd a big list, so a
  read is within one confusion-class edit of more entries as N grows: the returned hits, not the
  index, are what grows).
- match_miss_ns_*: the whole `Hotlist.match` for a read on no list: the cost of a typical read.
- unlisted_misread_hit_share: of vehicles not on the list, read exactly, with registrations
  drawn as the list's are (current style, uniform letters and digits), the share that
  `Hotlist.match` still reports as a possible misread of an entry, at `max_distance` 0 (only
  confusable swaps, O/0 and the like) and 1 (the default): the false "possible misread" alerts
  a passing vehicle raises against a list of this size. Real registrations cluster (memory tags,
  recent age identifiers), so real lists crowd more than this.
Each latency is one call timed with perf_counter_ns, so it includes about 100 ns of timer cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from edge.hotlist import load_hotlists
from edge.hotlist.index import CONFUSION_GROUPS
from edge.hotlist.matching import chance_misread_share

HEADER = b"entry_id,vrm,markers,action,information,source,added,expires\n"
MARKERS = [b"firearms", b"gangs", b"burglary", b"drugs", b"firearms;gangs", b"drugs;burglary"]
MARKER_WEIGHTS = [0.1, 0.2, 0.25, 0.3, 0.05, 0.1]
ACTIONS = [b"stop - armed support", b"follow and stop", b"intelligence only"]
INFORMATION = [
    b"Fictitious benchmark entry",
    b'"Fictitious: seen at services, M6 northbound"',
    b'"Fictitious: driver known as ""Tiny"", violent"',
    b"",
    b"Fictitious: vehicle used in a robbery",
]
SOURCES = [b"Benchmark force A", b"Benchmark force B", b"Benchmark intelligence unit"]
ADDED = [b"2025-01-15", b"2025-06-30", b"2026-02-01"]
EXPIRES = [b"2030-01-15", b"2031-06-30", b"2032-02-01"]
LETTERS = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)
ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CHUNK = 200_000


def _choice(rng: np.random.Generator, options: list[bytes], count: int, p=None):
    """(bytes table gathered per row, valid-length mask) for a column of choices."""
    width = max(len(option) for option in options)
    table = np.zeros((len(options), width), np.uint8)
    for row, option in enumerate(options):
        table[row, : len(option)] = np.frombuffer(option, np.uint8)
    lengths = np.array([len(option) for option in options])
    picks = rng.choice(len(options), size=count, p=p)
    return table[picks], np.arange(width) < lengths[picks][:, None]


def _fixed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values, np.ones(values.shape, bool)


def fictitious_rows(rng: np.random.Generator, first: int, count: int) -> bytes:
    """CSV lines for entries first+1 .. first+count, built as byte arrays (no loop per line)."""
    numbers = np.arange(first + 1, first + count + 1)
    digits = (numbers[:, None] // 10 ** np.arange(9, -1, -1)) % 10 + 48
    comma = _fixed(np.full((count, 1), ord(","), np.uint8))
    vrm = np.empty((count, 8), np.uint8)
    vrm[:, [0, 1, 5, 6, 7]] = LETTERS[rng.integers(0, 26, (count, 5))]
    vrm[:, [2, 3]] = rng.integers(48, 58, (count, 2))
    vrm[:, 4] = ord(" ")
    pieces = [
        _fixed(np.tile(np.frombuffer(b"B", np.uint8), (count, 1))),
        _fixed(digits.astype(np.uint8)),
        comma,
        _fixed(vrm),
        comma,
        _choice(rng, MARKERS, count, MARKER_WEIGHTS),
        comma,
        _choice(rng, ACTIONS, count),
        comma,
        _choice(rng, INFORMATION, count),
        comma,
        _choice(rng, SOURCES, count),
        comma,
        _choice(rng, ADDED, count),
        comma,
        _choice(rng, EXPIRES, count),
        _fixed(np.full((count, 1), ord("\n"), np.uint8)),
    ]
    rows = np.hstack([values for values, _ in pieces])
    valid = np.hstack([mask for _, mask in pieces])
    return rows[valid].tobytes()


def write_fictitious_list(path: Path, entries: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with path.open("wb") as out:
        out.write(HEADER)
        for first in range(0, entries, _CHUNK):
            out.write(fictitious_rows(rng, first, min(_CHUNK, entries - first)))


def misread(vrm: str, rng: np.random.Generator) -> str:
    """A plausible misread: a confusable swap, or one missing, extra or wrong character."""
    position = int(rng.integers(len(vrm)))
    kind = rng.integers(4)
    if kind == 0:
        swaps = [(i, g) for i, c in enumerate(vrm) for g in CONFUSION_GROUPS if c in g]
        if swaps:
            position, group = swaps[int(rng.integers(len(swaps)))]
            other = [c for c in group if c != vrm[position]]
            return vrm[:position] + other[int(rng.integers(len(other)))] + vrm[position + 1 :]
        kind = 3
    char = ALPHANUMERIC[int(rng.integers(36))]
    if kind == 1:
        return vrm[:position] + vrm[position + 1 :]
    if kind == 2:
        return vrm[:position] + char + vrm[position:]
    return vrm[:position] + char + vrm[position + 1 :]


def _percentiles(samples: list[int]) -> tuple[int, int]:
    p50, p99 = np.percentile(np.array(samples), [50, 99])
    return int(p50), int(p99)


def run(entries: int, queries: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    with tempfile.TemporaryDirectory(prefix="hotlist-bench-") as folder:
        path = Path(folder) / "fictitious.csv"
        started = time.perf_counter()
        write_fictitious_list(path, entries, seed)
        generate_s = time.perf_counter() - started
        csv_mb = path.stat().st_size / 1e6
        gc.collect()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        hotlist = load_hotlists([path])
        load_s = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        load_system_s = cpu_after.ru_stime - cpu_before.ru_stime
        load_cpu_s = cpu_after.ru_utime - cpu_before.ru_utime + load_system_s
    rss_mb = psutil.Process().memory_info().rss / 1e6
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3

    at = dt.date.today()
    listed = [hotlist.vrm(int(n)) for n in rng.integers(0, len(hotlist), queries)]
    unlisted = ["".join(rng.choice(list(ALPHANUMERIC), 7)) for _ in range(queries)]
    exact_reads = [listed[i] if i % 2 else unlisted[i] for i in range(queries)]
    misreads = [misread(vrm, rng) for vrm in listed]

    exact_ns = []
    for read in exact_reads:
        started_ns = time.perf_counter_ns()
        hotlist.exact_matches(read, at)
        exact_ns.append(time.perf_counter_ns() - started_ns)
    fuzzy_ns, found, fuzzy_hits = [], 0, 0
    for read, vrm in zip(misreads, listed, strict=True):
        started_ns = time.perf_counter_ns()
        matches = hotlist.misread_matches(read, 1, at)
        fuzzy_ns.append(time.perf_counter_ns() - started_ns)
        found += any(hotlist.vrm(n) == vrm for n, _ in matches) or read == vrm
        fuzzy_hits += len(matches)
    match_ns = []
    for read in unlisted:
        started_ns = time.perf_counter_ns()
        hotlist.match(read, at=at)
        match_ns.append(time.perf_counter_ns() - started_ns)

    unlisted_misread_hit_share = {
        f"max_distance_{distance}": round(
            chance_misread_share(hotlist, distance, None, samples=queries, at=at), 5
        )
        for distance in (0, 1)
    }

    exact_p50, exact_p99 = _percentiles(exact_ns)
    fuzzy_p50, fuzzy_p99 = _percentiles(fuzzy_ns)
    match_p50, match_p99 = _percentiles(match_ns)
    return {
        "entries": len(hotlist),
        "load_s": round(load_s, 2),
        "load_cpu_s": round(load_cpu_s, 2),
        "load_system_s": round(load_system_s, 2),
        "rss_mb": round(rss_mb),
        "exact_ns_p50": exact_p50,
        "exact_ns_p99": exact_p99,
        "fuzzy_ns_p50": fuzzy_p50,
        "fuzzy_ns_p99": fuzzy_p99,
        "peak_rss_mb": round(peak_rss_mb),
        "index_mb": round(hotlist.index_bytes / 1e6),
        "csv_mb": round(csv_mb),
        "generate_s": round(generate_s, 2),
        "match_miss_ns_p50": match_p50,
        "match_miss_ns_p99": match_p99,
        "fuzzy_found": round(found / queries, 4),
        "fuzzy_hits_mean": round(fuzzy_hits / queries, 2),
        "unlisted_misread_hit_share": unlisted_misread_hit_share,
        "queries": queries,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    result = run(args.entries, args.queries, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Possible-misread hits with the reader's doubt: wanted vehicles still found, and false hits.

    python -m benchmarks.misread_hits [--plates 2000] [--entries 10000 1000000 ...] [--json]

Rendered UK plates (degraded as the reader's training data, from a seed training never uses)
and, when `../shared/data` is there, the held-out real crops, are read as the daemon reads a
pass read once: three views fused (`OnnxReader.read_views`), then `edge.track.fuse_reads` of
that one read. Each read is matched as the daemon matches (`hotlists.max_distance`), with and
without `plausible_misreads` (`hotlists.misread_doubt_below`, off by default; measured here at
`--doubt-below`, 0.999 unless given):

- own: every plate's registration on one list; of the plates read wrong, how many still hit
  their own entry as a possible misread (the wanted vehicle found although misread).
- random lists: N fictitious entries (`benchmarks.hotlist`, current style) that name none of
  the plates, for each N given; the share of reads with a possible-misread hit on one of them
  (a false alert for a vehicle nobody wants).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.hotlist import write_fictitious_list
from benchmarks.read_eval import hotlist_of
from benchmarks.synthetic.render import random_uk_vrm
from edge.config import HotlistConfig
from edge.hotlist import Hotlist, load_hotlists, plausible_misreads
from edge.hotlist.matching import misread_counts
from edge.read import DEFAULT_MODEL, OnnxReader
from edge.track import fuse_reads
from edge.types import PlateRead
from models.build.eval_reader import REAL_MARGINS, synthetic_views
from models.build.reader_data import (
    augmented_crop,
    crop_box,
    load_real_plates,
    on_background,
    render_uk_plate,
)

SEED = 11
"""Not a training seed (those are 1-19) nor eval_reader's (2026)."""
LIST_SEED = 911
"""The random lists' own stream, independent of the plates'."""


def one_read_passes(
    reader: OnnxReader, views: Sequence[Sequence[np.ndarray]]
) -> list[PlateRead | None]:
    passes = []
    for crops in views:
        read = reader.read_views(crops)
        passes.append(fuse_reads([read]) if read is not None else None)
    return passes


def _hits(hotlist: Hotlist, read: PlateRead, max_distance: int, doubt_below: float | None):
    hits = hotlist.match(read.text, max_distance=max_distance)
    return plausible_misreads(hits, read, doubt_below)


def own_entries(
    truths: Sequence[str], reads: Sequence[PlateRead | None], config: HotlistConfig
) -> dict:
    """Of the plates read wrong, how many hit their own entry as a possible misread."""
    hotlist = hotlist_of(truths, "misread_hits")
    counts = {"plates": len(truths), "read_exactly": 0, "read_wrong": 0}
    found = {"found_as_possible_misread": 0, "found_with_doubt": 0}
    for truth, read in zip(truths, reads, strict=True):
        if read is not None and read.text == truth:
            counts["read_exactly"] += 1
            continue
        counts["read_wrong"] += 1
        if read is None:
            continue
        for key, doubt_below in (
            ("found_as_possible_misread", None),
            ("found_with_doubt", config.misread_doubt_below),
        ):
            hits = _hits(hotlist, read, config.max_distance, doubt_below)
            found[key] += any(h.entry.vrm == truth for h in hits)
    return counts | found


def false_hits(reads: Sequence[PlateRead | None], entries: int, config: HotlistConfig) -> dict:
    """The share of reads with a possible-misread hit on a list that names none of them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.csv"
        write_fictitious_list(path, entries, seed=LIST_SEED)
        hotlist = load_hotlists([path])
    read = [r for r in reads if r is not None]
    shares: dict[str, float | None] = {}
    unlisted = 0
    for key, doubt_below in (
        ("share_with_false_hit", None),
        ("share_with_false_hit_with_doubt", config.misread_doubt_below),
    ):
        flagged, unlisted = misread_counts(hotlist, read, config.max_distance, doubt_below)
        shares[key] = round(flagged / unlisted, 5) if unlisted else None
    return {"entries": len(hotlist), "reads": unlisted} | shares


def run(
    plates: int,
    entries: Sequence[int],
    doubt_below: float = 0.999,
    model: Path = DEFAULT_MODEL,
) -> dict:
    config = HotlistConfig(misread_doubt_below=doubt_below)
    reader = OnnxReader(model)
    rng = np.random.default_rng(SEED)
    rendered = [
        on_background(render_uk_plate(rng, random_uk_vrm(rng)), rng, []) for _ in range(plates)
    ]
    synthetic = one_read_passes(
        reader, [synthetic_views(augmented_crop(p, rng, 1.0)) for p in rendered]
    )
    report = {
        "max_distance": config.max_distance,
        "misread_doubt_below": config.misread_doubt_below,
        "synthetic_uk": own_entries([p.text for p in rendered], synthetic, config),
        "synthetic_uk_against_random_lists": [false_hits(synthetic, n, config) for n in entries],
    }
    held_out = load_real_plates(held_out=True)
    if held_out:
        real = one_read_passes(reader, [[crop_box(p, m) for m in REAL_MARGINS] for p in held_out])
        report["held_out_real_crops"] = own_entries([p.text for p in held_out], real, config)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=2000, help="Rendered UK plates to read.")
    parser.add_argument(
        "--entries",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000, 10_000_000],
        help="Random list sizes.",
    )
    parser.add_argument(
        "--doubt-below", type=float, default=0.999, help="hotlists.misread_doubt_below to measure."
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    report = run(args.plates, args.entries, args.doubt_below)
    if args.json:
        print(json.dumps(report))
        return 0
    for name, figures in report.items():
        print(f"{name}: {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A benchmark footage set of several synthetic clips, by day and at night, with one hotlist.

    python -m benchmarks.synthetic.suite OUT_DIR [--day 2] [--night 1] [--seconds 30]
        [--vehicles 12] [--seed 100] [--width 1280 --height 720]

Clip `day-1` uses seed SEED, `day-2` SEED+1, ..., then the night clips; each clip's last
vehicle is left off the hotlist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.synthetic.footage import FootageOptions, write_clip, write_hotlist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.synthetic.suite",
        description="Render a multi-clip synthetic footage set (day and night) with a hotlist.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--day", type=int, default=2, help="Daylight clips.")
    parser.add_argument("--night", type=int, default=1, help="Night clips.")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--vehicles", type=int, default=12, help="Vehicle passes per clip.")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args(argv)
    if args.day < 0 or args.night < 0 or args.day + args.night == 0:
        parser.error("--day and --night must not be negative, and at least one clip is needed")
    plan = [("day", i, False) for i in range(args.day)] + [
        ("night", i, True) for i in range(args.night)
    ]
    truths = []
    for offset, (light, number, night) in enumerate(plan):
        options = FootageOptions(
            seconds=args.seconds,
            vehicles=args.vehicles,
            width=args.width,
            height=args.height,
            night=night,
            seed=args.seed + offset,
        )
        truths.append(write_clip(args.out_dir, f"{light}-{number + 1}", options))
    write_hotlist(args.out_dir / "hotlist.csv", truths)
    passes = sum(len(t.passes) for t in truths)
    print(f"{args.out_dir}: {len(truths)} clips, {passes} vehicle passes, hotlist.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay one clip through the daemon and print each plate track's life: when it started, which
crops were read and what they read, and what was emitted or suppressed, and why.

    python -m benchmarks.trace CLIP.mp4 [--config OVERLAY.yaml] [--realtime] [TEXT ...]

With TEXT, only the tracks whose trace mentions one of them (a read, an emitted text) are
printed. This is how a tracker miss is debugged: a pass read wrong or emitted late shows which
crops were read, how sharp each was, and what settled the track. The records are the tracker's
own debug log (`edge.track`, with `track_id` and `camera_id` fields); the daemon logs them too
with `logging.level: DEBUG`.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import tempfile
from pathlib import Path

from benchmarks.throughput import build_config
from edge.config import ConfigError
from edge.hotlist import HotlistError
from edge.pipeline import Pipeline


class TrackTrace(logging.Handler):
    """Collects the tracker's per-track debug records, by (camera, track)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: dict[tuple[str, int], list[str]] = collections.defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        track_id = getattr(record, "track_id", None)
        if track_id is not None:
            self.events[(record.camera_id, track_id)].append(record.getMessage())


def trace(clip: Path, overlay: Path | None, realtime: bool) -> TrackTrace:
    """Run the clip through the daemon (its defaults, with `overlay`'s sections merged in) and
    return the tracker's records."""
    handler = TrackTrace()
    tracker_log = logging.getLogger("edge.track")
    level, propagate = tracker_log.level, tracker_log.propagate
    tracker_log.addHandler(handler)
    tracker_log.setLevel(logging.DEBUG)
    tracker_log.propagate = False
    try:
        with tempfile.TemporaryDirectory() as state:
            config = build_config(clip.resolve(), None, realtime, Path(state), overlay)
            Pipeline(config).run()
    finally:
        tracker_log.removeHandler(handler)
        tracker_log.setLevel(level)
        tracker_log.propagate = propagate
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="A video file (e.g. benchmarks/footage/demo.mp4).")
    parser.add_argument("texts", nargs="*", help="Print only the tracks that mention these.")
    parser.add_argument(
        "--config",
        type=Path,
        help="Config sections merged into the defaults (as benchmarks/configs/*.yaml).",
    )
    parser.add_argument("--realtime", action="store_true", help="Pace the clip as live video.")
    args = parser.parse_intermixed_args(argv)
    if not args.clip.is_file():
        parser.error(f"{args.clip}: no such video file")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = trace(args.clip, args.config, args.realtime)
    except (ConfigError, HotlistError) as error:
        print(f"benchmarks.trace: {error}", file=sys.stderr)
        return 2
    wanted = [text.upper() for text in args.texts]
    for (camera_id, track_id), events in result.events.items():
        if wanted and not any(text in event for event in events for text in wanted):
            continue
        print(f"camera {camera_id} track {track_id}")
        for event in events:
            print("   ", event.removeprefix(f"camera {camera_id}: track {track_id}: "))
    return 0


if __name__ == "__main__":
    sys.exit(main())

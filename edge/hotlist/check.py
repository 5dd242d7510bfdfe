"""`anpr-edge hotlist check FILE...`: validate hotlist files and summarise them."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.hotlist.csvfile import MARKER_BITS, ParsedFile, days, decode_row, from_days
from edge.hotlist.matching import (
    CHANCE_SAMPLES,
    Hotlist,
    HotlistError,
    chance_misread_share,
    loading_threads,
    parse_files,
)

EXPIRING_SOON_DAYS = 7
_EXAMPLES = 5


def check_files(paths: Sequence[Path], *, today: dt.date | None = None) -> int:
    """Print a summary to stdout and return 0, or print the problems to stderr and return 1.

    Stricter than the daemon's loader: an entry already past its expiry date is an error here
    (the list needs updating), while the daemon skips such entries with a warning.
    """
    today = today or dt.date.today()
    with loading_threads() as executor:
        try:
            files = parse_files(paths, today, expired_is_error=True, executor=executor)
        except HotlistError as error:
            print(error, file=sys.stderr)
            print(f"{_counted(error.total, 'problem')}: rejected, nothing loaded", file=sys.stderr)
            return 1
        for parsed in files:
            print(_summary(parsed, today))
        codes = np.concatenate([parsed.codes for parsed in files] or [np.zeros(0, np.int64)])
        _, counts = np.unique(codes, return_counts=True)
        shared = int(np.count_nonzero(counts > 1))
        print(
            f"total: {_counted(len(codes), 'entry', 'entries')}, "
            f"{_counted(len(counts), 'distinct VRM')} in {_counted(len(files), 'file')}"
            + (
                f"; {_counted(shared, 'VRM has', 'VRMs have')} several entries "
                "(all are reported, markers merge)"
                if shared
                else ""
            )
        )
        for parsed in files:
            parsed.release_checks()
        hotlist = Hotlist(files, executor)
    print(_chance_misreads(hotlist, today))
    return 0


def _counted(count: int, one: str, several: str | None = None) -> str:
    """'1 problem', '2 problems'."""
    return f"{count} {one if count == 1 else several or one + 's'}"


def _chance_misreads(hotlist: Hotlist, today: dt.date) -> str:
    one, none = (
        chance_misread_share(hotlist, max_distance, None, at=today) for max_distance in (1, 0)
    )
    return (
        "possible misreads by chance: of passing vehicles not on these lists, read exactly, "
        f"{one:.1%} would hit an entry as a possible misread with hotlists.max_distance 1, "
        f"{none:.1%} with 0 (estimated on {CHANCE_SAMPLES} random registrations; "
        "hotlists.misread_doubt_below trades some of them for wanted vehicles misread: "
        "README.md, 'Possible misreads on big lists')"
    )


def _summary(parsed: ParsedFile, today: dt.date) -> str:
    per_marker = ", ".join(
        f"{marker} {np.count_nonzero(parsed.markers & bit)}" for marker, bit in MARKER_BITS.items()
    )
    several = int(np.count_nonzero(np.bitwise_count(parsed.markers) > 1))
    entries = _counted(len(parsed), "entry", "entries")
    lines = [f"{parsed.path}: {entries} ({per_marker}; {several} with several markers)"]
    soon = np.flatnonzero(parsed.expires <= days(today) + EXPIRING_SOON_DAYS)
    if len(soon):
        lines.append(
            f"  {_counted(len(soon), 'expires', 'expire')} within {EXPIRING_SOON_DAYS} days:"
        )
        for row in soon[:_EXAMPLES].tolist():
            entry_id = decode_row(parsed.data, int(parsed.row_start[row]))[0]
            lines.append(
                f"    line {parsed.lines[row]}: {entry_id} expires {from_days(parsed.expires[row])}"
            )
        if len(soon) > _EXAMPLES:
            lines.append(f"    ... and {len(soon) - _EXAMPLES} more")
    return "\n".join(lines)

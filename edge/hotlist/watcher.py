"""Hot reload: the daemon picks up changed hotlist files without a restart or a gap in matching."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from edge.hotlist.matching import Hotlist, HotlistError, chance_misread_share, load_hotlists

logger = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int] | None, ...]
"""Per file: (inode, size, mtime in ns), or None while the file is missing."""
CHANCE_MISREAD_WARNING = 0.01
"""A list on which at least this share of passing vehicles nobody wants would be reported as a
possible misread of an entry is loaded with a warning."""
RELOAD_NICENESS = 10
"""Scheduling niceness of background reloads (Linux): a reload uses every core for a while, and
the live pipeline must keep priority over it."""


def _signature(paths: Sequence[Path]) -> Signature:
    signature = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            signature.append(None)
        else:
            signature.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


class HotlistWatcher:
    """Keeps `current` up to date with the files; a bad new version is logged and not used.

    A new list is built completely beside the old one, then swapped in with one assignment, so
    every match sees either the old list or the new one, never a partial or empty one.
    Replace files atomically (write a temporary file, then rename it over the old one); a file
    written in place is loaded once it has stopped changing for one polling interval.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        interval_s: float,
        *,
        max_distance: int = 1,
        misread_doubt_below: float | None = None,
    ):
        self.paths = [Path(path) for path in paths]
        self.interval_s = interval_s
        self.max_distance = max_distance
        self.misread_doubt_below = misread_doubt_below
        self._loaded = _signature(self.paths)
        self._current = load_hotlists(self.paths)
        self._seen = self._loaded
        self._stopping = threading.Event()
        self._reloading = threading.Lock()
        self._thread: threading.Thread | None = None
        self._log_loaded("loaded")

    @property
    def current(self) -> Hotlist:
        return self._current

    def start(self) -> None:
        if self._thread is None and self.paths:
            self._thread = threading.Thread(target=self._run, name="hotlist-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def reload_now(self) -> bool:
        """Load the files if they changed since the last attempt; True when a new list is active."""
        with self._reloading:
            signature = _signature(self.paths)
            if signature == self._loaded:
                return False
            self._loaded = signature
            try:
                hotlist = load_hotlists(self.paths)
            except HotlistError as error:
                logger.error("hotlist reload rejected, still using the previous list:\n%s", error)
                return False
            self._current = hotlist
            self._log_loaded("reloaded")
            return True

    def _run(self) -> None:
        if sys.platform.startswith("linux"):
            # Per thread on Linux, and inherited by the loading threads this one starts.
            thread = threading.get_native_id()
            # Never raises the priority of a daemon that was started niced already.
            niceness = max(os.getpriority(os.PRIO_PROCESS, thread), RELOAD_NICENESS)
            os.setpriority(os.PRIO_PROCESS, thread, niceness)
        while not self._stopping.wait(self.interval_s):
            signature = _signature(self.paths)
            settled = signature == self._seen
            self._seen = signature
            if settled:
                try:
                    self.reload_now()
                except Exception:
                    logger.exception("hotlist reload failed, still using the previous list")

    def _log_loaded(self, verb: str) -> None:
        counts = self._current.marker_counts()
        logger.info(
            "hotlist %s: %d entries from %d files (%s)",
            verb,
            len(self._current),
            len(self.paths),
            ", ".join(f"{marker} {count}" for marker, count in counts.items()),
        )
        chance = chance_misread_share(self._current, self.max_distance, self.misread_doubt_below)
        if chance >= CHANCE_MISREAD_WARNING:
            logger.warning(
                "hotlist of %d entries: about %.0f%% of passing vehicles not on it would still "
                "be reported as a possible misread of an entry (estimated on random "
                "registrations; real traffic crowds more). hotlists.misread_doubt_below or "
                "max_distance 0 reduce that: README.md, 'Possible misreads on big lists'",
                len(self._current),
                100 * chance,
            )

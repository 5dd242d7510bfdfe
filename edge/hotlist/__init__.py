"""The hotlist stage: hotlist files (hotlists/SCHEMA.md), validation, matching and hot reload.

- `csvfile`: reading and checking one CSV file into compact columns.
- `index`: constant-time key lookup and the misread (confusion class) keys.
- `matching`: `Hotlist`, `load_hotlists`, `alerting_hits`, `plausible_misreads`, `RepeatAlerts`.
- `watcher`: `HotlistWatcher`, live reload for the daemon.
- `check`: `anpr-edge hotlist check`.
"""

from edge.hotlist.check import check_files
from edge.hotlist.csvfile import Problem
from edge.hotlist.matching import (
    Hotlist,
    HotlistError,
    RepeatAlerts,
    alerting_hits,
    load_hotlists,
    plausible_misreads,
)
from edge.hotlist.watcher import HotlistWatcher

__all__ = [
    "Hotlist",
    "HotlistError",
    "HotlistWatcher",
    "Problem",
    "RepeatAlerts",
    "alerting_hits",
    "check_files",
    "load_hotlists",
    "plausible_misreads",
]

"""The durable alert journal: every alert is committed here before it is sent.

SQLite in WAL mode. `alerts` holds each alert as sent, in publication order (`seq`): its JSON
header (`document`) and its evidence JPEGs (`plate_crop`, `overview`); `acks` records which
console has acknowledged which alert. What a console has not acknowledged is what it is sent
again when it says hello, oldest first.

Durability: with `synchronous=NORMAL` (the default) a committed alert survives the daemon being
killed (kill -9, crash): the WAL write has reached the operating system. Only an OS crash or power
cut can lose the last commits since a checkpoint. `synchronous=FULL` syncs the WAL to disk on
every commit too, so alerts also survive a power cut, at one disk flush per commit (a commit holds
every alert that was waiting for it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

_CHECKPOINT_INTERVAL_S = 1.0
_PAGE_BYTES = 16 * 1024
_CACHE_KIB = 16 * 1024
_ACK_CHUNK = 1000
"""Acknowledgements recorded per statement (SQLite allows 32766 parameters)."""

JOURNAL_FORMAT = 2
"""Kept in the file's `user_version`. Format 1 (alert format 1) held base64 images in `document`."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    document BLOB NOT NULL,
    plate_crop BLOB,
    overview BLOB
);
CREATE INDEX IF NOT EXISTS alerts_by_role ON alerts (role, seq);
-- Answers record_acks' lookups by id and role without reading the alert rows (images and all).
CREATE INDEX IF NOT EXISTS alerts_by_id_and_role ON alerts (alert_id, role);
CREATE TABLE IF NOT EXISTS acks (
    console TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES alerts (seq),
    acked_at REAL NOT NULL,
    PRIMARY KEY (console, seq)
) WITHOUT ROWID;
PRAGMA user_version = {JOURNAL_FORMAT};
"""


class JournalError(Exception):
    """The journal file cannot be opened or is not an alert journal."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert as it is journalled and sent."""

    alert_id: str
    role: str
    created_at: float
    document: bytes
    """The alert's header as sent on the wire: UTF-8 JSON."""
    plate_crop: bytes | None = None
    """JPEG, or None when the alert has no plate crop."""
    overview: bytes | None = None
    """JPEG, or None when the alert has no overview frame."""


_COLUMNS = "alert_id, role, created_at, document, plate_crop, overview"


class Journal:
    """Thread-safe: one connection, serialised by a lock (commits are short)."""

    def __init__(self, path: Path, synchronous: Literal["normal", "full"] = "normal"):
        # Plates, images and hotlist information: personal data, readable by its owner only
        # (SQLite gives the -wal and -shm files the database file's mode).
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Set on a new file only. An alert's images (about 27 KB) fill 2 pages, not 7: each page
            # is one WAL frame and two write() calls, so this cuts the insert's CPU by a fifth.
            self._db.execute(f"PRAGMA page_size={_PAGE_BYTES}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Checkpoints (which flush to disk) run on their own thread, not inside a commit.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            # Room for a whole commit of alerts with their images (up to 256 x ~30 KB), so SQLite
            # does not spill pages to the WAL mid-transaction and read them back.
            self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._create_or_check_schema()
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{path}: cannot open the alert journal: {error}") from None
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="journal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _create_or_check_schema(self) -> None:
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        alerts_table = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alerts'")
        if found == 0 and alerts_table.fetchone() is None:  # a new file
            self._db.executescript(f"BEGIN; {_SCHEMA} COMMIT;")
        elif found != JOURNAL_FORMAT:
            raise JournalError(
                f"{self.path}: journal format {found}, this daemon writes format {JOURNAL_FORMAT}: "
                "deliver or export its alerts with the daemon that wrote it, then move it aside"
            )

    def append(self, alerts: Sequence[AlertRecord]) -> list[int]:
        """Commit `alerts` in one transaction; returns their sequence numbers once durable.

        One INSERT statement for them all: its own transaction, and one call into SQLite, so the
        caller's thread gives up Python's GIL once per commit, not once per alert."""
        if not alerts:
            return []
        rows = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(alerts))
        values = [
            value
            for a in alerts
            for value in (a.alert_id, a.role, a.created_at, a.document, a.plate_crop, a.overview)
        ]
        with self._lock:
            last = self._db.execute(
                f"INSERT INTO alerts ({_COLUMNS}) VALUES {rows}", values
            ).lastrowid
        # A statement inserts its rows in order under the write lock: their seqs are consecutive.
        return list(range(last - len(alerts) + 1, last + 1))

    def unacked(
        self,
        console: str,
        roles: Iterable[str],
        *,
        after_seq: int,
        created_since: float,
        limit: int,
    ) -> list[tuple[int, AlertRecord]]:
        """(seq, alert) for `roles` after `after_seq` that `console` has not acknowledged, oldest
        first."""
        roles = sorted(roles)
        placeholders = ",".join("?" * len(roles))
        query = (
            f"SELECT seq, {_COLUMNS} FROM alerts "
            f"WHERE seq > ? AND role IN ({placeholders}) AND created_at >= ? "
            "AND NOT EXISTS (SELECT 1 FROM acks WHERE acks.console = ? AND acks.seq = alerts.seq) "
            "ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(
                query, (after_seq, *roles, created_since, console, limit)
            ).fetchall()
        return [(row[0], AlertRecord(*row[1:])) for row in rows]

    def record_acks(
        self, console: str, roles: Iterable[str], alert_ids: Sequence[str], acked_at: float
    ) -> int:
        """Record acknowledgements, one statement per _ACK_CHUNK ids; ids unknown or outside
        `roles` are ignored. Returns how many new acknowledgements were recorded.
        """
        roles = sorted(roles)
        recorded = 0
        for start in range(0, len(alert_ids), _ACK_CHUNK):
            chunk = alert_ids[start : start + _ACK_CHUNK]
            query = (
                "INSERT OR IGNORE INTO acks (console, seq, acked_at) SELECT ?, seq, ? FROM alerts "
                f"WHERE alert_id IN ({','.join('?' * len(chunk))}) "
                f"AND role IN ({','.join('?' * len(roles))})"
            )
            with self._lock:
                recorded += self._db.execute(query, (console, acked_at, *chunk, *roles)).rowcount
        return recorded

    def acked_by(self, console: str) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alerts.alert_id FROM acks JOIN alerts USING (seq) WHERE acks.console = ?",
                (console,),
            ).fetchall()
        return {row[0] for row in rows}

    def all_ids(self) -> list[str]:
        """Every journalled alert id, in publication order."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT alert_id FROM alerts ORDER BY seq")]

    def _checkpoints(self) -> None:
        """Copy committed WAL pages into the database file now and then, without blocking writers.

        Its own connection on its own thread: a publish never waits for the disk flushes."""
        checkpointer = sqlite3.connect(self.path, isolation_level=None)
        try:
            while not self._closing.wait(_CHECKPOINT_INTERVAL_S):
                checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:
            logger.error("%s: journal checkpoint failed: %s", self.path, error)
        finally:
            checkpointer.close()

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join()
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

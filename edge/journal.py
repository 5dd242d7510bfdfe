"""The durable alert journal: every alert is committed here before it is sent.

SQLite in WAL mode. `alerts` holds each alert's wire document in publication order (`seq`);
`acks` records which console has acknowledged which alert. What a console has not acknowledged
is what it is sent again when it says hello, oldest first.

Durability: with `synchronous=NORMAL` (the default) a committed alert survives the daemon being
killed (kill -9, crash): the WAL write has reached the operating system. Only an OS crash or power
cut can lose the last commits since a checkpoint. `synchronous=FULL` syncs the WAL to disk on
every commit too, so alerts also survive a power cut, at about one disk flush per alert.
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    document BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_role ON alerts (role, seq);
CREATE TABLE IF NOT EXISTS acks (
    console TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES alerts (seq),
    acked_at REAL NOT NULL,
    PRIMARY KEY (console, seq)
) WITHOUT ROWID;
"""


class JournalError(Exception):
    """The journal file cannot be opened or is not an alert journal."""


@dataclass(frozen=True, slots=True)
class JournalledAlert:
    seq: int
    alert_id: str
    role: str
    created_at: float
    document: bytes
    """The alert exactly as sent on the wire: UTF-8 JSON."""


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
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Checkpoints (which flush to disk) run from checkpoint(), not inside a publish.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{path}: cannot open the alert journal: {error}") from None
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="journal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def append(self, alert_id: str, role: str, created_at: float, document: bytes) -> int:
        """Commit one alert; returns its sequence number once it is durable."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO alerts (alert_id, role, created_at, document) VALUES (?, ?, ?, ?)",
                (alert_id, role, created_at, document),
            )
            return int(cursor.lastrowid)

    def unacked(
        self,
        console: str,
        roles: Iterable[str],
        *,
        after_seq: int,
        created_since: float,
        limit: int,
    ) -> list[JournalledAlert]:
        """Alerts for `roles` after `after_seq` that `console` has not acknowledged, oldest first."""
        roles = sorted(roles)
        placeholders = ",".join("?" * len(roles))
        query = (
            "SELECT seq, alert_id, role, created_at, document FROM alerts "
            f"WHERE seq > ? AND role IN ({placeholders}) AND created_at >= ? "
            "AND NOT EXISTS (SELECT 1 FROM acks WHERE acks.console = ? AND acks.seq = alerts.seq) "
            "ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(
                query, (after_seq, *roles, created_since, console, limit)
            ).fetchall()
        return [JournalledAlert(*row) for row in rows]

    def record_acks(
        self, console: str, roles: Iterable[str], alert_ids: Sequence[str], acked_at: float
    ) -> int:
        """Record acknowledgements in one transaction; ids unknown or outside `roles` are ignored.

        Returns how many new acknowledgements were recorded.
        """
        roles = sorted(roles)
        placeholders = ",".join("?" * len(roles))
        query = (
            "INSERT OR IGNORE INTO acks (console, seq, acked_at) "
            f"SELECT ?, seq, ? FROM alerts WHERE alert_id = ? AND role IN ({placeholders})"
        )
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    query, [(console, acked_at, alert_id, *roles) for alert_id in alert_ids]
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return self._db.total_changes - before

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

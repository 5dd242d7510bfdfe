"""The commanders' decision log: one JSON line per decision, hash-chained so tampering shows.

Each line carries the decision, the alert it answers, the time, the key name of the console, the
hash of the line before (`prev`; 64 zeros for the first) and its own `hash`: SHA-256 of the line's
other fields as canonical JSON (sorted keys, no spaces, UTF-8). Editing, deleting or reordering a
line breaks the chain at that line, and `verify_decision_log` names it. Cutting lines off the end
cannot be detected from the file alone: keep a copy of the last hash elsewhere (it is printed with
each decision) when that matters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

DECISIONS = ("stop", "no_stop", "follow", "observe", "other")
GENESIS = "0" * 64
MAX_NOTE_CHARS = 2000


class DecisionError(ValueError):
    """A decision that cannot be recorded (unknown choice, note too long)."""


def _digest(fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _last_hash(text: str, path: Path) -> tuple[int, str]:
    lines = text.splitlines()
    if not lines:
        return 0, GENESIS
    try:
        last = json.loads(lines[-1])
        return int(last["seq"]), str(last["hash"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise DecisionError(
            f"{path}: line {len(lines)}: not a decision record; the log is damaged, run "
            "verify_decision_log and keep the file as evidence"
        ) from None


def record_decision(
    log_path: Path,
    alert_id: str,
    decision: str,
    note: str,
    key_name: str,
    *,
    now: float | None = None,
) -> dict:
    """Append one decision (flushed to disk) and return the record written, hash included."""
    if decision not in DECISIONS:
        raise DecisionError(f"decision {decision!r}: choose one of {', '.join(DECISIONS)}")
    if len(note) > MAX_NOTE_CHARS:
        raise DecisionError(f"note: at most {MAX_NOTE_CHARS} characters")
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path, "a+", encoding="utf-8", errors="replace") as log:
        fcntl.flock(log, fcntl.LOCK_EX)  # consoles sharing a log append one at a time
        log.seek(0)
        seq, prev = _last_hash(log.read(), log_path)
        when = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
        fields = {
            "seq": seq + 1,
            "time": when.isoformat(timespec="milliseconds"),
            "alert_id": alert_id,
            "decision": decision,
            "note": note,
            "key_name": key_name,
            "prev": prev,
        }
        record = {**fields, "hash": _digest(fields)}
        log.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        log.flush()
        os.fsync(log.fileno())
    return record


def verify_decision_log(log_path: Path) -> list[str]:
    """Problems found in the chain, each naming its line; empty when the log is intact."""
    problems = []
    prev, expected_seq = GENESIS, 1
    # Bytes that are not UTF-8 are read as U+FFFD: the line is then reported, not the check halted.
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for number, line in enumerate(log, start=1):
            try:
                record = json.loads(line)
                fields = {k: v for k, v in record.items() if k != "hash"}
                stated = record["hash"]
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                problems.append(f"{log_path}: line {number}: not a decision record")
                continue
            if fields.get("prev") != prev:
                problems.append(f"{log_path}: line {number}: prev does not match the line before")
            if _digest(fields) != stated:
                problems.append(f"{log_path}: line {number}: hash does not match its content")
            if fields.get("seq") != expected_seq:
                problems.append(
                    f"{log_path}: line {number}: seq {fields.get('seq')}, expected {expected_seq}"
                )
            prev, expected_seq = stated, expected_seq + 1
    return problems


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.decisions LOG...`: check decision logs; exit 1 if any chain is broken."""
    parser = argparse.ArgumentParser(
        prog="python -m edge.decisions",
        description="Check that decision logs are intact (every line hash-chained to the last).",
    )
    parser.add_argument("logs", nargs="+", type=Path, metavar="DECISION_LOG")
    paths = parser.parse_args(argv).logs
    status = 0
    for path in paths:
        try:
            problems = verify_decision_log(path)
        except OSError as error:
            problems = [f"{path}: cannot read: {error.strerror}"]
        for problem in problems:
            print(problem)
        if problems:
            status = 1
        else:
            print(f"{path}: intact")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The commanders' console: `anpr-edge console --role tfc|tsg`, and the client it is built on.

`ConsoleClient` is the whole protocol seen from a console (tests, the demo and the benchmark use it
too): it says hello until the daemon answers, sends heartbeats, shows the link as down after 2.5
heartbeat intervals of silence, and de-duplicates alerts by id against a file of the ids it has
shown in its state folder, so an alert re-sent after a reconnect or a restart is acknowledged again but never
returned twice. An alert counts as seen once `ack()` is called, after it has been shown: `ack()`
records it at once, and the acknowledgements go to the daemon together, as one message, when no
more alerts are waiting to be read (or every MAX_ACK_BATCH alerts).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import select
import sys
import time
from collections import deque
from difflib import SequenceMatcher
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import zmq

from edge.alerts import (
    ALERT_FORMAT_VERSION,
    MAX_ACK_IDS,
    MessageError,
    dump_message,
    load_message,
)
from edge.config import EdgeConfig
from edge.decisions import DECISIONS, DecisionError, record_decision
from edge.keys import KeyFileError, load_public_key, load_secret_key, public_key_file_for
from edge.types import Role

logger = logging.getLogger(__name__)

LINK_DOWN_AFTER_BEATS = 2.5
MAX_ALERT_BYTES = 32 * 1024 * 1024
ALERT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""What this console accepts as an alert id (the daemon sends UUIDs)."""
MAX_ACK_BATCH = MAX_ACK_IDS // 2
"""Most alert ids in one ack message (well inside the daemon's limits on ids and bytes)."""


class ConsoleError(Exception):
    """A console that cannot start: unusable state folder or endpoint; the message names it."""


class _SeenAlerts:
    """Ids of the alerts this console has shown, kept across restarts.

    An append-only file, one id a line: each id is written by one write() the moment it is
    recorded, so a console killed at any point keeps every id it recorded (a write is cheap
    enough for thousands of alerts a second); the ids are also kept in memory for lookups.
    """

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # beside personal data
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as error:
            raise ConsoleError(f"{path}: cannot use the console's state file: {error}") from None
        self._ids = set(text.split())
        if text and not text.endswith("\n"):  # a line cut short by a power cut: end it
            os.write(self._fd, b"\n")

    def __contains__(self, alert_id: str) -> bool:
        return alert_id in self._ids

    def add(self, alert_id: str) -> None:
        """Record an id (one of ALERT_ID's) durably against the console being killed."""
        if alert_id not in self._ids:
            os.write(self._fd, f"{alert_id}\n".encode("ascii"))
            self._ids.add(alert_id)

    def close(self) -> None:
        os.close(self._fd)


class ConsoleClient:
    """A console's connection to the daemon: hello, heartbeats, acks, de-duplication, link state.

    Not thread-safe: use it from one thread. Pass both keys for CURVE, neither for an insecure
    daemon. `server_public_key` is the daemon's NAME.key file or its z85 key.
    """

    def __init__(
        self,
        endpoint: str,
        role: str,
        *,
        secret_key: Path | None,
        server_public_key: Path | bytes | None,
        state_dir: Path,
        heartbeat_s: float = 1.0,
    ):
        if (secret_key is None) != (server_public_key is None):
            raise KeyFileError(
                "CURVE needs both this console's secret key and the daemon's public key"
            )
        curve_keys = None
        if secret_key is not None:
            server = (
                server_public_key
                if isinstance(server_public_key, bytes)
                else load_public_key(server_public_key)
            )
            curve_keys = (*load_secret_key(secret_key), server)
        self.role = Role(role)
        self.heartbeat_s = heartbeat_s
        self.console_name: str | None = None
        """The name the daemon knows this console's key by, from its welcome."""
        self.link_up = False
        self._reported_up: bool | None = None
        """The link state last returned by receive(); None before the first."""
        self._seen = _SeenAlerts(state_dir / "seen.ids")
        self._events: deque[dict] = deque()
        self._returned: set[str] = set()
        """Alerts returned by receive() and not yet acknowledged."""
        self._acks_to_send: list[str] = []
        """Alerts recorded as seen whose ack has not yet gone to the daemon."""
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.IMMEDIATE, 1)  # no hellos queued up while disconnected
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_ALERT_BYTES)
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        # ZMTP heartbeats close a connection whose far end has silently gone (cable, power),
        # so the socket reconnects instead of queueing hellos into a dead link.
        self._socket.setsockopt(zmq.HEARTBEAT_IVL, int(heartbeat_s * 1000))
        self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(heartbeat_s * 3000))
        if curve_keys is not None:
            public, secret, server = curve_keys
            self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
            self._socket.curve_serverkey = server
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as error:
            self.close()
            raise ConsoleError(f"cannot connect to {endpoint!r}: {error}") from None
        self._last_heard = time.monotonic()
        self._next_send = 0.0

    def receive(self, timeout_s: float) -> dict | None:
        """The next event within `timeout_s`, or None: a new alert, a status message, or a link
        change (`{"type": "link", "up": bool, ...}`). Alerts already seen are re-acknowledged and
        skipped."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._keep_alive()
            if self._events:
                return self._events.popleft()
            try:
                self._take(self._socket.recv_multipart(zmq.NOBLOCK))
                continue
            except zmq.Again:
                self._send_acks()  # nothing more to read now: acknowledge what has been shown
            now = time.monotonic()
            if now >= deadline:
                return None
            self._socket.poll(int(min(deadline - now, self.heartbeat_s / 4) * 1000) + 1)

    def ack(self, alert_id: str) -> None:
        """Record the alert as shown; its acknowledgement follows (see the module docstring)."""
        self._seen.add(alert_id)
        self._returned.discard(alert_id)
        self._queue_ack(alert_id)

    def close(self) -> None:
        self._send_acks()
        self._socket.close()
        self._context.term()
        self._seen.close()

    def _queue_ack(self, alert_id: str) -> None:
        self._acks_to_send.append(alert_id)
        if len(self._acks_to_send) >= MAX_ACK_BATCH:
            self._send_acks()

    def _send_acks(self) -> None:
        if self._acks_to_send:
            self._send({"type": "ack", "ids": self._acks_to_send})
            self._acks_to_send = []

    def _send(self, message: dict) -> None:
        try:
            self._socket.send(dump_message(message), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected: the next hello starts over and the daemon replays what is unacked

    def _keep_alive(self) -> None:
        now = time.monotonic()
        silent = now - self._last_heard
        if self._reported_up is not False and silent > self.heartbeat_s * LINK_DOWN_AFTER_BEATS:
            self.link_up = self._reported_up = False
            self._events.append({"type": "link", "up": False, "silent_s": round(silent, 2)})
        if now >= self._next_send:
            if self.link_up:
                self._send({"type": "heartbeat", "version": ALERT_FORMAT_VERSION})
            else:
                self._send(
                    {"type": "hello", "version": ALERT_FORMAT_VERSION, "role": str(self.role)}
                )
            self._next_send = now + self.heartbeat_s

    def _take(self, frames: list[bytes]) -> None:
        try:
            message = load_message(frames[0])
            kind = message["type"]
        except (MessageError, KeyError, TypeError):
            logger.warning("console: ignored a message from the daemon that is not a JSON object")
            return
        self._last_heard = time.monotonic()
        if kind == "welcome":
            self.console_name = message.get("console")
            self.heartbeat_s = float(message.get("heartbeat_s", self.heartbeat_s))
            self.link_up = self._reported_up = True
            self._events.append(
                {
                    "type": "link",
                    "up": True,
                    "console": self.console_name,
                    "receives": message.get("receives"),
                }
            )
        elif kind == "alert":
            self._take_alert(message, frames)
        elif kind == "status":
            self._events.append(message)

    def _take_alert(self, alert: dict, frames: list[bytes]) -> None:
        alert_id = alert.get("alert_id")
        if not isinstance(alert_id, str) or not ALERT_ID.fullmatch(alert_id):
            logger.warning("console: ignored an alert without a valid alert_id")
            return
        if self.role == Role.TSG and alert.get("role") != Role.TSG:
            logger.error("console: a %r alert reached a tsg console; not shown", alert.get("role"))
            return
        if alert_id in self._returned:
            return  # re-sent while the caller is still showing it: its ack will follow
        if alert_id in self._seen:
            self._queue_ack(alert_id)
            return
        self._returned.add(alert_id)
        self._events.append(_with_image_data(alert, frames))


def _with_image_data(alert: dict, frames: list[bytes]) -> dict:
    """The alert header, each evidence image's `frame` number replaced by its JPEG (`data`)."""
    evidence = alert.get("evidence")
    for name, image in evidence.items() if isinstance(evidence, dict) else ():
        if not isinstance(image, dict):
            continue
        frame = image.pop("frame", None)
        if isinstance(frame, int) and 0 < frame < len(frames):
            image["data"] = frames[frame]
        else:
            logger.warning(
                "console: alert %s: its %s is not in the message (frame %r of %d)",
                alert.get("alert_id"),
                name,
                frame,
                len(frames),
            )
    return alert


# --- `anpr-edge console` ---


def _save_evidence(alert: dict, directory: Path) -> dict[str, str]:
    """Write the alert's JPEGs to files; returns {"plate_crop": path, "overview": path}."""
    paths = {}
    for name, image in (alert.get("evidence") or {}).items():
        if not isinstance(image, dict) or not isinstance(image.get("data"), bytes):
            continue
        path = directory / f"{alert['alert_id']}-{name}.jpg"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image["data"])
        except OSError as error:
            logger.error(
                "console: could not save the %s of alert %s: %s", name, alert["alert_id"], error
            )
            continue
        paths[name] = str(path)
    return paths


def without_image_data(alert: dict, paths: dict[str, str]) -> dict:
    """The alert as printed by `--json`: each evidence image's JPEG data replaced by its file."""
    evidence = {}
    for name, image in (alert.get("evidence") or {}).items():
        if isinstance(image, dict):
            image = {k: v for k, v in image.items() if k != "data"}
            image["path"] = paths.get(name)
        evidence[name] = image
    return {**alert, "evidence": evidence}


def _local_time(timestamp: object) -> str:
    if not isinstance(timestamp, (int, float)):
        return "unknown"
    local = dt.datetime.fromtimestamp(timestamp).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 100_000} {local:%Z}"


def _age(timestamp: object) -> str:
    if not isinstance(timestamp, (int, float)):
        return ""
    return f"  ({max(0.0, time.time() - timestamp):.1f} s ago)"


def misread_differences(read: dict, matched_text: str, vrm: str) -> str:
    """Where a possible misread differs from the entry's VRM, character by character, with how
    sure the reader was of each character it read there (when the hit is on the read itself,
    not an alternative): 'character 7 read F (0.62 sure), entry E'. Characters are counted
    from 1 along the text that hit."""
    confidences = read.get("char_confidences") or []
    on_the_read = matched_text == read.get("text")
    with_confidence = on_the_read and len(confidences) == len(matched_text)
    parts = []
    opcodes = SequenceMatcher(None, matched_text, vrm, autojunk=False).get_opcodes()
    for operation, i1, i2, j1, j2 in opcodes:
        if operation == "equal":
            continue
        seen, wanted = matched_text[i1:i2], vrm[j1:j2]
        sure = (
            " (" + "/".join(f"{c:.2f}" for c in confidences[i1:i2]) + " sure)"
            if seen and with_confidence
            else ""
        )
        where = f"character {i1 + 1}" if i2 - i1 <= 1 else f"characters {i1 + 1}-{i2}"
        if operation == "replace":
            parts.append(f"{where} read {seen}{sure}, entry {wanted}")
        elif operation == "delete":
            parts.append(f"{where} read {seen}{sure}, not in the entry")
        else:
            place = f"before character {i1 + 1}" if i1 < len(matched_text) else "at the end"
            parts.append(f"entry's {wanted} {place} not read")
    if on_the_read:
        return "; ".join(parts)
    return f"alternative reading {matched_text}" + (
        ": " + "; ".join(parts) if parts else " spells it"
    )


def _listed_texts(alternatives: object) -> str:
    """'TEXT 0.12, TEXT 0.05' for an alert's list of alternatives ('' when none or malformed)."""
    if not isinstance(alternatives, list):
        return ""
    return ", ".join(
        f"{a.get('text')} {a.get('confidence', 0):.2f}" for a in alternatives if isinstance(a, dict)
    )


def _laid_out(alert: dict, number: int, paths: dict[str, str]) -> str:
    """`format_alert`'s block or, for an alert whose fields it cannot lay out (a later format
    version, a damaged field), a banner and the whole header as sent: an alert is never lost
    to its layout."""
    try:
        return format_alert(alert, number, paths)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        logger.warning(
            "console: alert %s could not be laid out (%s: %s); shown as sent",
            alert.get("alert_id"),
            type(error).__name__,
            error,
        )
        header = json.dumps(without_image_data(alert, paths), indent=2, default=str)
        return (
            f"\n=== ALERT [{number}]  id {alert.get('alert_id')}: shown as sent, its fields could "
            f"not be laid out ===\n{header}"
        )


def format_alert(alert: dict, number: int, paths: dict[str, str]) -> str:
    """A readable block for a terminal."""
    read = alert.get("read") or {}
    markers = ", ".join(alert.get("markers") or []).upper()
    lines = [
        "",
        (
            f"=== ALERT [{number}]  {markers}  -> {str(alert.get('role', '?')).upper()}  "
            f"id {alert.get('alert_id')} ==="
        ),
    ]
    if alert.get("version") != ALERT_FORMAT_VERSION:
        lines.append(
            f"  (alert format version {alert.get('version')!r}: some fields may be missing)"
        )
    if alert.get("possible_misread"):
        lines.append(
            "  !! POSSIBLE MISREAD: the read is close to, not equal to, the hotlist VRM !!"
        )
    alternatives = _listed_texts(read.get("alternatives"))
    reader_alternatives = _listed_texts(read.get("reader_alternatives"))
    per_char = " ".join(f"{c:.2f}" for c in read.get("char_confidences") or [])
    lines += [
        f"  Plate read    {read.get('text')}   confidence {read.get('confidence', 0):.2f}",
        f"  Per character {per_char}",
        f"  Alternatives  {alternatives or 'none'}",
    ]
    if reader_alternatives:
        lines.append(f"  Reader also   {reader_alternatives}  (shown only, not matched)")
    for hit in alert.get("hits") or []:
        entry = hit.get("entry") or {}
        kind = (
            "EXACT"
            if hit.get("kind") == "exact"
            else f"POSSIBLE MISREAD, distance {hit.get('distance')}"
        )
        lines += [
            f"  Hotlist       {entry.get('vrm')} [{kind}] markers {', '.join(entry.get('markers') or [])}",
        ]
        if hit.get("kind") != "exact" and entry.get("vrm") and hit.get("matched_text"):
            differences = misread_differences(read, hit["matched_text"], entry["vrm"])
            lines.append(f"    Differs     {differences}")
        lines += [
            f"    Action      {entry.get('action')}",
            f"    Information {entry.get('information')}",
            (
                f"    Entry       {entry.get('entry_id')} from {entry.get('source')} "
                f"({entry.get('list_name') or 'list'}, expires {entry.get('expires')})"
            ),
        ]
    lines += [
        (
            f"  Camera        {alert.get('camera_id')}   direction {alert.get('direction') or 'unknown'}"
            f"   track {alert.get('track_id')}"
        ),
        f"  Captured      {_local_time(alert.get('captured_at'))}{_age(alert.get('captured_at'))}",
        f"  Plate crop    {paths.get('plate_crop', 'none')}",
        f"  Overview      {paths.get('overview', 'none')}",
        f"  Decide: type '{number} <{'|'.join(DECISIONS)}> [note]' and Enter",
    ]
    return "\n".join(lines)


def format_status(message: dict) -> str:
    status = message.get("status")
    if not isinstance(status, dict):
        return f"[status] {status}"
    details = ", ".join(f"{k} {v}" for k, v in status.items() if k != "type")
    return f"[status {status.get('type', '')}] {details}"


def format_link(event: dict, role: str, ever_up: bool) -> str:
    if event["up"]:
        receives = ", ".join(event.get("receives") or [])
        return f"--- link to vehicle UP (console {event.get('console')}, receives {receives}) ---"
    if ever_up:
        return f"*** LINK TO VEHICLE DOWN: nothing heard for {event['silent_s']} s ***"
    return (
        "*** NO ANSWER FROM THE VEHICLE: daemon down or unreachable, or this key is not "
        f"enrolled as {role} (the daemon's log says which) ***"
    )


def _connect_endpoint(bind: str) -> str:
    """Where a console on this machine reaches a daemon bound to `bind` (wildcards -> localhost)."""
    parts = urlsplit(bind)
    if parts.hostname in ("*", "0.0.0.0") and parts.port is not None:
        return f"{parts.scheme}://127.0.0.1:{parts.port}"
    return bind


class DecisionPrompt:
    """Reads `<number> <decision> [note]` lines from the commander and logs them."""

    def __init__(self, log_path: Path, out: TextIO):
        self.log_path = log_path
        self.out = out
        self.alert_ids: dict[int, str] = {}

    def handle(self, line: str, key_name: str) -> None:
        parts = line.strip().split(maxsplit=2)
        if not parts:
            return
        try:
            alert_id = self.alert_ids[int(parts[0])]
            record = record_decision(
                self.log_path, alert_id, parts[1], parts[2] if len(parts) > 2 else "", key_name
            )
        except (ValueError, KeyError, IndexError, OSError) as error:
            known = isinstance(error, (DecisionError, OSError))
            reason = error if known else "unknown alert number or no decision"
            print(
                f"  not recorded: {reason}; type '<alert number> <{'|'.join(DECISIONS)}> [note]'",
                file=self.out,
            )
            return
        print(
            f"  decision {record['decision']} on [{parts[0]}] logged, hash {record['hash'][:16]}",
            file=self.out,
        )


def run_console(
    config: EdgeConfig,
    *,
    role: str,
    as_json: bool,
    secret_key: Path | None,
    endpoint: str | None,
    max_alerts: int | None,
    max_seconds: float | None,
    out: TextIO = sys.stdout,
) -> int:
    """`anpr-edge console`: show alerts as they arrive; record decisions typed at a terminal."""
    alerts = config.alerts
    state_dir = alerts.evidence_dir / role
    if alerts.insecure:
        keys: dict = {"secret_key": None, "server_public_key": None}
    elif secret_key is None:
        print(
            "anpr-edge console: --key is required (this console's .key_secret file)",
            file=sys.stderr,
        )
        return 2
    else:
        keys = {
            "secret_key": secret_key,
            "server_public_key": public_key_file_for(alerts.server_secret_key),
        }
    try:
        client = ConsoleClient(
            endpoint or _connect_endpoint(alerts.bind),
            role,
            state_dir=state_dir,
            heartbeat_s=alerts.heartbeat_s,
            **keys,
        )
    except (KeyFileError, ConsoleError) as error:
        print(f"anpr-edge console: {error}", file=sys.stderr)
        return 2
    interactive = not as_json and sys.stdin.isatty()
    decisions = DecisionPrompt(state_dir / "decisions.jsonl", out)
    shown = 0
    ever_up = False
    started = time.monotonic()

    def emit(text: str) -> None:
        print(text, file=out, flush=True)

    if not as_json:
        emit(f"console {role}: connecting to the vehicle, state in {state_dir}")
    try:
        while max_alerts is None or shown < max_alerts:
            remaining = None if max_seconds is None else max_seconds - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                break
            event = client.receive(0.2 if remaining is None else min(0.2, remaining))
            if interactive and select.select([sys.stdin], [], [], 0)[0]:
                # The daemon's name for this key once it has said welcome; until then the file's.
                key_name = client.console_name or (secret_key.stem if secret_key else "insecure")
                decisions.handle(sys.stdin.readline(), key_name)
            if event is None:
                continue
            kind = event.get("type")
            if kind == "alert":
                shown += 1
                paths = _save_evidence(event, state_dir / "images")
                if as_json:
                    emit(json.dumps(without_image_data(event, paths)))
                else:
                    emit(_laid_out(event, shown, paths))
                decisions.alert_ids[shown] = event["alert_id"]
                client.ack(event["alert_id"])
            elif kind == "status":
                emit(json.dumps(event) if as_json else format_status(event))
            elif kind == "link":
                emit(json.dumps(event) if as_json else format_link(event, role, ever_up))
                ever_up = ever_up or event["up"]
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0

"""Alert delivery to the commanders: versioned JSON alerts over CURVE-secured ZeroMQ, journalled first.

The daemon binds one ROUTER socket (CURVE server). Consoles connect DEALER sockets (CURVE
clients) with their own key pair. A ZAP handler admits only public keys enrolled in the config and
stamps each message with the console's enrolled name (ZeroMQ "User-Id"), from which the daemon takes
the console's role: what a client claims about itself never widens what it receives.

Routing: an alert whose hits carry a firearms marker has role "tfc" and goes to tfc consoles only;
any other alert has role "tsg" and goes to tsg consoles and to tfc consoles enrolled with
`tsg_alerts: true` (the default).

Delivery is at-least-once with de-duplication by alert id at the console: `publish()` commits the
alert to the journal, then hands it to the I/O thread that owns the socket. A console says hello on
connecting; the daemon then sends, oldest first, every alert for its roles that this console has
not acknowledged, then new alerts as they come. Heartbeats flow both ways every `heartbeat_s`.
The message catalogue is in edge/ALERT_FORMAT.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from edge.config import AlertsConfig, ConfigError, ConsoleKey
from edge.journal import Journal, JournalError
from edge.keys import KeyFileError, load_public_key, load_secret_key
from edge.types import Activation, Role

logger = logging.getLogger(__name__)

ALERT_FORMAT_VERSION = 1
ZAP_DOMAIN = "anpr-edge"
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
"""Largest message a console may send; libzmq drops the connection of a client sending more."""
MAX_ACK_IDS = 1000
MAX_TEXT_CHARS = 2000

OVERVIEW_MAX_WIDTH = 640
OVERVIEW_JPEG_QUALITY = 75
PLATE_JPEG_QUALITY = 90

_REPLAY_PAGE = 256
_SESSION_TIMEOUT_BEATS = 3
_SEND_HWM = 1000
_ACK_FLUSH_S = 0.1
_REFUSAL_LOG_INTERVAL_S = 60.0
_REFUSAL_PARTIES_KEPT = 4096


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def _jpeg(image: np.ndarray, quality: int, max_width: int | None = None) -> dict | None:
    if image is None or image.size == 0:
        return None
    height, width = image.shape[:2]
    if max_width is not None and width > max_width:
        height = max(1, round(height * max_width / width))
        width = max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    try:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    except cv2.error:
        ok = False
    if not ok:
        logger.error(
            "alerts: cannot encode a %s evidence image as JPEG; sent without it", image.shape
        )
        return None
    return {
        "media_type": "image/jpeg",
        "width": int(width),
        "height": int(height),
        "data": base64.b64encode(data.tobytes()).decode("ascii"),
    }


def encode_alert(activation: Activation, alert_id: str, created_at: float) -> dict:
    """The versioned alert document (edge/ALERT_FORMAT.md), evidence JPEGs inline as base64."""
    vehicle, read = activation.vehicle, activation.vehicle.read
    hits = [
        {
            "kind": str(hit.kind),
            "distance": int(hit.distance),
            "matched_text": hit.matched_text,
            "entry": {
                "entry_id": hit.entry.entry_id,
                "vrm": hit.entry.vrm,
                "markers": sorted(str(m) for m in hit.entry.markers),
                "action": hit.entry.action,
                "information": hit.entry.information,
                "source": hit.entry.source,
                "list_name": hit.entry.list_name,
                "added": hit.entry.added.isoformat(),
                "expires": hit.entry.expires.isoformat(),
            },
        }
        for hit in activation.hits
    ]
    return {
        "type": "alert",
        "version": ALERT_FORMAT_VERSION,
        "alert_id": alert_id,
        "created_at": created_at,
        "created_at_iso": _iso(created_at),
        "role": str(activation.role),
        "markers": sorted(str(m) for m in activation.markers),
        "possible_misread": all(hit["kind"] != "exact" for hit in hits),
        "read": {
            "text": read.text,
            "confidence": round(float(read.confidence), 4),
            "char_confidences": [round(float(c), 4) for c in read.char_confidences],
            "alternatives": [
                {"text": text, "confidence": round(float(conf), 4)}
                for text, conf in read.alternatives
            ],
            "plate_format": read.plate_format,
        },
        "hits": hits,
        "camera_id": vehicle.camera_id,
        "track_id": int(vehicle.track_id),
        "captured_at": vehicle.captured_at,
        "captured_at_iso": _iso(vehicle.captured_at),
        "first_seen": vehicle.first_seen,
        "last_seen": vehicle.last_seen,
        "direction": vehicle.direction,
        "frames_seen": int(vehicle.frames_seen),
        "plate_box": [int(v) for v in vehicle.box],
        "evidence": {
            "plate_crop": _jpeg(vehicle.plate_crop, PLATE_JPEG_QUALITY),
            "overview": _jpeg(vehicle.overview, OVERVIEW_JPEG_QUALITY, OVERVIEW_MAX_WIDTH),
        },
    }


def _plain(value: object) -> object:
    """JSON for numpy scalars and arrays in status messages; text for anything else."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else str(value)


def dump_message(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _RefusalLog:
    """Warns once a minute per refused party: a refused console retries every second or so."""

    def __init__(self) -> None:
        self._last: dict[object, float] = {}

    def warning(self, party: object, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(party, -_REFUSAL_LOG_INTERVAL_S) >= _REFUSAL_LOG_INTERVAL_S:
            if len(self._last) >= _REFUSAL_PARTIES_KEPT:  # a stream of new keys cannot grow it
                cutoff = now - _REFUSAL_LOG_INTERVAL_S
                self._last = {p: t for p, t in self._last.items() if t > cutoff}
            self._last[party] = now
            logger.warning(message, *args)


class _EnrolledKeys:
    """ZAP credentials provider: admits enrolled public keys only."""

    def __init__(self, names_by_key: dict[bytes, str]):
        self.names_by_key = names_by_key
        self._refusals = _RefusalLog()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.names_by_key:
            return True
        self._refusals.warning(
            key,
            "alerts: refused a console: its public key %s is not enrolled in alerts.consoles",
            key.decode("ascii", "replace"),
        )
        return False


class _ConsoleAuthenticator(ThreadAuthenticator):
    """Sets each connection's ZAP User-Id to the enrolled console name of its public key."""

    def __init__(self, context: zmq.Context, names_by_key: dict[bytes, str]):
        super().__init__(context)
        self._names_by_key = names_by_key

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._names_by_key[z85.encode(client_public_key)]


@dataclass(slots=True)
class _Session:
    """One connected console: where it is in the journal and whether it is fed live."""

    name: str
    receives: frozenset[str]
    routing_id: bytes
    last_heard: float
    cursor: int = 0
    """Highest journal seq sent on this connection."""
    caught_up: bool = False
    """True once the replay has reached the end of the journal: new alerts go straight out."""


_Acks = dict[str, tuple[frozenset[str], list[str]]]
"""Acknowledgements not yet recorded: console name -> (its roles, alert ids)."""


@dataclass(slots=True)
class _Outgoing:
    seq: int | None
    """Journal sequence number; None when the journal write failed (sent live only)."""
    role: str
    document: bytes


class AlertPublisher:
    """Journals each activation, then delivers it to the consoles entitled to it."""

    def __init__(self, config: AlertsConfig):
        self.config = config
        self._consoles: dict[str, ConsoleKey] = {c.name: c for c in config.consoles}
        self._server_keys: tuple[bytes, bytes] | None = None
        self._names_by_key: dict[bytes, str] = {}
        try:
            if not config.insecure:
                self._server_keys = load_secret_key(config.server_secret_key)
                for console in config.consoles:
                    self._names_by_key[load_public_key(console.public_key)] = console.name
            self._journal = Journal(config.journal, config.journal_sync)
        except (KeyFileError, JournalError) as error:
            raise ConfigError(f"alerts: {error}") from None
        if not config.insecure and not config.consoles:
            logger.warning(
                "alerts: no consoles enrolled in alerts.consoles; alerts are only journalled"
            )
        self._publish_lock = threading.Lock()
        self._outbox: queue.SimpleQueue[_Outgoing] = queue.SimpleQueue()
        self._status: queue.Queue[bytes] = queue.Queue(maxsize=100)
        self._wake_read, self._wake_write = os.pipe()
        self._wake_pending = False
        self._refusals = _RefusalLog()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts-io", daemon=True)
        self._context = zmq.Context()
        self._authenticator: _ConsoleAuthenticator | None = None
        self._socket: zmq.Socket | None = None
        self._close_linger_ms = 0
        # Owned by the I/O thread:
        self._sessions: dict[str, _Session] = {}
        self._routes: dict[bytes, str] = {}
        self._pending_acks: _Acks = {}
        self.endpoint: str | None = None
        """The bound endpoint (with the real port when `bind` asked for a random one)."""

    def start(self) -> None:
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_CLIENT_MESSAGE_BYTES)
        socket.setsockopt(zmq.SNDHWM, _SEND_HWM)
        beat_ms = int(self.config.heartbeat_s * 1000)
        socket.setsockopt(zmq.HEARTBEAT_IVL, beat_ms)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, beat_ms * _SESSION_TIMEOUT_BEATS)
        if self._server_keys is not None:
            self._authenticator = _ConsoleAuthenticator(self._context, self._names_by_key)
            self._authenticator.start()
            self._authenticator.configure_curve_callback(
                ZAP_DOMAIN, credentials_provider=_EnrolledKeys(self._names_by_key)
            )
            socket.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
            # Without this, libzmq admits any CURVE client if the ZAP handler is ever missing.
            socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            socket.curve_server = True
            socket.curve_publickey, socket.curve_secretkey = self._server_keys
        else:
            logger.warning("alerts: insecure: true: consoles connect without encryption or keys")
        try:
            socket.bind(self.config.bind)
        except zmq.ZMQError as error:
            socket.close(linger=0)
            self._stop_authenticator()
            raise ConfigError(f"alerts.bind: cannot bind {self.config.bind}: {error}") from None
        self.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._socket = socket
        self._thread.start()
        logger.info("alerts: serving consoles on %s", self.endpoint)

    def publish(self, activation: Activation) -> str:
        """Journal the alert (durably), queue it for sending; returns its id. Thread-safe."""
        alert_id = str(uuid.uuid4())
        created_at = time.time()
        document = dump_message(encode_alert(activation, alert_id, created_at))
        role = str(activation.role)
        # One lock around commit and enqueue: the I/O thread sees alerts in journal order.
        with self._publish_lock:
            try:
                seq: int | None = self._journal.append(alert_id, role, created_at, document)
            except sqlite3.Error as error:
                # Reaching the commander matters more than durability: send it live anyway.
                logger.error(
                    "alerts: journal %s failed (%s): alert %s is sent but cannot be replayed",
                    self.config.journal,
                    error,
                    alert_id,
                )
                seq = None
            self._outbox.put(_Outgoing(seq, role, document))
        self._wake()
        return alert_id

    def publish_status(self, status: dict) -> None:
        """Camera health and the like, to every connected console; best effort, not journalled."""
        envelope = {
            "type": "status",
            "version": ALERT_FORMAT_VERSION,
            "sent_at": time.time(),
            "status": status,
        }
        try:
            message = json.dumps(envelope, default=_plain).encode("utf-8")
        except ValueError as error:
            logger.error("alerts: status not sendable as JSON (%s): %r", error, status)
            return
        try:
            self._status.put_nowait(message)
        except queue.Full:
            logger.debug("status message dropped: the alert I/O thread is behind")
            return
        self._wake()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (up to `timeout_s`), then close the socket and the journal."""
        if self._stopping.is_set():
            return
        self._close_linger_ms = int(timeout_s * 1000)
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 1.0)
        elif self._socket is not None:
            self._socket.close(linger=0)
        self._stop_authenticator()
        if self._thread.is_alive():
            logger.error("alerts: the I/O thread did not stop; closing its socket regardless")
            self._context.destroy(linger=0)
        else:
            self._context.term()
        self._journal.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _stop_authenticator(self) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def _wake(self) -> None:
        """Wake the I/O thread, unless a wake-up it has not yet taken is already pending.

        Callers queue their item before calling this; the I/O thread clears the flag before it
        drains the queues, so no item is left waiting for a wake-up that was skipped."""
        if self._wake_pending:
            return
        self._wake_pending = True
        os.write(self._wake_write, b"\0")

    # --- I/O thread: everything below runs on the thread that owns the socket ---

    def _run(self) -> None:
        socket = self._socket
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        next_beat = time.monotonic() + self.config.heartbeat_s
        next_ack_flush = time.monotonic() + _ACK_FLUSH_S
        while True:
            try:
                behind = any(not s.caught_up for s in self._sessions.values())
                wait_s = min(next_beat, next_ack_flush) - time.monotonic()
                events = dict(poller.poll(10 if behind else max(0, int(wait_s * 1000))))
                if self._wake_read in events:
                    self._wake_pending = False
                    os.read(self._wake_read, 65536)
                self._receive_all(socket)
                self._send_new(socket)
                self._send_status(socket)
                self._catch_up(socket)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(socket, now)
                    next_beat = now + self.config.heartbeat_s
                stopping = self._stopping.is_set() and self._outbox.empty()
                if now >= next_ack_flush or stopping:
                    self._flush_acks()
                    next_ack_flush = now + _ACK_FLUSH_S
                if stopping:
                    break
            except Exception:
                # Keep serving: every alert is in the journal and is re-sent on the next hello.
                logger.exception("alerts: error in the I/O loop")
                time.sleep(0.1)
        socket.close(linger=self._close_linger_ms)

    def _receive_all(self, socket: zmq.Socket) -> None:
        for _ in range(10_000):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._handle(socket, frames)

    def _flush_acks(self) -> None:
        """Record the acks gathered since the last flush, one transaction per console.

        Deferring them is safe: an ack lost with the daemon only means that alert is re-sent,
        and the console skips what it has already shown."""
        now = time.time()
        for name, (receives, ids) in self._pending_acks.items():
            self._journal.record_acks(name, receives, ids, now)
        self._pending_acks = {}

    def _identify(self, frame: zmq.Frame) -> ConsoleKey | None:
        """Who sent this message: the enrolled console of its CURVE key (None when insecure)."""
        if self._server_keys is None:
            return None
        return self._consoles.get(frame.get("User-Id"))

    def _handle(self, socket: zmq.Socket, frames: list[zmq.Frame]) -> None:
        routing_id = frames[0].bytes
        console = self._identify(frames[1])
        try:
            message = _parse_client_message(frames)
        except _Malformed as error:
            sender = console.name if console is not None else "an unnamed connection"
            self._refusals.warning(
                (routing_id, "malformed"), "alerts: dropped a message from %s: %s", sender, error
            )
            return
        kind = message["type"]
        if kind == "hello":
            self._hello(socket, routing_id, console, message)
            return
        name = self._routes.get(routing_id)
        session = self._sessions.get(name) if name is not None else None
        if session is None or session.routing_id != routing_id:
            logger.debug("alerts: %s from a connection that has not said hello; ignored", kind)
            return
        session.last_heard = time.monotonic()
        if kind == "ack":
            pending = self._pending_acks.setdefault(session.name, (session.receives, []))
            pending[1].extend(message["ids"])

    def _hello(
        self, socket: zmq.Socket, routing_id: bytes, console: ConsoleKey | None, message: dict
    ) -> None:
        claimed = message.get("role")
        if self._server_keys is None:
            if claimed not in (Role.TFC, Role.TSG):
                logger.warning("alerts: hello without a valid role (%r); ignored", claimed)
                return
            insecure = ConsoleKey(name=f"insecure-{claimed}", role=claimed, public_key="-")
            name, receives = insecure.name, frozenset(str(r) for r in insecure.receives)
        else:
            if console is None:
                logger.warning("alerts: hello from a connection with no enrolled key; ignored")
                return
            if claimed != console.role:
                self._refusals.warning(
                    (console.name, claimed),
                    "alerts: console %s is enrolled as %s but asked for %r: refused, sent nothing",
                    console.name,
                    console.role,
                    claimed,
                )
                return
            name, receives = console.name, frozenset(str(r) for r in console.receives)
        previous = self._sessions.get(name)
        if previous is not None and previous.routing_id != routing_id:
            self._routes.pop(previous.routing_id, None)
            logger.info(
                "alerts: console %s reconnected; replaying what it has not acknowledged", name
            )
            if time.monotonic() - previous.last_heard < self.config.heartbeat_s:
                self._refusals.warning(
                    (name, "twice"),
                    "alerts: console %s is connected twice (one key on two machines?); "
                    "only the newest connection receives alerts",
                    name,
                )
        else:
            logger.info("alerts: console %s connected", name)
        session = _Session(name, receives, routing_id, last_heard=time.monotonic())
        self._sessions[name] = session
        self._routes[routing_id] = name
        welcome = {
            "type": "welcome",
            "version": ALERT_FORMAT_VERSION,
            "console": name,
            "role": str(claimed),
            "receives": sorted(receives),
            "heartbeat_s": self.config.heartbeat_s,
        }
        self._send(socket, session, dump_message(welcome))

    def _send(self, socket: zmq.Socket, session: _Session, payload: bytes) -> bool:
        """Send without blocking; False when the console's pipe is full or it has gone."""
        try:
            socket.send_multipart([session.routing_id, payload], zmq.NOBLOCK)
            return True
        except zmq.Again:
            if session.caught_up:
                logger.info(
                    "alerts: console %s is behind; feeding it from the journal", session.name
                )
            session.caught_up = False
            return False
        except zmq.ZMQError as error:
            if error.errno != errno.EHOSTUNREACH:
                raise
            self._drop(session, "its connection has gone")
            return False

    def _drop(self, session: _Session, why: str) -> None:
        logger.info("alerts: console %s dropped: %s", session.name, why)
        if self._sessions.get(session.name) is session:
            del self._sessions[session.name]
        self._routes.pop(session.routing_id, None)

    def _send_new(self, socket: zmq.Socket) -> None:
        while True:
            try:
                outgoing = self._outbox.get_nowait()
            except queue.Empty:
                return
            for session in list(self._sessions.values()):
                if not session.caught_up or outgoing.role not in session.receives:
                    continue
                if outgoing.seq is None:
                    self._send(socket, session, outgoing.document)
                elif outgoing.seq > session.cursor and self._send(
                    socket, session, outgoing.document
                ):
                    session.cursor = outgoing.seq

    def _send_status(self, socket: zmq.Socket) -> None:
        while True:
            try:
                message = self._status.get_nowait()
            except queue.Empty:
                return
            for session in list(self._sessions.values()):
                if session.caught_up:
                    self._send(socket, session, message)

    def _catch_up(self, socket: zmq.Socket) -> None:
        """Replay the journal to consoles that are behind, oldest first, until their pipe fills."""
        since = time.time() - self.config.replay_max_age_s
        for session in list(self._sessions.values()):
            while not session.caught_up and self._sessions.get(session.name) is session:
                page = self._journal.unacked(
                    session.name,
                    session.receives,
                    after_seq=session.cursor,
                    created_since=since,
                    limit=_REPLAY_PAGE,
                )
                sent_all = True
                for alert in page:
                    if not self._send(socket, session, alert.document):
                        sent_all = False
                        break
                    session.cursor = alert.seq
                if not sent_all:
                    break
                if len(page) < _REPLAY_PAGE:
                    session.caught_up = True

    def _beat(self, socket: zmq.Socket, now: float) -> None:
        limit = self.config.heartbeat_s * _SESSION_TIMEOUT_BEATS
        heartbeat = dump_message(
            {"type": "heartbeat", "version": ALERT_FORMAT_VERSION, "sent_at": time.time()}
        )
        for session in list(self._sessions.values()):
            if now - session.last_heard > limit:
                self._drop(session, f"no message for {limit:.1f} s")
            else:
                self._send(socket, session, heartbeat)


class _Malformed(ValueError):
    """A console message that breaks the protocol; the text says how."""


def _parse_client_message(frames: list[zmq.Frame]) -> dict:
    """A console's message as a dict; raises _Malformed when it breaks the protocol in any way."""
    if len(frames) != 2:
        raise _Malformed(f"{len(frames) - 1} frames, expected 1")
    payload = frames[1].bytes
    if len(payload) > MAX_CLIENT_MESSAGE_BYTES:
        raise _Malformed(f"oversized ({len(payload)} bytes)")
    try:
        message: Any = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Malformed(f"not JSON ({len(payload)} bytes)") from None
    if not isinstance(message, dict) or message.get("type") not in ("hello", "heartbeat", "ack"):
        raise _Malformed("not a hello, heartbeat or ack object")
    if message["type"] == "ack":
        ids = message.get("ids")
        if (
            not isinstance(ids, list)
            or len(ids) > MAX_ACK_IDS
            or not all(isinstance(i, str) and len(i) <= 64 for i in ids)
        ):
            raise _Malformed(f"ack 'ids' must be a list of at most {MAX_ACK_IDS} alert ids")
    return message

"""Alert delivery to the commanders: versioned alerts over CURVE-secured ZeroMQ, journalled first.

The daemon binds one ROUTER socket (CURVE server). Consoles connect DEALER sockets (CURVE
clients) with their own key pair. A ZAP handler admits only public keys enrolled in the config and
stamps each message with the console's enrolled name (ZeroMQ "User-Id"), from which the daemon takes
the console's role: what a client claims about itself never widens what it receives.

Routing: an alert whose hits carry a firearms marker has role "tfc" and goes to tfc consoles only;
any other alert has role "tsg" and goes to tsg consoles and to tfc consoles enrolled with
`tsg_alerts: true` (the default).

An alert is a JSON header frame followed by its evidence JPEGs as binary frames, encoded once by
the caller (`encode_evidence`, on the camera worker's thread) before `publish()`.

Delivery is at-least-once with de-duplication by alert id at the console: `publish()` queues the
alert for the I/O thread that owns the socket, which commits every alert waiting in one journal
transaction (group commit) and only then sends them: nothing reaches a console before it is in the
journal. A console says hello on connecting; the daemon then sends, oldest first, every alert for
its roles that this console has not acknowledged, then new alerts as they come. Heartbeats flow
both ways every `heartbeat_s`. The message catalogue is in edge/ALERT_FORMAT.md.
"""

from __future__ import annotations

import datetime as dt
import errno
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
import msgspec
import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from edge.config import AlertsConfig, ConfigError, ConsoleKey
from edge.journal import AlertRecord, Journal, JournalError
from edge.keys import KeyFileError, load_public_key, load_secret_key
from edge.types import Activation, Role, VehicleRead

logger = logging.getLogger(__name__)

ALERT_FORMAT_VERSION = 2
ZAP_DOMAIN = "anpr-edge"
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
"""Largest message a console may send; libzmq drops the connection of a client sending more."""
MAX_ACK_IDS = 1000

OVERVIEW_MAX_WIDTH = 640
OVERVIEW_JPEG_QUALITY = 75
PLATE_JPEG_QUALITY = 90

_REPLAY_PAGE = 256
_COMMIT_BATCH_MAX = 256
"""Most alerts committed in one transaction; more waiting are committed after these are sent."""
UNCOMMITTED_MAX = 2 * _COMMIT_BATCH_MAX
"""Most alerts published and not yet through their commit (two commits' worth): publish() waits
beyond this, so however fast alerts come, a kill -9 can lose no more than this many, and none
that a console has seen."""
_SESSION_TIMEOUT_BEATS = 3
_SEND_HWM = 1000
_ACK_FLUSH_S = 0.1
_BEHIND_POLL_MS = 10
"""How often a console that has fallen behind is fed from the journal (ROUTER has no POLLOUT
per console)."""
_SEND_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_SEND_LAST = int(zmq.NOBLOCK)
"""Flags as plain ints, frame by frame: pyzmq's send_multipart spends three times as long on
enum arithmetic per frame as on the sends themselves."""
_REFUSAL_LOG_INTERVAL_S = 60.0
_REFUSAL_PARTIES_KEPT = 4096


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class EvidenceImage:
    """One evidence image as consoles receive it."""

    jpeg: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Evidence:
    """An alert's images, JPEG-encoded once, before `publish()`; None where there is no image."""

    plate_crop: EvidenceImage | None
    overview: EvidenceImage | None


def encode_evidence(vehicle: VehicleRead) -> Evidence:
    """The plate crop (quality 90, native size) and the overview (at most 640 px wide, quality 75)
    as JPEGs. About 1 ms for a 1280x720 frame: the caller pays it, not the alert I/O thread."""
    return Evidence(
        plate_crop=_jpeg(vehicle.plate_crop, PLATE_JPEG_QUALITY),
        overview=_jpeg(vehicle.overview, OVERVIEW_JPEG_QUALITY, OVERVIEW_MAX_WIDTH),
    )


def _jpeg(image: np.ndarray, quality: int, max_width: int | None = None) -> EvidenceImage | None:
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
    return EvidenceImage(data.tobytes(), int(width), int(height))


def encode_alert(
    activation: Activation, evidence: Evidence, alert_id: str, created_at: float
) -> dict:
    """The versioned alert header (edge/ALERT_FORMAT.md). Each evidence image present is described
    by the number of the frame that carries its JPEG: 1 for the first, in the order of
    `alert_frames`."""
    vehicle, read = activation.vehicle, activation.vehicle.read
    images: dict[str, dict | None] = {}
    frame = 0
    for name, image in (("plate_crop", evidence.plate_crop), ("overview", evidence.overview)):
        if image is None:
            images[name] = None
            continue
        frame += 1
        images[name] = {
            "media_type": "image/jpeg",
            "width": image.width,
            "height": image.height,
            "frame": frame,
        }
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
            "reader_alternatives": [
                {"text": text, "confidence": round(float(conf), 4)}
                for text, conf in read.reader_alternatives
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
        "evidence": images,
    }


def alert_record(activation: Activation, evidence: Evidence) -> AlertRecord:
    """A new alert (fresh id, created now) as it is journalled and sent."""
    alert_id = str(uuid.uuid4())
    created_at = time.time()
    header = encode_alert(activation, evidence, alert_id, created_at)
    return AlertRecord(
        alert_id,
        header["role"],
        created_at,
        dump_message(header),
        evidence.plate_crop and evidence.plate_crop.jpeg,
        evidence.overview and evidence.overview.jpeg,
    )


def alert_frames(alert: AlertRecord) -> list[bytes]:
    """The alert's message: its header, then the JPEG of each image it has, plate crop first."""
    return [alert.document, *(i for i in (alert.plate_crop, alert.overview) if i is not None)]


def _plain(value: object) -> object:
    """JSON for numpy scalars and arrays in status messages; text for anything else."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else str(value)


# msgspec writes and parses the same compact UTF-8 JSON as the json module, 5-10 times faster:
# at thousands of alerts a second the json module alone cost a tenth of the alert path's CPU.
_ENCODER = msgspec.json.Encoder(enc_hook=_plain)
_DECODER = msgspec.json.Decoder()

MessageError = msgspec.DecodeError
"""Raised by `load_message` for bytes that are not JSON, not UTF-8, or nested too deeply."""


def dump_message(message: dict) -> bytes:
    """Compact UTF-8 JSON; numpy values as numbers or lists, anything else unknown as text."""
    return _ENCODER.encode(message)


def load_message(payload: bytes) -> Any:
    try:
        return _DECODER.decode(payload)
    except RecursionError:  # "[[[[..." : a few KB from a client can nest past Python's limit
        raise MessageError("JSON nested too deeply") from None


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
        self._outbox: queue.SimpleQueue[AlertRecord] = queue.SimpleQueue()
        """Published alerts waiting for the I/O thread to journal and send them, in order."""
        self._uncommitted = threading.Semaphore(UNCOMMITTED_MAX)
        """One permit per alert published and not yet through its commit."""
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

    def publish(self, activation: Activation, evidence: Evidence) -> str:
        """Queue the alert and return its id; thread-safe, and waits for the disk only when
        UNCOMMITTED_MAX alerts are already waiting for their commit.

        The I/O thread commits it to the journal (with any others waiting) before sending it, so
        a console never sees an alert that a restarted daemon would not know; a kill -9 can only
        lose alerts still waiting for their commit, which no console has seen, as it can lose a
        vehicle still being tracked."""
        if self._stopping.is_set():
            raise RuntimeError("alerts: publish() after close()")
        alert = alert_record(activation, evidence)
        self._uncommitted.acquire()
        self._outbox.put(alert)
        self._wake()
        return alert.alert_id

    def publish_status(self, status: dict) -> None:
        """Camera health and the like, to every connected console; best effort, not journalled."""
        envelope = {
            "type": "status",
            "version": ALERT_FORMAT_VERSION,
            "sent_at": time.time(),
            "status": status,
        }
        try:
            message = dump_message(envelope)
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as error:
            logger.error(
                "alerts: a %r status is not sendable as JSON: %s", status.get("type"), error
            )
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
                if not self._outbox.empty():
                    timeout_ms = 0  # more waiting than one commit takes
                elif any(not s.caught_up for s in self._sessions.values()):
                    timeout_ms = _BEHIND_POLL_MS
                else:
                    wait_s = min(next_beat, next_ack_flush) - time.monotonic()
                    timeout_ms = max(0, int(wait_s * 1000))
                events = dict(poller.poll(timeout_ms))
                if self._wake_read in events:
                    self._wake_pending = False
                    os.read(self._wake_read, 65536)
                self._receive_all(socket)
                self._journal_and_send_new(socket)
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
                # Keep serving, and feed every console from the journal from where its last
                # successful send left it: an alert committed but not sent is not skipped.
                logger.exception("alerts: error in the I/O loop")
                for session in self._sessions.values():
                    session.caught_up = False
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
        """Record the acks gathered since the last flush.

        Deferring them, or failing to record them, is safe: an ack lost only means that alert is
        re-sent, and the console skips what it has already shown."""
        now = time.time()
        pending, self._pending_acks = self._pending_acks, {}
        for name, (receives, ids) in pending.items():
            try:
                self._journal.record_acks(name, receives, ids, now)
            except sqlite3.Error as error:
                logger.error(
                    "alerts: journal %s failed (%s): %d acks from %s not recorded; "
                    "those alerts will be re-sent to it",
                    self.config.journal,
                    error,
                    len(ids),
                    name,
                )

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
        self._send(socket, session, [dump_message(welcome)])

    def _send(self, socket: zmq.Socket, session: _Session, frames: list[bytes]) -> bool:
        """Send one message without blocking; False when the console's pipe is full or it has
        gone."""
        try:
            # A ROUTER takes or refuses a message at its first frame (the console's routing id).
            socket.send(session.routing_id, _SEND_MORE)
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
        for frame in frames[:-1]:
            socket.send(frame, _SEND_MORE)
        socket.send(frames[-1], _SEND_LAST)
        return True

    def _drop(self, session: _Session, why: str) -> None:
        logger.info("alerts: console %s dropped: %s", session.name, why)
        if self._sessions.get(session.name) is session:
            del self._sessions[session.name]
        self._routes.pop(session.routing_id, None)

    def _journal_and_send_new(self, socket: zmq.Socket) -> None:
        """Commit the alerts waiting (up to _COMMIT_BATCH_MAX) in one transaction, then send them
        to the consoles that are caught up; the others will read them from the journal."""
        batch: list[AlertRecord] = []
        while len(batch) < _COMMIT_BATCH_MAX:
            try:
                batch.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        try:
            seqs = self._journal.append(batch)
        except sqlite3.Error as error:
            # Reaching the commander matters more than durability: send them live anyway.
            logger.error(
                "alerts: journal %s failed (%s): alerts %s are sent but cannot be replayed",
                self.config.journal,
                error,
                ", ".join(alert.alert_id for alert in batch),
            )
            seqs = [None] * len(batch)
        finally:
            self._uncommitted.release(len(batch))
        for alert, seq in zip(batch, seqs, strict=True):
            frames = alert_frames(alert)
            for session in list(self._sessions.values()):
                if not session.caught_up or alert.role not in session.receives:
                    continue
                if seq is None:
                    self._send(socket, session, frames)
                elif seq > session.cursor and self._send(socket, session, frames):
                    session.cursor = seq

    def _send_status(self, socket: zmq.Socket) -> None:
        while True:
            try:
                message = self._status.get_nowait()
            except queue.Empty:
                return
            for session in list(self._sessions.values()):
                if session.caught_up:
                    self._send(socket, session, [message])

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
                for seq, alert in page:
                    if not self._send(socket, session, alert_frames(alert)):
                        sent_all = False
                        break
                    session.cursor = seq
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
                self._send(socket, session, [heartbeat])


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
        message = load_message(payload)
    except MessageError:
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

"""Frame sources: cameras, streams and video files, each on its own capture thread.

Capture must never fall behind live: every source feeds a bounded `FrameQueue` that drops its
oldest frame when full, so a slow consumer costs old frames, never fresh ones, and capture
never waits. The one exception is a video file replayed with `pacing: fast`: replay wants every
frame, so that source waits for room in the queue before it reads the next frame (there is no
live scene to fall behind, and a frame's capture time is when it was taken from the file, not
when it was read ahead of a busy consumer).

Streams (rtsp://, http://) and local cameras that fail to open, drop or stall are reopened with
exponential backoff while the other cameras keep working; unreadable frames are skipped and
counted. `FrameSource.health()` is what consoles show for each camera.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.types import Frame

logger = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.5
_FPS_WINDOW_S = 5.0
_FPS_WINDOW_FRAMES = 1000
_FAILED_READS_BEFORE_REOPEN = 5
"""Consecutive failed reads taken as the stream having gone, rather than as corrupt frames."""
_FALLBACK_FILE_FPS = 25.0


class FrameQueue:
    """Bounded frame queue whose `put` never blocks: when full it drops the oldest frame."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._frames: collections.deque[Frame] = collections.deque()
        self._maxsize = maxsize
        self._changed = threading.Condition()
        self._closed = False
        self._dropped = 0

    def put(self, frame: Frame) -> None:
        """Add a frame, dropping (and counting) the oldest when full. Ignored once closed."""
        with self._changed:
            if self._closed:
                return
            if len(self._frames) >= self._maxsize:
                self._frames.popleft()
                self._dropped += 1
            self._frames.append(frame)
            self._changed.notify_all()

    def wait_for_room(self, timeout: float) -> bool:
        """Wait up to `timeout` until a frame can be added without dropping one; False if there
        was no room in time or the queue closed.

        Only for replaying files as fast as possible, where every frame matters and no live
        scene moves on while we wait. Live sources `put` without waiting.
        """
        with self._changed:
            has_room = self._changed.wait_for(
                lambda: self._closed or len(self._frames) < self._maxsize, timeout
            )
            return has_room and not self._closed

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame; None on timeout, or when closed and empty."""
        with self._changed:
            self._changed.wait_for(lambda: self._frames or self._closed, timeout)
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._changed.notify_all()
            return frame

    def close(self) -> None:
        """Refuse further frames and wake every waiter; frames already queued can still be got."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped(self) -> int:
        return self._dropped

    def __len__(self) -> int:
        return len(self._frames)


@dataclass(frozen=True, slots=True)
class CameraHealth:
    camera_id: str
    connected: bool
    fps_in: float
    """Frames captured per second over the last few seconds."""
    frames_in: int
    frames_dropped: int
    """Frames dropped because the queue was full (the consumer fell behind)."""
    last_frame_age_s: float | None
    """Seconds since the last frame was captured; None before the first."""
    reconnects: int
    finished: bool
    """A video file reached its end (and does not loop), or could not be opened."""
    frames_corrupt: int = 0
    """Unreadable frames skipped."""
    frames_skipped_late: int = 0
    """Real-time file replay only: frames skipped to catch up with the clock."""
    error: str | None = None
    """The last open or read failure, for the operator."""

    def to_dict(self) -> dict:
        return asdict(self)


class SourceKind(Enum):
    FILE = "file"
    STREAM = "stream"
    DEVICE = "device"


def source_kind(source: str) -> SourceKind:
    if "://" in source:
        return SourceKind.STREAM
    if source.isdigit():
        return SourceKind.DEVICE
    return SourceKind.FILE


class FrameSource:
    """One camera: a capture thread that reads frames and puts them on `queue`.

    Frame indexes count every frame taken from the source, so for a file replayed once the
    index is the frame's position in the file, and frames skipped or unreadable leave gaps.
    `captured_at` is the wall-clock time the frame was read (latency is measured from it);
    `scene_time` is the same except in fast replay, where it follows the clip's own frame rate.
    """

    def __init__(self, camera: CameraConfig, queue: FrameQueue):
        self.camera = camera
        self.queue = queue
        self.kind = source_kind(camera.source)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connected = False
        self._finished = False
        self._frames_in = 0
        self._next_index = 0
        self._frames_corrupt = 0
        self._frames_skipped_late = 0
        self._replay_origin: float | None = None
        """Fast replay: the scene time of frame index 0."""
        self._reconnects = 0
        self._last_frame_at: float | None = None
        self._recent: collections.deque[float] = collections.deque()
        self._error: str | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera.id}: source already started")
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{self.camera.id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capturing; waits for the capture thread, whose reads are bounded by timeouts."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def finished(self) -> bool:
        return self._finished

    def health(self) -> CameraHealth:
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > _FPS_WINDOW_S:
                self._recent.popleft()
            window = min(_FPS_WINDOW_S, now - self._recent[0]) if self._recent else 0.0
            fps = (len(self._recent) - 1) / window if len(self._recent) > 1 and window > 0 else 0.0
            return CameraHealth(
                camera_id=self.camera.id,
                connected=self._connected,
                fps_in=round(fps, 2),
                frames_in=self._frames_in,
                frames_dropped=self.queue.dropped,
                last_frame_age_s=(
                    None if self._last_frame_at is None else round(now - self._last_frame_at, 3)
                ),
                reconnects=self._reconnects,
                finished=self._finished,
                frames_corrupt=self._frames_corrupt,
                frames_skipped_late=self._frames_skipped_late,
                error=self._error,
            )

    # Capture thread.

    def _run(self) -> None:
        """Open, capture, and on failure reopen: at once after a connection that worked, then
        with exponential backoff. A file ends the source when it ends (unless it loops) or
        cannot be read."""
        backoff = _FIRST_BACKOFF_S
        while not self._stopping.is_set():
            try:
                outcome, delivered = self._open_and_capture()
            except Exception as error:  # report, and keep a live camera going
                logger.exception("camera %s: capture failed", self.camera.id)
                self._error = f"capture failed: {error}"
                outcome, delivered = _Outcome.FAILED, 0
            if outcome is _Outcome.STOPPED:
                return
            if self.kind is SourceKind.FILE:
                if outcome is _Outcome.FAILED or not self.camera.loop or not delivered:
                    self._finished = True
                    return
                continue
            self._reconnects += 1
            if delivered:
                backoff = _FIRST_BACKOFF_S
            elif self._stopping.wait(backoff):
                return
            else:
                backoff = min(backoff * 2, self.camera.reconnect_max_s)

    def _open_and_capture(self) -> tuple[_Outcome, int]:
        capture = self._open()
        if capture is None:
            return _Outcome.FAILED, 0
        self._connected = True
        try:
            return self._capture_until_failure(capture)
        finally:
            self._connected = False
            capture.release()

    def _open(self) -> cv2.VideoCapture | None:
        source = self.camera.source
        timeout_ms = int(self.camera.stall_timeout_s * 1000)
        if self.kind is SourceKind.DEVICE:
            capture = cv2.VideoCapture(int(source))
        elif self.kind is SourceKind.FILE and not Path(source).is_file():
            capture = None
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                timeout_ms,
            ]
            capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        if capture is None or not capture.isOpened():
            self._error = f"cannot open {source}"
            log = logger.error if self.kind is SourceKind.FILE else logger.warning
            log("camera %s: cannot open %s", self.camera.id, source)
            return None
        logger.info("camera %s: opened %s", self.camera.id, source)
        self._error = None
        return capture

    def _capture_until_failure(self, capture: cv2.VideoCapture) -> tuple[_Outcome, int]:
        """Read frames until stopped, the end of a file, or a failed stream; frames delivered."""
        pacing = _Pacing(_file_fps(capture)) if self._is_paced_file() else None
        is_file = self.kind is SourceKind.FILE
        delivered = failed_reads = 0
        last_good = time.monotonic()
        waits_for_room = is_file and self.camera.pacing == "fast"
        replay_period = 1.0 / _file_fps(capture) if waits_for_room else None
        while not self._stopping.is_set():
            if waits_for_room and not self.queue.wait_for_room(timeout=0.2):
                if self.queue.closed:
                    return _Outcome.STOPPED, delivered
                continue
            if pacing is not None and not pacing.wait_for_next(self._stopping):
                if not capture.grab():
                    return _Outcome.END, delivered
                self._next_index += 1
                self._frames_skipped_late += 1
                continue
            ok, image = capture.read()
            if not ok or not _is_frame(image):
                failed_reads += 1
                if is_file:
                    if not ok and (_at_end(capture) or failed_reads >= _FAILED_READS_BEFORE_REOPEN):
                        return _Outcome.END, delivered
                    self._next_index += 1
                    continue
                stalled = time.monotonic() - last_good > self.camera.stall_timeout_s
                if failed_reads >= _FAILED_READS_BEFORE_REOPEN or stalled:
                    self._error = "stream stalled" if stalled else "stream lost"
                    logger.warning("camera %s: %s, reopening", self.camera.id, self._error)
                    return _Outcome.FAILED, delivered
                continue
            if failed_reads:
                self._frames_corrupt += failed_reads
                logger.info(
                    "camera %s: skipped %d unreadable frame(s)", self.camera.id, failed_reads
                )
                failed_reads = 0
            last_good = time.monotonic()
            self._deliver(image, last_good, replay_period)
            delivered += 1
        return _Outcome.STOPPED, delivered

    def _is_paced_file(self) -> bool:
        return self.kind is SourceKind.FILE and self.camera.pacing == "realtime"

    def _deliver(
        self, image: np.ndarray, captured_monotonic: float, replay_period: float | None
    ) -> None:
        """Queue a frame; `replay_period` (seconds a frame) for a file replayed as fast as
        possible, whose scene time then follows the clip's frame rate."""
        captured_at = scene_time = time.time()
        if replay_period is not None:
            if self._replay_origin is None:
                self._replay_origin = captured_at - self._next_index * replay_period
            scene_time = self._replay_origin + self._next_index * replay_period
        frame = Frame(
            camera_id=self.camera.id,
            index=self._next_index,
            captured_at=captured_at,
            scene_time=scene_time,
            image=image,
        )
        self._next_index += 1
        with self._lock:
            self._frames_in += 1
            self._last_frame_at = captured_monotonic
            self._recent.append(captured_monotonic)
            if len(self._recent) > _FPS_WINDOW_FRAMES:
                self._recent.popleft()
        self.queue.put(frame)


class _Outcome(Enum):
    END = "end"
    """End of a file (or a file that cannot be read further)."""
    FAILED = "failed"
    """Could not open, or a stream or camera that dropped or stalled: reopen it."""
    STOPPED = "stopped"


class _Pacing:
    """Real-time replay clock for a file: frame i is due `i / fps` after the first."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.start: float | None = None
        self.next_index = 0

    def wait_for_next(self, stopping: threading.Event) -> bool:
        """Sleep until the next frame is due; False if it is already a frame late (skip it)."""
        now = time.monotonic()
        if self.start is None:
            self.start = now
        due = self.start + self.next_index * self.period
        self.next_index += 1
        if now > due + self.period:
            return False
        if due > now:
            stopping.wait(due - now)
        return True


def _file_fps(capture: cv2.VideoCapture) -> float:
    """A video file's frame rate, or _FALLBACK_FILE_FPS when it states none that is plausible."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if np.isfinite(fps) and 1.0 <= fps <= 240.0 else _FALLBACK_FILE_FPS


def _is_frame(image: np.ndarray | None) -> bool:
    return (
        image is not None
        and image.ndim == 3
        and image.shape[2] == 3
        and image.dtype == np.uint8
        and image.size > 0
    )


def _at_end(capture: cv2.VideoCapture) -> bool:
    """A file read failed: at (or past) its last frame, or unknown length (treat as the end)."""
    total = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    position = capture.get(cv2.CAP_PROP_POS_FRAMES)
    return not (np.isfinite(total) and total > 0) or position >= total - 1

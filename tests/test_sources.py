"""Frame sources against real video files and a real MJPEG-over-HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import CameraConfig
from edge.sources import FrameQueue, FrameSource
from edge.types import Frame


def blank_frame(index: int) -> Frame:
    now = time.time()
    return Frame("cam1", index, now, now, np.zeros((4, 4, 3), np.uint8))


def write_clip(path: Path, frames: int, fps: float = 25.0, size=(160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        cv2.rectangle(image, (5 + 4 * i, 40), (45 + 4 * i, 60), (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def drain(queue: FrameQueue, until: Callable[[], bool], timeout: float = 10.0) -> list[Frame]:
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = queue.get(timeout=0.05)
        if frame is not None:
            frames.append(frame)
        elif until():
            break
    return frames


# The queue.


def test_full_queue_drops_the_oldest_frames_and_counts_them_under_a_slow_consumer():
    queue = FrameQueue(maxsize=4)
    received: list[int] = []

    def slow_consumer():
        while (frame := queue.get(timeout=1.0)) is not None:
            received.append(frame.index)
            time.sleep(0.01)

    consumer = threading.Thread(target=slow_consumer)
    consumer.start()
    for index in range(200):
        queue.put(blank_frame(index))  # never blocks, however slow the consumer
    queue.close()
    consumer.join(timeout=10)

    assert queue.dropped > 0
    assert queue.dropped + len(received) == 200
    assert received == sorted(received)
    assert received[-1] == 199  # the newest frame survives; the oldest ones went


def test_closed_queue_hands_out_what_it_holds_then_none():
    queue = FrameQueue(maxsize=2)
    for index in range(3):
        queue.put(blank_frame(index))
    queue.close()
    queue.put(blank_frame(9))
    assert [queue.get(0).index, queue.get(0).index] == [1, 2]
    assert queue.get(timeout=0.01) is None
    assert queue.dropped == 1


def test_wait_for_room_returns_once_a_frame_is_taken_and_false_when_closed():
    queue = FrameQueue(maxsize=1)
    queue.put(blank_frame(0))
    assert queue.wait_for_room(timeout=0.05) is False
    threading.Timer(0.05, queue.get).start()
    assert queue.wait_for_room(timeout=5.0) is True
    assert len(queue) == 0 and queue.dropped == 0
    queue.close()
    assert queue.wait_for_room(timeout=5.0) is False


# Video files.


def consume_fast_replay(
    clip: Path,
    queue_size: int,
    seconds_per_frame: float,
    after_each: Callable[[FrameSource, int], None] = lambda source, taken: None,
) -> tuple[list[Frame], FrameSource]:
    """Replay `clip` as fast as possible into a consumer taking `seconds_per_frame` a frame,
    calling `after_each(source, frames taken)` after each; the frames and the stopped source."""
    camera = CameraConfig(id="cam1", source=str(clip), pacing="fast", queue_size=queue_size)
    queue = FrameQueue(camera.queue_size)
    source = FrameSource(camera, queue)
    source.start()
    frames = []
    while (frame := queue.get(timeout=5.0)) is not None:
        frames.append(frame)
        time.sleep(seconds_per_frame)
        after_each(source, len(frames))
        if source.finished and len(queue) == 0:
            break
    source.stop()
    return frames, source


def test_fast_replay_reads_a_frame_only_when_the_queue_has_room(tmp_path):
    # A frame read ahead and held until there is room would carry a capture time older than
    # the replay makes it, and inflate every capture-to-alert latency.
    read_ahead = []
    frames, _ = consume_fast_replay(
        write_clip(tmp_path / "clip.mp4", frames=12),
        queue_size=1,
        seconds_per_frame=0.05,
        after_each=lambda source, taken: read_ahead.append(source.health().frames_in - taken),
    )

    assert len(frames) == 12
    assert max(read_ahead) == 1 and min(read_ahead) == 0  # one frame ahead, then none at the end


def test_file_source_fast_replay_delivers_every_frame_to_a_slow_consumer(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=30)
    frames, source = consume_fast_replay(clip, queue_size=2, seconds_per_frame=0.005)

    assert [f.index for f in frames] == list(range(30))
    assert {f.camera_id for f in frames} == {"cam1"}
    assert frames[0].image.shape == (120, 160, 3)
    captured = [f.captured_at for f in frames]
    assert captured == sorted(captured) and abs(captured[0] - time.time()) < 60
    # The slow consumer takes 5 ms a frame; the scene moves at the clip's 25 fps all the same.
    assert np.diff([f.scene_time for f in frames]) == pytest.approx(0.04, abs=1e-5)
    assert frames[0].scene_time == frames[0].captured_at
    health = source.health()
    assert health.finished and health.frames_in == 30 and health.frames_dropped == 0


def test_file_source_realtime_replay_follows_the_file_frame_rate(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=25, fps=25.0)
    camera = CameraConfig(id="cam1", source=str(clip), pacing="realtime")
    queue = FrameQueue(camera.queue_size)
    source = FrameSource(camera, queue)
    started = time.monotonic()
    source.start()
    frames = drain(queue, until=lambda: source.finished)
    elapsed = time.monotonic() - started
    source.stop()

    health = source.health()
    assert source.finished
    assert len(frames) + health.frames_skipped_late + health.frames_dropped == 25
    assert elapsed > 0.6  # 25 frames at 25 fps take about one second, not a few milliseconds
    assert frames[-1].captured_at - frames[0].captured_at > 0.5


def test_looping_file_starts_again_at_the_end(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    camera = CameraConfig(id="cam1", source=str(clip), pacing="fast", loop=True)
    queue = FrameQueue(camera.queue_size)
    source = FrameSource(camera, queue)
    source.start()
    frames = [queue.get(timeout=5.0) for _ in range(12)]
    source.stop()
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(12))
    assert not source.finished


def test_missing_file_finishes_with_an_error_instead_of_crashing(tmp_path):
    camera = CameraConfig(id="cam1", source=str(tmp_path / "absent.mp4"))
    source = FrameSource(camera, FrameQueue(2))
    source.start()
    assert wait_until(lambda: source.finished, timeout=5)
    source.stop()
    health = source.health()
    assert not health.connected and health.frames_in == 0
    assert "absent.mp4" in health.error


# A live stream: multipart MJPEG over HTTP, as IP cameras serve it.


class MjpegServer:
    """Serves an endless MJPEG stream at http://127.0.0.1:PORT/stream.mjpg; can go away, stall
    (keep the connection open but send nothing), or slip in corrupt frames."""

    def __init__(self, port: int = 0):
        self.stalled = threading.Event()
        self.corrupt_every = 0
        jpegs = []
        for i in range(10):
            image = np.full((96, 128, 3), 20 * i, np.uint8)
            jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                while server.running:
                    if server.stalled.is_set():
                        time.sleep(0.02)
                        continue
                    sent += 1
                    part = jpegs[sent % 10]
                    if server.corrupt_every and sent % server.corrupt_every == 0:
                        part = b"\xff\xd8" + bytes(200)  # a JPEG that is not one
                    header = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(part)}"
                    try:
                        self.wfile.write(header.encode() + b"\r\n\r\n" + part + b"\r\n")
                    except OSError:
                        return
                    time.sleep(0.02)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.running = True
        self._server = Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.running = False
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def mjpeg_server() -> Iterator[MjpegServer]:
    server = MjpegServer()
    yield server
    if server.running:
        server.close()


def stream_camera(url: str) -> CameraConfig:
    return CameraConfig(id="gate", source=url, stall_timeout_s=1.0, reconnect_max_s=0.5)


def test_stream_that_goes_away_is_reconnected_when_it_comes_back(mjpeg_server):
    camera = stream_camera(mjpeg_server.url)
    queue = FrameQueue(camera.queue_size)
    source = FrameSource(camera, queue)
    source.start()
    try:
        assert wait_until(lambda: source.health().frames_in >= 5, timeout=10)
        assert source.health().connected

        port = mjpeg_server.port
        mjpeg_server.close()
        assert wait_until(lambda: not source.health().connected, timeout=10)
        assert wait_until(lambda: source.health().reconnects >= 2, timeout=10)
        before = source.health().frames_in

        restarted = MjpegServer(port)
        try:
            assert wait_until(lambda: source.health().frames_in >= before + 5, timeout=15)
            health = source.health()
            assert health.connected and not health.finished
            assert health.fps_in > 0 and health.last_frame_age_s < 5
        finally:
            restarted.close()
    finally:
        source.stop()
    assert queue.get(timeout=0).camera_id == "gate"


def test_stalled_stream_is_reopened(mjpeg_server):
    source = FrameSource(stream_camera(mjpeg_server.url), FrameQueue(4))
    source.start()
    try:
        assert wait_until(lambda: source.health().frames_in >= 3, timeout=10)
        mjpeg_server.stalled.set()
        assert wait_until(lambda: source.health().reconnects >= 1, timeout=10)
        assert source.health().error == "stream stalled"
        mjpeg_server.stalled.clear()
        before = source.health().frames_in
        assert wait_until(lambda: source.health().frames_in > before + 3, timeout=10)
    finally:
        source.stop()


def test_corrupt_frames_are_skipped_and_counted(mjpeg_server):
    mjpeg_server.corrupt_every = 4
    queue = FrameQueue(100)
    source = FrameSource(stream_camera(mjpeg_server.url), queue)
    source.start()
    try:
        assert wait_until(lambda: source.health().frames_corrupt >= 3, timeout=10)
        health = source.health()
        assert health.connected and health.reconnects == 0
    finally:
        source.stop()
    frames = drain(queue, until=lambda: True, timeout=1)
    assert frames and all(f.image.shape == (96, 128, 3) for f in frames)


def test_stream_that_never_answers_is_retried_with_backoff_and_stops_promptly():
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = FrameSource(stream_camera(f"http://127.0.0.1:{port}/stream.mjpg"), FrameQueue(2))
    source.start()
    assert wait_until(lambda: source.health().reconnects >= 2, timeout=10)
    source.stop(timeout=5)
    health = source.health()
    assert not health.connected and not health.finished and health.frames_in == 0
    assert "cannot open" in health.error
    assert json.loads(json.dumps(health.to_dict()))["camera_id"] == "gate"

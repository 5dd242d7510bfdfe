"""The daemon: cameras -> detect -> read -> track -> match -> alert, stages joined by bounded queues.

Each camera has a capture thread (edge.sources) feeding a drop-oldest frame queue, and a worker
thread that runs detection, reading and tracking on that camera's frames. Finished vehicle passes
are matched against the live hotlist; activations go to the alert publisher, which journals them
before sending, so alerts are never dropped by a full queue: only frames are.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.alerts import AlertPublisher, encode_evidence
from edge.calibration import Calibration, RegionOfInterest, default_calibration, load_calibration
from edge.config import CameraConfig, DetectorConfig, EdgeConfig, ReaderConfig, load_config
from edge.detect import make_detector, make_still_fallback, moved
from edge.hotlist import HotlistWatcher, RepeatAlerts, alerting_hits, plausible_misreads
from edge.motion import MotionGate, merge_overlapping
from edge.plates import holds_digit
from edge.read import make_reader
from edge.sources import FrameQueue, FrameSource, SourceKind, source_kind
from edge.track import PlateTracker
from edge.types import (
    Activation,
    Box,
    Detection,
    Detector,
    Frame,
    PlateRead,
    Reader,
    VehicleRead,
    box_iou,
)

logger = logging.getLogger(__name__)

ReadCallback = Callable[[VehicleRead], None]
AlertCallback = Callable[[Activation, str, float], None]

_CROP_MARGIN = 0.08
"""Fraction of the box width (twice that of its height) added around a detection before
reading."""
_VIEW_MARGINS = (_CROP_MARGIN, _CROP_MARGIN / 2, _CROP_MARGIN * 1.5)
"""A one-line plate is read from three crops of its box (`Reader.read_views`): a single crop's
framing (a bolt or frame edge at a side, a character cut short) misleads the reader more often
than three agreeing ones. Measured end to end on the shared photos with the run-5 reader
(models/README.md): exact reads 72 -> 80 % held out, 88 -> 92 % on the reader's training photos;
synthetic UK plates 87 -> 89 %."""

_LIVE_BACKLOG_FRAMES = 1
"""Frames a live camera's worker may fall behind before it skips detection to catch up: one,
because a full search can take longer than a frame and the cheaper tracked-only searches after
it catch up (see `tracking.full_search_every`)."""
MIN_PLATE_CHARS = 2
"""Shorter reads are no registration (the shortest, e.g. UK dateless 'A 1', have two
characters): a lone character is a fragment of a plate or of other text."""
_MAX_TWO_LINE_CHARS = 8
"""Two-line plates hold at most this many characters (UK 7): more is two lines of other text."""
_TWO_LINE_MIN_CONFIDENCE = 0.5
"""Two stacked lines read side by side are taken for one plate from this confidence up."""
_SAME_PLATE_IOU = 0.5
"""Boxes of two detectors overlapping this much frame the same plate."""
_TILE_BELOW_SCALE = 1.0
"""A still the whole-photo search takes down in size (to under this scale) is searched in tiles
too (`detector.still_tiles`). Tiling only photos taken down to under half (over 2,560 px) read
the held-out photos widened threefold (`read_eval --degrade wide`) 82 of 101 against 84, and
the shared photos alike (build/tile_gate_rule.md)."""
_TILE_OVERLAP = 0.25
"""Neighbouring tiles share this fraction of a tile: a plate cut by one tile's edge is whole in
the next unless it is wider than that, and a plate so wide the whole-photo search finds."""


def reading_box(box: Box, image_shape: tuple[int, ...], margin: float = _CROP_MARGIN) -> Box:
    """The detection's box with the small margin the reader is given, clipped to the image."""
    x, y, w, h = box
    mx, my = int(w * margin) + 1, int(h * margin * 2) + 1
    height, width = image_shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(width, x + w + mx), min(height, y + h + my)
    return (x0, y0, x1 - x0, y1 - y0)


def plate_crop(image: np.ndarray, box: Box, margin: float = _CROP_MARGIN) -> np.ndarray:
    """The detection's crop with a small margin, clipped to the image."""
    x, y, w, h = reading_box(box, image.shape, margin)
    return image[y : y + h, x : x + w]


def side_by_side(lines: Sequence[np.ndarray]) -> np.ndarray:
    """A two-line plate's lines (crops, top first) laid out as one line, as the reader reads:
    each scaled to the first one's height, a gap of a third of it between them."""
    height = lines[0].shape[0]
    scaled = [
        cv2.resize(line, (max(1, round(line.shape[1] * height / line.shape[0])), height))
        for line in lines
    ]
    background = np.median(np.concatenate([line.reshape(-1, 3) for line in scaled]), axis=0)
    gap = np.empty((height, max(1, height // 3), 3), np.uint8)
    gap[:] = background.astype(np.uint8)
    pieces = [piece for line in scaled for piece in (line, gap)][:-1]
    return np.hstack(pieces)


def _centre_inside(box: Box, window: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return window[0] <= cx < window[0] + window[2] and window[1] <= cy < window[1] + window[3]


def _clip_boxes(boxes: Sequence[Box], offset: tuple[int, int], size: tuple[int, int]) -> list[Box]:
    """Full-frame boxes moved into a crop at `offset` of `size`, clipped; empty ones dropped."""
    dx, dy = offset
    width, height = size
    clipped = []
    for x, y, w, h in boxes:
        x0, y0 = max(0, x - dx), max(0, y - dy)
        x1, y1 = min(width, x + w - dx), min(height, y + h - dy)
        if x1 > x0 and y1 > y0:
            clipped.append((x0, y0, x1 - x0, y1 - y0))
    return clipped


def _tile_starts(length: int, side: int) -> list[int]:
    """Where tiles of `side` start along `length`, overlapping by `_TILE_OVERLAP`, the last
    ending at the edge."""
    if length <= side:
        return [0]
    stride = max(1, int(side * (1 - _TILE_OVERLAP)))
    return [*range(0, length - side, stride), length - side]


@dataclass(frozen=True, slots=True)
class PlateFinding:
    detection: Detection
    read: PlateRead


def plate_likeness(read: PlateRead) -> tuple[bool, float]:
    """Sort key of reads that compete to be the plate (`PlateFinder.find`, a two-line
    candidate's fallback): a digit, then confidence."""
    return holds_digit(read.text), read.confidence


class PlateFinder:
    """Detection in one camera's region of interest, then reading of candidate boxes."""

    def __init__(
        self,
        detector: Detector,
        reader: Reader,
        min_confidence: float,
        calibration: Calibration,
        *,
        fallback: Detector | None = None,
        fallback_below: float | None = None,
        tiles: bool = False,
    ):
        self.detector = detector
        self.reader = reader
        self.min_confidence = min_confidence
        self.calibration = calibration
        self.roi = RegionOfInterest(calibration)
        self.fallback = fallback
        """Stills only: searches a photo again where no read of the detector's boxes reaches
        `fallback_below` (`detector.still_fallback`)."""
        self.fallback_below = min_confidence if fallback_below is None else fallback_below
        self.tiles = tiles
        """Stills only: a large photo is searched in tiles at its own pixels too
        (`detector.still_tiles`)."""

    def detect(
        self, image: np.ndarray, regions: Sequence[Box] | None = None, *, pad_to: int = 0
    ) -> list[Detection]:
        """Plates in the region of interest, or only in its parts that overlap `regions`
        (overlapping regions are searched once, joined; with `pad_to`, packed into one input
        padded to that many network pixels each way).

        The parts are searched at the scale of the whole region of interest, so a part costs its
        share of the whole.
        """
        return self._detect_with(self.detector, image, regions, pad_to)

    def _detect_with(
        self, detector: Detector, image: np.ndarray, regions: Sequence[Box] | None, pad_to: int
    ) -> list[Detection]:
        roi_image, (dx, dy) = self.roi.crop(image)
        scale = detector.scale_for(roi_image.shape)
        roi_height, roi_width = roi_image.shape[:2]
        if regions is None:
            windows: Sequence[Box] = [(0, 0, roi_width, roi_height)]
        else:
            windows = merge_overlapping(_clip_boxes(regions, (dx, dy), (roi_width, roi_height)))
        return self._kept(detector.detect_parts(roi_image, windows, scale, pad_to=pad_to), dx, dy)

    def _kept(self, detections: Sequence[Detection], dx: int, dy: int) -> list[Detection]:
        """Detections in the region of interest's crop, moved to the frame: those of a
        calibrated plate height whose box lies in the region."""
        low, high = self.calibration.plate_height_px
        found = []
        for detection in detections:
            if low <= detection.text_height <= high:
                in_frame = moved(detection, dx, dy)
                if self.roi.contains(in_frame.box):
                    found.append(in_frame)
        return found

    def _detect_in_tiles(self, image: np.ndarray) -> list[Detection]:
        """Plates in a still larger than the whole-photo search takes in, where small plates are
        lost: the region of interest in overlapping tiles, each searched at the image's own
        pixels (a tile's side is what the detector takes the whole photo down to). Nothing for a
        photo the whole search sees at full size or larger."""
        roi_image, (dx, dy) = self.roi.crop(image)
        whole_scale = self.detector.scale_for(roi_image.shape)
        if whole_scale >= _TILE_BELOW_SCALE:
            return []
        side = round(whole_scale * max(roi_image.shape[:2]))
        height, width = roi_image.shape[:2]
        tiles = [
            (x, y, min(side, width), min(side, height))
            for y in _tile_starts(height, side)
            for x in _tile_starts(width, side)
        ]
        return self._kept(self.detector.detect_parts(roi_image, tiles, 1.0), dx, dy)

    def read(self, image: np.ndarray, detection: Detection) -> PlateRead | None:
        if detection.lines:
            read = self._read_two_lines(image, detection)
        else:
            views = [self._crop(image, detection.box, margin) for margin in _VIEW_MARGINS]
            read = self.reader.read_views(views)
        if (
            read is None
            or read.confidence < self.min_confidence
            or len(read.text) < MIN_PLATE_CHARS
        ):
            return None
        return read

    def _read_two_lines(self, image: np.ndarray, detection: Detection) -> PlateRead | None:
        """A two-line plate's registration, read with its lines side by side. When they do not
        read as one (a US plate's state name above its characters looks like two lines; a
        square blob may be a one-line plate seen whole), the most confident read of the whole
        box or of either line, a read holding a digit first (a state name has none)."""
        joined = self.reader.read_views(
            [
                side_by_side([self._crop(image, line, margin) for line in detection.lines])
                for margin in _VIEW_MARGINS
            ]
        )
        if (
            joined is not None
            and joined.confidence >= _TWO_LINE_MIN_CONFIDENCE
            and len(joined.text) <= _MAX_TWO_LINE_CHARS
        ):
            return joined
        crops = [self._crop(image, box) for box in (detection.box, *detection.lines)]
        reads = [read for read in map(self.reader.read, crops) if read is not None]
        return max(reads, key=plate_likeness, default=None)

    def _crop(self, image: np.ndarray, box: Box, margin: float = _CROP_MARGIN) -> np.ndarray:
        return self.calibration.rectify_plate(plate_crop(image, box, margin))

    def candidates(
        self, image: np.ndarray, read: Callable[[np.ndarray, Detection], PlateRead | None]
    ) -> list[tuple[Detection, PlateRead | None]]:
        """Each box found in a still image with `read`'s read of it (None: no plate read). Where
        none reads at `fallback_below`, the fallback detector searches the photo too and its
        boxes that overlap none found already (IoU under 0.5) are read as well. With `tiles`, a
        large photo's tiles are searched too (`_detect_in_tiles`), and their new boxes read."""
        found = [(detection, read(image, detection)) for detection in self.detect(image)]
        if self.fallback is not None and not any(
            r is not None and r.confidence >= self.fallback_below for _, r in found
        ):
            self._read_new(self._detect_with(self.fallback, image, None, 0), image, read, found)
        if self.tiles:
            self._read_new(self._detect_in_tiles(image), image, read, found)
        return found

    @staticmethod
    def _read_new(
        detections: Sequence[Detection],
        image: np.ndarray,
        read: Callable[[np.ndarray, Detection], PlateRead | None],
        found: list[tuple[Detection, PlateRead | None]],
    ) -> None:
        """Reads into `found` the `detections` that overlap none of its boxes (IoU under 0.5)."""
        for detection in detections:
            if all(box_iou(detection.box, d.box) < _SAME_PLATE_IOU for d, _ in found):
                found.append((detection, read(image, detection)))

    def find(self, image: np.ndarray) -> list[PlateFinding]:
        """Every plate read in a still image: reads holding a digit first, then the others, each
        most confident first. Every UK format has a digit; the words around a plate (a US state
        name above it, a dealer's name, a road sign) mostly have none. Measured on the shared
        photos: the labelled plate is the first read in 92 % of the training split's photos
        instead of 90 %, 83 % held out instead of 82 %."""
        findings = [
            PlateFinding(detection, read)
            for detection, read in self.candidates(image, self.read)
            if read is not None
        ]
        return sorted(findings, key=lambda f: plate_likeness(f.read), reverse=True)


class CameraWorker:
    """Runs one camera's frames through detection, reading and tracking."""

    def __init__(
        self,
        camera: CameraConfig,
        config: EdgeConfig,
        detector: Detector,
        reader: Reader,
        on_vehicle: Callable[[VehicleRead], None],
    ):
        self.camera = camera
        self.queue = FrameQueue(camera.queue_size)
        self.source = FrameSource(camera, self.queue)
        self.calibration = (
            load_calibration(camera.calibration, camera_id=camera.id)
            if camera.calibration
            else default_calibration(camera.id)
        )
        self.finder = PlateFinder(detector, reader, config.reader.min_confidence, self.calibration)
        self.motion = MotionGate(self.calibration) if config.tracking.motion_gate else None
        self.tracker = PlateTracker(camera.id, config.tracking, self.calibration)
        self.on_vehicle = on_vehicle
        self.keeps_up_with_live = not (
            source_kind(camera.source) is SourceKind.FILE and camera.pacing == "fast"
        )
        """Live and real-time sources skip detection when they fall behind; fast replay detects
        on every frame."""
        self.frames_processed = 0
        self.frames_skipped_still = 0
        self.frames_skipped_busy = 0
        self.frames_tracked_only = 0
        """Frames searched only around the plates already tracked (see `full_search_every`)."""
        self.frames_searched_again = 0
        """Frames in which a plate just tracked was not found and its window was searched
        again, padded (see `detector.retry_input_side`)."""
        self.retry_input_side = config.detector.retry_input_side
        self.full_search_every = config.tracking.full_search_every
        self._searches = 0
        self._last_frame: Frame | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        self.source.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.source.stop()
        self.queue.close()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            frame = self.queue.get(timeout=0.2)
            if frame is None:
                if self._stopping.is_set() or (self.source.finished and len(self.queue) == 0):
                    break
                self._emit(self.tracker.finished(self._scene_now()))
                continue
            try:
                self._process(frame)
            except Exception:
                logger.exception(
                    "camera %s: frame %d could not be processed", frame.camera_id, frame.index
                )
        self._emit(self.tracker.flush())

    def _scene_now(self) -> float:
        """The scene time now, while no frame arrives: the last frame's, plus the time since."""
        if self._last_frame is None:
            return time.time()
        return self._last_frame.scene_time + time.time() - self._last_frame.captured_at

    def _process(self, frame: Frame) -> None:
        self._last_frame = frame
        self.frames_processed += 1
        if self.keeps_up_with_live and len(self.queue) > _LIVE_BACKLOG_FRAMES:
            # Newer frames are waiting: detecting on this one would only add latency.
            self.frames_skipped_busy += 1
        else:
            moving = self.motion.moving_regions(frame.image) if self.motion is not None else None
            if moving == []:
                self.frames_skipped_still += 1
            else:
                self._detect_and_read(frame, self._search_windows(frame, moving))
        self._emit(self.tracker.finished(frame.scene_time))

    def _search_windows(self, frame: Frame, moving: list[Box] | None) -> list[Box] | None:
        """Where to detect in this frame: on every `full_search_every`th frame searched, the
        moving regions (None: the whole region of interest); on the others, around the plates
        already tracked (none tracked: nowhere)."""
        full_search = self._searches % self.full_search_every == 0
        self._searches += 1
        if full_search:
            return moving
        self.frames_tracked_only += 1
        return self.tracker.search_windows(frame.index)

    def _detect_and_read(self, frame: Frame, windows: Sequence[Box] | None) -> None:
        detections = self.finder.detect(frame.image, windows)
        if self.retry_input_side:
            detections = self._with_plates_missed(frame, detections)
        for track_id, detection in self.tracker.update(frame, detections):
            read = self.finder.read(frame.image, detection)
            self.tracker.add_read(track_id, frame, detection, read)

    def _with_plates_missed(self, frame: Frame, detections: list[Detection]) -> list[Detection]:
        """This frame's detections, with the windows of plates tracked in the last frames that
        none of them matches searched again, packed into one padded input: the text detector
        misses real plates that fill a small input. What the first search found in those
        windows (often a fragment of the plate) gives way to what the second finds."""
        missed = self.tracker.windows_missed(frame.index, detections)
        if not missed:
            return detections
        self.frames_searched_again += 1
        kept = [d for d in detections if not any(_centre_inside(d.box, w) for w in missed)]
        return kept + self.finder.detect(frame.image, missed, pad_to=self.retry_input_side)

    def _emit(self, vehicles: Sequence[VehicleRead]) -> None:
        for vehicle in vehicles:
            self.on_vehicle(vehicle)


class Pipeline:
    """The whole daemon, usable in-process (tests, benchmarks) or from `anpr-edge run`."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        on_read: ReadCallback | None = None,
        on_alert: AlertCallback | None = None,
    ):
        self.config = config
        self.on_read = on_read
        self.on_alert = on_alert
        self.hotlists = HotlistWatcher(
            config.hotlists.paths,
            config.hotlists.reload_interval_s,
            max_distance=config.hotlists.max_distance,
            misread_doubt_below=config.hotlists.misread_doubt_below,
        )
        self.repeat_alerts = RepeatAlerts(config.tracking.repeat_window_s)
        self.publisher = AlertPublisher(config.alerts)
        self.detector, self.reader = make_detector(config.detector), make_reader(config.reader)
        self.workers = [
            CameraWorker(camera, config, self.detector, self.reader, self._on_vehicle)
            for camera in config.cameras
        ]
        self._match_lock = threading.Lock()
        self._stop = threading.Event()
        self.reads = 0
        self.alerts = 0

    def _on_vehicle(self, vehicle: VehicleRead) -> None:
        with self._match_lock:
            self.reads += 1
            logger.debug(
                "camera %s: read %s (%.2f) track %d",
                vehicle.camera_id,
                vehicle.read.text,
                vehicle.read.confidence,
                vehicle.track_id,
            )
            if self.on_read is not None:
                self.on_read(vehicle)
            alternatives = [text for text, _ in vehicle.read.alternatives]
            hits = self.hotlists.current.match(
                vehicle.read.text, alternatives, max_distance=self.config.hotlists.max_distance
            )
            hits = plausible_misreads(hits, vehicle.read, self.config.hotlists.misread_doubt_below)
            hits = alerting_hits(hits, self.config.hotlists.fuzzy_alert)
            new_hits = self.repeat_alerts.new_hits(vehicle.camera_id, hits, vehicle.first_seen)
            if len(new_hits) < len(hits):
                logger.info(
                    "camera %s: read %s, a possible misread of %s alerted from this camera "
                    "within %.0f s, not alerted again",
                    vehicle.camera_id,
                    vehicle.read.text,
                    ", ".join(hit.entry.vrm for hit in hits if hit not in new_hits),
                    self.config.tracking.repeat_window_s,
                )
            if not new_hits:
                return
            hits = new_hits
            self.repeat_alerts.alerted(vehicle.camera_id, hits, vehicle.last_seen)
            activation = Activation(vehicle=vehicle, hits=tuple(hits))
            alert_id = self.publisher.publish(activation, encode_evidence(vehicle))
            published_at = time.time()
            self.alerts += 1
            logger.info("alert %s to %s for %s", alert_id, activation.role, vehicle.read.text)
            if self.on_alert is not None:
                self.on_alert(activation, alert_id, published_at)

    def stats(self) -> dict:
        cameras = [worker.source.health().to_dict() for worker in self.workers]
        return {
            "cameras": cameras,
            "dropped": sum(worker.queue.dropped for worker in self.workers),
            "frames_processed": sum(worker.frames_processed for worker in self.workers),
            "frames_skipped_still": sum(worker.frames_skipped_still for worker in self.workers),
            "frames_skipped_busy": sum(worker.frames_skipped_busy for worker in self.workers),
            "frames_tracked_only": sum(worker.frames_tracked_only for worker in self.workers),
            "frames_searched_again": sum(w.frames_searched_again for w in self.workers),
            "reads": self.reads,
            "alerts": self.alerts,
            "hotlist_entries": len(self.hotlists.current),
        }

    def stop(self) -> None:
        self._stop.set()

    def run(self, max_seconds: float | None = None) -> None:
        """Block until every source has finished and its frames are processed, or until stop()."""
        self.publisher.start()
        self.hotlists.start()
        self._warm_up()
        for worker in self.workers:
            worker.start()
        started = time.monotonic()
        next_health = started + self.config.logging.health_interval_s
        try:
            while not self._stop.is_set() and not all(w.done for w in self.workers):
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
                if time.monotonic() >= next_health:
                    self._report_health()
                    next_health += self.config.logging.health_interval_s
                self._stop.wait(0.1)
        finally:
            self._shutdown()

    def _warm_up(self) -> None:
        """One detection and one read before the cameras start: onnxruntime's first run of a
        model at a new size takes two to three times as long (it allocates), which would back up
        a live camera's first frames. A whole 16:9 frame gives the detector the input size of any
        16:9 camera's full search."""
        frame = np.zeros((720, 1280, 3), np.uint8)
        self.detector.detect(frame)
        self.reader.read_views([frame[:40, :160]] * len(_VIEW_MARGINS))

    def _report_health(self) -> None:
        for worker in self.workers:
            health = worker.source.health().to_dict()
            unhealthy = not health["connected"] and not health["finished"]
            logger.log(
                logging.WARNING if unhealthy else logging.DEBUG,
                "camera health %s",
                json.dumps(health),
            )
            self.publisher.publish_status({"type": "camera_health", **health})

    def _shutdown(self) -> None:
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join(timeout=10)
        self.hotlists.stop()
        self.publisher.close()


def run_daemon(config: EdgeConfig, max_seconds: float | None = None) -> int:
    """`anpr-edge run`: until the sources end, Ctrl-C or SIGTERM; in-flight work is flushed."""
    root = logging.getLogger()
    root.setLevel(min(root.level, logging.getLevelName(config.logging.level)))
    pipeline = Pipeline(config)

    def _request_stop(signum: int, _frame: object) -> None:
        logger.warning("signal %s: stopping, flushing in-flight reads and alerts", signum)
        pipeline.stop()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    pipeline.run(max_seconds=max_seconds)
    print(json.dumps({"event": "stopped", **pipeline.stats()}), file=sys.stderr)
    return 0


def read_images(images: Sequence[Path], *, as_json: bool, config_path: Path | None) -> int:
    """`anpr-edge read`: plates in still images; exit 1 if any image could not be read."""
    config = load_config(config_path) if config_path is not None else None
    detector_config = config.detector if config else DetectorConfig()
    reader_config = config.reader if config else ReaderConfig()
    finder = PlateFinder(
        make_detector(detector_config, stills=True),
        make_reader(reader_config),
        reader_config.min_confidence,
        default_calibration("still"),
        fallback=make_still_fallback(detector_config),
        tiles=detector_config.still_tiles,
    )
    status = 0
    for path in images:
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as error:
            print(f"anpr-edge read: {path}: cannot read: {error.strerror}", file=sys.stderr)
            status = 1
            continue
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            print(f"anpr-edge read: {path}: not an image file OpenCV can decode", file=sys.stderr)
            status = 1
            continue
        plates = [
            {
                "text": f.read.text,
                "confidence": round(f.read.confidence, 4),
                "box": [int(v) for v in f.detection.box],
                "uk_format": f.read.plate_format,
                "char_confidences": [round(c, 4) for c in f.read.char_confidences],
                "alternatives": [[text, round(c, 4)] for text, c in f.read.alternatives],
            }
            for f in finder.find(image)
        ]
        if as_json:
            print(json.dumps({"image": str(path), "plates": plates}), flush=True)
        else:
            found = ", ".join(f"{p['text']} ({p['confidence']:.2f})" for p in plates) or "no plate"
            print(f"{path}: {found}", flush=True)
    return status

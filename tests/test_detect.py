"""Plate detection: synthetic composites at known boxes, odd inputs, backends, shared photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.synthetic.render import render_plate
from edge.config import DetectorConfig
from edge.detect import (
    DEFAULT_PLATE_MODEL,
    DEFAULT_TEXT_MODEL,
    MorphologyDetector,
    TextLineDetector,
    make_detector,
)
from edge.types import Box, Detection, Detector, box_iou
from models.build.fetch_text_detector import BUILT_SHA256

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def textured_background(width: int, height: int, seed: int) -> np.ndarray:
    """Road-scene-like clutter: smooth shading, grain, and a few darker car-body blocks."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(60, 190, size=(6, 8, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    for _ in range(4):
        x, y = int(rng.integers(0, width - 100)), int(rng.integers(0, height - 60))
        w, h = int(rng.integers(60, 300)), int(rng.integers(30, 160))
        cv2.rectangle(image, (x, y), (x + w, y + h), rng.uniform(20, 120, 3).tolist(), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def plate_scene(
    vrm: str = "AB12CDE",
    char_height_px: int = 32,
    at: tuple[int, int] = (400, 300),
    size: tuple[int, int] = (1280, 720),
    seed: int = 0,
    rear: bool = True,
) -> tuple[np.ndarray, Box]:
    """A rendered UK plate pasted on a textured background, and its box."""
    image = textured_background(*size, seed=seed)
    plate = render_plate(vrm, rear=rear, char_height_px=char_height_px)
    x, y = at
    h, w = plate.shape[:2]
    image[y : y + h, x : x + w] = plate
    return image, (x, y, w, h)


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    names = ("plate", "text", "morphology")
    return {name: make_detector(DetectorConfig(backend=name)) for name in names}


@pytest.fixture(scope="module")
def text_detector(detectors) -> Detector:
    return detectors["text"]


@pytest.mark.parametrize(
    ("char_height_px", "at", "rear"),
    [(20, (150, 500), False), (32, (700, 200), True), (60, (300, 250), True)],
)
@pytest.mark.parametrize("backend", ["plate", "text"])
def test_network_detectors_find_a_pasted_plate(detectors, backend, char_height_px, at, rear):
    image, truth = plate_scene(char_height_px=char_height_px, at=at, rear=rear, seed=char_height_px)
    detections = detectors[backend].detect(image)
    assert detections, "no plate found"
    assert box_iou(detections[0].box, truth) >= 0.5
    assert len(detections) <= 3, f"too many false candidates: {detections}"


def test_morphology_detector_finds_a_pasted_plate(detectors):
    image, truth = plate_scene(char_height_px=32, size=(960, 540), seed=3)
    detections = detectors["morphology"].detect(image)
    assert max(box_iou(d.box, truth) for d in detections) >= 0.3


@pytest.mark.parametrize("backend", ["plate", "text", "morphology"])
def test_detections_are_ordered_scored_and_inside_the_image(detectors, backend):
    image, _ = plate_scene(char_height_px=28, size=(800, 450), at=(100, 200), seed=5)
    detections = detectors[backend].detect(image)
    assert detections
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for detection in detections:
        assert isinstance(detection, Detection)
        assert 0.0 <= detection.score <= 1.0
        x, y, w, h = detection.box
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= 800 and y + h <= 450


def test_grayscale_and_bgra_images_are_handled(text_detector):
    image, truth = plate_scene(char_height_px=36, size=(960, 540), seed=7)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    for variant in (gray, gray[..., None], bgra):
        detections = text_detector.detect(variant)
        assert detections and box_iou(detections[0].box, truth) >= 0.5


@pytest.mark.parametrize("backend", ["plate", "text", "morphology"])
@pytest.mark.parametrize(
    "odd",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((5, 5, 3), np.uint8),
        np.zeros((720, 3, 3), np.uint8),
        np.zeros((64, 64, 2), np.uint8),
        np.zeros((4,), np.uint8),
        np.full((120, 200, 3), 255, np.uint8),
        np.random.default_rng(1).normal(128, 200, (100, 150, 3)),
        None,
    ],
    ids=["empty", "tiny", "thin", "two-channel", "1-d", "blank", "float-noise", "none"],
)
def test_odd_inputs_give_a_list_without_raising(detectors, backend, odd):
    detections = detectors[backend].detect(odd)
    assert isinstance(detections, list)
    if odd is None or odd.ndim != 3 or min(odd.shape[:2]) < 16 or odd.shape[2] == 2:
        assert detections == []


def test_a_small_image_is_upscaled_enough_to_find_its_plate(text_detector):
    image, truth = plate_scene(char_height_px=14, size=(320, 180), at=(60, 70), seed=9)
    detections = text_detector.detect(image)
    assert detections and box_iou(detections[0].box, truth) >= 0.4


@pytest.mark.parametrize("backend", ["plate", "text", "morphology"])
def test_a_part_searched_at_the_whole_image_scale_finds_the_plate_where_the_whole_does(
    detectors, backend
):
    image, truth = plate_scene(char_height_px=30, size=(1280, 720), at=(700, 400), seed=11)
    detector = detectors[backend]
    whole = max(detector.detect(image), key=lambda d: box_iou(d.box, truth))
    x0, y0 = 560, 330
    part = image[y0 : y0 + 260, x0 : x0 + 420]
    found = detector.detect(part, detector.scale_for(image.shape))
    best = max(found, key=lambda d: box_iou((d.box[0] + x0, d.box[1] + y0, *d.box[2:]), truth))
    moved = (best.box[0] + x0, best.box[1] + y0, *best.box[2:])
    assert box_iou(moved, whole.box) >= 0.8


def test_make_detector_by_name():
    live, stills = make_detector(DetectorConfig()), make_detector(DetectorConfig(), stills=True)
    assert isinstance(live, TextLineDetector) and live.model == DEFAULT_PLATE_MODEL
    assert stills.model == DEFAULT_TEXT_MODEL
    assert (live.input_long_side, stills.input_long_side) == (800, 1280)
    text = make_detector(DetectorConfig(backend="text"))
    assert text.model == DEFAULT_TEXT_MODEL and text.input_long_side == 960
    smaller = make_detector(DetectorConfig(backend="plate", input_long_side=640), stills=True)
    assert smaller.model == DEFAULT_PLATE_MODEL and smaller.input_long_side == 1280
    assert isinstance(make_detector(DetectorConfig(backend="morphology")), MorphologyDetector)


def test_unknown_backend_is_a_clear_config_error():
    with pytest.raises(ValidationError, match="'default', 'plate', 'text' or 'morphology'"):
        DetectorConfig(backend="yolo")


def test_missing_model_file_names_the_fetch_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.onnx.*models/README.md"):
        make_detector(DetectorConfig(model=tmp_path / "absent.onnx"))


def test_bundled_model_is_the_one_the_fetch_script_rebuilds():
    assert hashlib.sha256(DEFAULT_TEXT_MODEL.read_bytes()).hexdigest() == BUILT_SHA256


def _shared_labels(count_per_set: int) -> list[tuple[Path, Box]]:
    labels = []
    for set_name in ("openalpr-eu-dev", "openalpr-us-dev"):
        for label in sorted((SHARED_DATA / set_name).glob("*.txt"))[:count_per_set]:
            name, x, y, w, h, _ = label.read_text(encoding="utf-8").strip().split("\t")
            labels.append((label.parent / name, (int(x), int(y), int(w), int(h))))
    return labels


@pytest.mark.parametrize("backend", ["plate", "text"])
def test_recall_on_a_handful_of_shared_photos(detectors, backend):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared photos absent ({SHARED_DATA})")
    labels = _shared_labels(count_per_set=3)
    found = 0
    for image_path, truth in labels:
        detections = detectors[backend].detect(cv2.imread(str(image_path)))
        found += any(box_iou(d.box, truth) >= 0.3 for d in detections)
    assert found >= 0.8 * len(labels), f"found {found} of {len(labels)} plates"


@pytest.mark.parametrize("char_height_px", [20, 32, 48])
def test_a_two_line_plate_is_one_detection_with_its_two_lines(text_detector, char_height_px):
    image = textured_background(1280, 720, seed=char_height_px)
    plate = render_plate("AB12CDE", rear=True, char_height_px=char_height_px, two_line=True)
    x, y = 500, 300
    h, w = plate.shape[:2]
    image[y : y + h, x : x + w] = plate
    truth = (x, y, w, h)
    two_line = [d for d in text_detector.detect(image) if d.lines]
    assert len(two_line) == 1
    detection = two_line[0]
    assert box_iou(detection.box, truth) >= 0.4
    upper, lower = detection.lines
    assert upper[1] < lower[1]
    assert upper[1] + upper[3] <= lower[1] + 1  # cut apart, not overlapping
    assert detection.text_height == upper[3] < h


def test_a_one_line_plate_has_no_lines(text_detector):
    image, truth = plate_scene(char_height_px=30, seed=12)
    detection = max(text_detector.detect(image), key=lambda d: box_iou(d.box, truth))
    assert detection.lines == () and detection.text_height == detection.box[3]


def test_packing_small_searches_finds_shared_plates_that_fill_them(text_detector):
    """Windows one plate height around real plates, in photos resized to 1280x720 frames and
    searched at the frame's scale as the daemon searches around tracked plates (with two other
    windows of the frame): the text detector misses some unless they are packed into an input
    padded to 480 (as the daemon searches again where a tracked plate was not found)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared photos absent ({SHARED_DATA})")
    labels = _shared_labels(count_per_set=40)
    found = {"alone": 0, "packed": 0}
    for image_path, (x, y, w, h) in labels:
        photo = cv2.imread(str(image_path))
        sx, sy = 1280 / photo.shape[1], 720 / photo.shape[0]
        frame = cv2.resize(photo, (1280, 720), interpolation=cv2.INTER_AREA)
        truth = (x * sx, y * sy, w * sx, h * sy)
        x0, y0 = max(0, round(truth[0] - truth[3])), max(0, round(truth[1] - truth[3]))
        window = (x0, y0, round(truth[2] + 2 * truth[3]), round(3 * truth[3]))
        others = [(0, 0, window[2], window[3]), (1280 - window[2], 720 - window[3], *window[2:])]
        for name, pad_to in (("alone", 0), ("packed", 480)):
            detections = text_detector.detect_parts(
                frame, [window, *others], text_detector.scale_for(frame.shape), pad_to=pad_to
            )
            found[name] += any(box_iou(d.box, truth) >= 0.3 for d in detections)
    assert found["packed"] >= len(labels) - 1, found
    assert found["packed"] > found["alone"], found


def test_packed_parts_find_each_plate_where_it_is_in_the_image(text_detector):
    """Three windows around plates of a frame, packed into one padded input: each plate is
    found at its place in the frame, as the part searched alone finds it."""
    image = textured_background(1920, 1080, seed=21)
    truths = []
    for vrm, at, char_height_px in (
        ("AB12CDE", (200, 700), 24),
        ("XY51ZZT", (1100, 300), 32),
        ("M123ABC", (1500, 820), 20),
    ):
        plate = render_plate(vrm, rear=True, char_height_px=char_height_px)
        h, w = plate.shape[:2]
        image[at[1] : at[1] + h, at[0] : at[0] + w] = plate
        truths.append((at[0], at[1], w, h))
    windows = [(x - h, y - h, w + 2 * h, 3 * h) for x, y, w, h in truths]
    scale = text_detector.scale_for(image.shape)
    found = text_detector.detect_parts(image, windows, scale, pad_to=480)
    alone = text_detector.detect_parts(image, windows, scale)
    for truth in truths:
        best = max(found, key=lambda d: box_iou(d.box, truth))
        assert box_iou(best.box, truth) >= 0.5
        assert box_iou(best.box, max(alone, key=lambda d: box_iou(d.box, truth)).box) >= 0.8
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("backend", ["plate", "text", "morphology"])
def test_parts_too_small_or_outside_the_image_give_nothing(detectors, backend):
    image, _ = plate_scene(char_height_px=28, size=(640, 360), seed=4)
    for pad_to in (0, 480):
        parts = [(10, 10, 5, 5), (700, 400, 50, 50)]
        assert detectors[backend].detect_parts(image, parts, 1.0, pad_to=pad_to) == []
        assert detectors[backend].detect_parts(image, [], 1.0, pad_to=pad_to) == []

"""PlateFinder: detection limited to the moving regions (and the region of interest), then reads."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.synthetic.render import render_plate
from edge.calibration import Calibration, default_calibration
from edge.config import DetectorConfig, EdgeConfig, ReaderConfig
from edge.detect import (
    DEFAULT_PLATE_MODEL,
    DEFAULT_TEXT_MODEL,
    MorphologyDetector,
    make_detector,
    make_still_fallback,
)
from edge.pipeline import (
    CameraWorker,
    Pipeline,
    PlateFinder,
    PlateFinding,
    _tile_starts,
    plate_likeness,
)
from edge.read import make_reader
from edge.types import Detection, Frame, MatchKind, PlateRead, VehicleRead


def street(width: int = 1280, height: int = 720) -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.integers(70, 150, (height, width, 3), dtype=np.uint8)


def with_plate(image: np.ndarray, vrm: str, at: tuple[int, int]) -> tuple[int, int, int, int]:
    plate = render_plate(vrm, rear=True, char_height_px=30)
    x, y = at
    h, w = plate.shape[:2]
    image[y : y + h, x : x + w] = plate
    return (x, y, w, h)


@pytest.fixture(scope="module")
def finder() -> PlateFinder:
    return PlateFinder(
        make_detector(DetectorConfig()),
        make_reader(ReaderConfig()),
        min_confidence=ReaderConfig().min_confidence,
        calibration=default_calibration("cam"),
    )


def centre_inside(box, region) -> bool:
    x, y, w, h = box
    rx, ry, rw, rh = region
    return rx <= x + w / 2 <= rx + rw and ry <= y + h / 2 <= ry + rh


def test_only_plates_inside_the_moving_regions_are_found_and_read(finder):
    image = street()
    left = with_plate(image, "AB12CDE", (120, 300))
    right = with_plate(image, "XY61ZZT", (860, 420))
    everywhere = finder.detect(image)
    assert any(centre_inside(d.box, left) for d in everywhere)
    assert any(centre_inside(d.box, right) for d in everywhere)

    around_right = (right[0] - 150, right[1] - 120, right[2] + 300, right[3] + 240)
    found = finder.detect(image, [around_right])
    assert found and all(centre_inside(d.box, around_right) for d in found)
    reads = [finder.read(image, d) for d in found]
    assert "XY61ZZT" in {r.text for r in reads if r is not None}


@pytest.mark.parametrize(("text", "expected"), [("N", None), ("7", None), ("A1", "A1")])
def test_a_lone_character_is_no_plate(finder, text, expected):
    image = street()
    box = with_plate(image, text, (300, 300))
    assert (
        finder.reader.read(image[box[1] : box[1] + box[3], box[0] : box[0] + box[2]]).text == text
    )
    read = finder.read(image, Detection(box=box, score=1.0))
    assert (read and read.text) == expected


def test_a_plate_comes_before_a_word_read_more_confidently(finder):
    image = street()
    with_plate(image, "TEXAS", (400, 200))
    with_plate(image, "CW22 FNH", (400, 320))
    reads = [(f.read.text, f.read.confidence) for f in finder.find(image)]
    assert {"TEXAS", "CW22FNH"} <= {text for text, _ in reads}
    assert reads[0][0] == "CW22FNH", reads


def test_reads_holding_a_digit_rank_first_then_by_confidence():
    def finding(text: str, confidence: float) -> PlateFinding:
        return PlateFinding(Detection((0, 0, 40, 10), 1.0), PlateRead(text, confidence, ()))

    found = [
        finding("TEXAS", 0.99),
        finding("CW22FNH", 0.7),
        finding("A1", 0.9),
        finding("EXIT", 0.2),
    ]
    ranked = [
        f.read.text for f in sorted(found, key=lambda f: plate_likeness(f.read), reverse=True)
    ]
    assert ranked == ["A1", "CW22FNH", "TEXAS", "EXIT"]


def test_regions_outside_the_region_of_interest_find_nothing():
    roi = np.array([[0, 0], [640, 0], [640, 720], [0, 720]], np.int32)
    finder = PlateFinder(
        make_detector(DetectorConfig()),
        make_reader(ReaderConfig()),
        min_confidence=0.3,
        calibration=Calibration(camera_id="cam", roi=roi),
    )
    image = street()
    right = with_plate(image, "XY61ZZT", (860, 420))
    assert finder.detect(image, [(right[0] - 50, right[1] - 50, 400, 200)]) == []
    assert finder.detect(image, []) == []


@pytest.mark.parametrize("vrm", ["AB12CDE", "K123ABC", "ABZ1234"])
def test_a_two_line_plate_is_read_as_one_registration(finder, vrm):
    image = street()
    plate = render_plate(vrm, rear=True, char_height_px=30, two_line=True)
    h, w = plate.shape[:2]
    image[300 : 300 + h, 500 : 500 + w] = plate
    reads = [finding.read.text for finding in finder.find(image)]
    assert vrm in reads


def test_a_word_above_a_plate_is_not_read_into_it(finder):
    """US plates print the state's name above the characters, at a similar size: the two look
    like a two-line plate, and the characters must still be read on their own."""
    image = street()
    characters = render_plate("BT71ZHM", char_height_px=30)
    header = render_plate("TEXAS", char_height_px=28)
    image[300 : 300 + characters.shape[0], 500 : 500 + characters.shape[1]] = characters
    image[262 : 262 + header.shape[0], 500 : 500 + header.shape[1]] = header
    reads = [finding.read.text for finding in finder.find(image)]
    assert "BT71ZHM" in reads
    assert not any("TEXAS" in text for text in reads)


def _still_finder(
    first, fallback, fallback_below: float | None = None, *, tiles: bool = False
) -> PlateFinder:
    return PlateFinder(
        first,
        make_reader(ReaderConfig()),
        ReaderConfig().min_confidence,
        default_calibration("still"),
        fallback=fallback,
        fallback_below=fallback_below,
        tiles=tiles,
    )


def test_a_still_whose_detector_reads_no_plate_is_searched_by_the_fallback():
    image = street()
    plate = with_plate(image, "KH05OKX", (500, 300))
    finds_nothing = MorphologyDetector(min_score=2.0)
    assert finds_nothing.detect(image) == []
    fallback = make_still_fallback(DetectorConfig())

    found = _still_finder(finds_nothing, fallback).find(image)
    assert [f.read.text for f in found] == ["KH05OKX"]
    assert centre_inside(found[0].detection.box, plate)
    assert _still_finder(finds_nothing, None).find(image) == []


def test_the_fallback_is_not_searched_where_a_plate_was_read():
    """The stills detector keeps to one box here, so it reads one of the two plates: the
    fallback, which would find the other, is not asked."""
    image = street()
    with_plate(image, "KH05OKX", (200, 300))
    with_plate(image, "CW22FNH", (800, 300))
    first = make_detector(DetectorConfig(max_detections=1), stills=True)
    fallback = make_still_fallback(DetectorConfig())
    assert len(_still_finder(fallback, None).find(image)) == 2

    reads = [f.read.text for f in _still_finder(first, fallback).find(image)]
    assert len(reads) == 1 and reads[0] in {"KH05OKX", "CW22FNH"}


def test_boxes_both_detectors_find_are_read_once():
    image = street()
    with_plate(image, "KH05OKX", (500, 300))
    text, plate = (
        make_detector(DetectorConfig(), stills=True),
        make_still_fallback(DetectorConfig()),
    )
    finder = _still_finder(text, plate, fallback_below=1.01)  # searched though a plate was read

    candidates = finder.candidates(image, finder.read)
    assert [read.text for _, read in candidates if read is not None] == ["KH05OKX"]


class _CountingParts:
    """A detector that notes the parts and scales it is asked to search."""

    def __init__(self, detector):
        self.detector = detector
        self.searches: list[tuple[int, float]] = []

    def scale_for(self, shape):
        return self.detector.scale_for(shape)

    def detect(self, image, scale=None):
        return self.detector.detect(image, scale)

    def detect_parts(self, image, parts, scale, *, pad_to=0):
        self.searches.append((len(parts), scale))
        return self.detector.detect_parts(image, parts, scale, pad_to=pad_to)


def test_a_small_plate_in_a_large_still_is_found_in_tiles():
    """A 2800 x 1800 photo is searched whole at under half size, where a plate 53 px wide is
    too small to find; its tiles, searched at the photo's own pixels, find and read it."""
    image = street(2800, 1800)
    plate = render_plate("KH05OKX", rear=True, char_height_px=8)
    height, width = plate.shape[:2]
    image[900 : 900 + height, 1300 : 1300 + width] = plate
    detector = _CountingParts(make_detector(DetectorConfig(), stills=True))

    assert _still_finder(detector, None, tiles=False).find(image) == []
    found = _still_finder(detector, None, tiles=True).find(image)
    assert [f.read.text for f in found] == ["KH05OKX"]
    assert centre_inside(found[0].detection.box, (1300, 900, width, height))
    whole_scale = detector.scale_for(image.shape)
    assert whole_scale < 0.5 and detector.searches[-1] == (6, 1.0)  # 3 x 2 tiles, own pixels


def test_a_still_of_ordinary_size_is_not_tiled():
    image = street()
    with_plate(image, "KH05OKX", (500, 300))
    detector = _CountingParts(make_detector(DetectorConfig(), stills=True))
    found = _still_finder(detector, None, tiles=True).find(image)
    assert [f.read.text for f in found] == ["KH05OKX"]
    assert len(detector.searches) == 1  # the whole photo only


@pytest.mark.parametrize(
    ("length", "side"), [(2800, 1280), (1800, 1280), (5000, 1000), (900, 1280)]
)
def test_tiles_cover_the_photo_overlapping_by_a_quarter(length, side):
    starts = _tile_starts(length, side)
    assert starts[0] == 0 and starts[-1] + min(side, length) == length
    gaps = np.diff(starts)
    assert all(0 < gap <= side * 0.75 for gap in gaps)  # each overlaps the next by a quarter


@pytest.mark.parametrize(
    ("settings", "fallback_model"),
    [
        ({}, DEFAULT_PLATE_MODEL),
        ({"backend": "plate", "still_fallback": "text"}, DEFAULT_TEXT_MODEL),
        ({"backend": "morphology"}, DEFAULT_PLATE_MODEL),
        ({"backend": "plate"}, None),
        ({"still_fallback": "text"}, None),
        ({"still_fallback": "none"}, None),
    ],
)
def test_the_still_fallback_is_another_detector_or_none(settings, fallback_model):
    fallback = make_still_fallback(DetectorConfig(**settings))
    assert (fallback and fallback.model) == fallback_model


def _pipeline_with_one_entry(tmp_path, on_alert, **hotlists) -> Pipeline:
    """A pipeline (not started) on a one-entry hotlist, KH01HOK (gangs), with `hotlists`
    settings, publishing on loopback without keys."""
    hotlist = tmp_path / "hotlist.csv"
    hotlist.write_text(
        "entry_id,vrm,markers,action,information,source,added,expires\n"
        "G-1,KH01HOK,gangs,follow and stop,fictitious (test),test,2026-01-01,2099-01-01\n"
    )
    config = EdgeConfig.model_validate(
        {
            "cameras": [{"id": "cam1", "source": str(tmp_path / "unused.mp4")}],
            "hotlists": {"paths": [str(hotlist)], **hotlists},
            "alerts": {"insecure": True, "bind": "tcp://127.0.0.1:0",
                       "journal": str(tmp_path / "journal.sqlite")},
        }
    )  # fmt: skip
    return Pipeline(config, on_alert=on_alert)


def _pass(text: str, confidences: tuple[float, ...], first_seen: float) -> VehicleRead:
    """A vehicle pass of camera cam1 read as `text`, seen for a second from `first_seen`."""
    image = street()
    return VehicleRead(
        camera_id="cam1",
        track_id=int(first_seen),
        read=PlateRead(text, min(confidences), confidences),
        captured_at=first_seen + 0.5,
        first_seen=first_seen,
        last_seen=first_seen + 1.0,
        box=(100, 100, 120, 30),
        plate_crop=image[100:130, 100:220],
        overview=image,
    )


def test_a_vehicle_read_again_in_part_after_its_alert_is_not_alerted_twice(tmp_path):
    alerted: list[tuple[str, str]] = []
    pipeline = _pipeline_with_one_entry(
        tmp_path,
        lambda activation, alert_id, at: alerted.append(
            (activation.vehicle.read.text, activation.hits[0].kind)
        ),
    )
    pipeline.publisher.start()
    try:
        pipeline._on_vehicle(_pass("KH01HOK", (0.9,) * 7, first_seen=1000.0))
        pipeline._on_vehicle(_pass("H01HOK", (0.9,) * 6, first_seen=1002.0))  # its track broke
        pipeline._on_vehicle(_pass("H01HOK", (0.9,) * 6, first_seen=1030.0))  # a later pass
    finally:
        pipeline.publisher.close()

    assert pipeline.reads == 3
    assert alerted == [("KH01HOK", MatchKind.EXACT), ("H01HOK", MatchKind.POSSIBLE_MISREAD)]


@pytest.mark.parametrize(("doubt_below", "alerts"), [(None, 2), (0.999, 1)])
def test_with_misread_doubt_a_character_read_for_sure_is_no_possible_misread(
    tmp_path, doubt_below, alerts
):
    alerted: list[str] = []
    pipeline = _pipeline_with_one_entry(
        tmp_path,
        lambda activation, alert_id, at: alerted.append(activation.vehicle.read.text),
        misread_doubt_below=doubt_below,
    )
    pipeline.publisher.start()
    try:
        # Another vehicle, one character from the entry, every character read for sure...
        pipeline._on_vehicle(_pass("KH01HOX", (1.0,) * 7, first_seen=1000.0))
        # ... and one whose last character the reader doubted: possibly the wanted one.
        pipeline._on_vehicle(_pass("KH01HOX", (1.0,) * 6 + (0.7,), first_seen=2000.0))
    finally:
        pipeline.publisher.close()
    assert alerted == ["KH01HOX"] * alerts


@pytest.mark.parametrize(("field", "alerts"), [("alternatives", 1), ("reader_alternatives", 0)])
def test_only_what_disagreeing_reads_saw_is_matched_not_the_readers_own_alternatives(
    tmp_path, field, alerts
):
    alerted: list[str] = []
    pipeline = _pipeline_with_one_entry(
        tmp_path, lambda activation, alert_id, at: alerted.append(activation.vehicle.read.text)
    )
    # Read two characters from the entry; the alternative is one from it.
    vehicle = _pass("KH01HXX", (0.9,) * 7, first_seen=1000.0)
    read = replace(vehicle.read, **{field: (("KH01HOX", 0.2),)})
    pipeline.publisher.start()
    try:
        pipeline._on_vehicle(replace(vehicle, read=read))
    finally:
        pipeline.publisher.close()
    assert alerted == ["KH01HXX"] * alerts


class BlindToSmallSearches:
    """The real text detector, except that a part searched alone finds nothing: as the text
    detector often does on real plates that fill a small window (tests/test_detect.py measures
    it on the shared photos; rendered plates are found either way)."""

    def __init__(self, detector):
        self.detector = detector

    def scale_for(self, shape):
        return self.detector.scale_for(shape)

    def detect(self, image, scale=None):
        return self.detector.detect(image, scale)

    def detect_parts(self, image, parts, scale, *, pad_to=0):
        whole = [(0, 0, image.shape[1], image.shape[0])]
        if not pad_to and list(parts) != whole:
            return []
        return self.detector.detect_parts(image, parts, scale, pad_to=pad_to)


@pytest.mark.parametrize("retry_input_side", [480, 0])
def test_a_tracked_plate_missed_in_its_window_is_searched_again_padded(tmp_path, retry_input_side):
    config = EdgeConfig.model_validate(
        {
            "cameras": [{"id": "cam1", "source": str(tmp_path / "unused.mp4")}],
            "tracking": {"motion_gate": False, "full_search_every": 3},
            "detector": {"backend": "text", "retry_input_side": retry_input_side},
        }
    )
    detector = BlindToSmallSearches(make_detector(config.detector))
    worker = CameraWorker(
        config.cameras[0], config, detector, make_reader(config.reader), lambda vehicle: None
    )
    sighted = []
    for index in range(6):  # a plate moving right: searched whole on frames 0 and 3
        image = street()
        with_plate(image, "AB12CDE", (300 + 12 * index, 300))
        frame = Frame("cam1", index, 1000.0 + index / 25, 1000.0 + index / 25, image)
        worker._detect_and_read(frame, worker._search_windows(frame, None))
        (track,) = worker.tracker._tracks.values()
        if track.recent[-1][0] == index:
            sighted.append(index)
    if retry_input_side:
        assert sighted == [0, 1, 2, 3, 4, 5]
        assert worker.frames_searched_again == 4
    else:
        assert sighted == [0, 3]
        assert worker.frames_searched_again == 0

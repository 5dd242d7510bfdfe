"""Tracking and read fusion on synthetic frames: one read per vehicle pass, right text and way."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.calibration import Calibration, default_calibration
from edge.config import EdgeConfig, TrackingConfig
from edge.track import PlateTracker, _crop_quality, fuse_reads
from edge.types import Detection, Frame, PlateRead, VehicleRead

FPS = 25.0
T0 = 1_700_000_000.0
SIZE = (480, 640)  # height, width


def plate_read(text: str, char_confidence: float = 0.9) -> PlateRead:
    return PlateRead(
        text=text, confidence=char_confidence, char_confidences=(char_confidence,) * len(text)
    )


def frame_with(index: int, boxes: list[tuple[int, int, int, int]]) -> Frame:
    image = np.full((*SIZE, 3), 90, np.uint8)
    for x, y, w, h in boxes:
        cv2.rectangle(image, (x, y), (x + w, y + h), (255, 255, 255), -1)
        cv2.putText(image, "AB12", (x + 2, y + h - 3), cv2.FONT_HERSHEY_PLAIN, h / 14, (0, 0, 0))
    at = T0 + index / FPS
    return Frame(camera_id="cam1", index=index, captured_at=at, scene_time=at, image=image)


def approaching_box(step: int, x: int = 200) -> tuple[int, int, int, int]:
    """A plate moving down the image and growing: a vehicle driving towards the camera."""
    height = 12 + step // 3
    return (x, 60 + 10 * step, int(height * 4.7), height)


class Reader:
    """Stands in for the OCR stage: the true text with some characters misread."""

    def __init__(self, truth: dict[int, str], error_rate: float, seed: int = 1):
        self.truth = truth
        self.error_rate = error_rate
        self.random = random.Random(seed)
        self.calls = 0

    def read(self, x: int) -> PlateRead:
        self.calls += 1
        text = list(self.truth[x])
        confidences = [0.9] * len(text)
        for i in range(len(text)):
            if self.random.random() < self.error_rate:
                text[i] = self.random.choice("0OQD8B")
                confidences[i] = 0.4
        return PlateRead("".join(text), min(confidences), tuple(confidences))


def run(
    tracker: PlateTracker, frames: list[tuple[Frame, list[Detection]]], reader: Reader
) -> list[tuple[float, VehicleRead]]:
    """Drive the tracker as the pipeline does; (emission time, read) for everything emitted."""
    emitted = []
    for frame, detections in frames:
        for track_id, detection in tracker.update(frame, detections):
            tracker.add_read(track_id, frame, detection, reader.read(detection.box[0] // 100))
        emitted += [(frame.captured_at, v) for v in tracker.finished(frame.scene_time)]
    emitted += [(None, v) for v in tracker.flush()]
    return emitted


def pass_of_one_vehicle(steps: int = 30, idle_after: int = 40, x: int = 200):
    frames = []
    for step in range(steps):
        box = approaching_box(step, x)
        frames.append((frame_with(step, [box]), [Detection(box, 0.9)]))
    for index in range(steps, steps + idle_after):
        frames.append((frame_with(index, []), []))
    return frames


def test_noisy_reads_of_one_vehicle_fuse_into_one_correct_read_with_direction():
    config = TrackingConfig(reads_per_track=7, early_emit_reads=0)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    reader = Reader({2: "AB12CDE"}, error_rate=0.2)

    emitted = run(tracker, pass_of_one_vehicle(), reader)

    assert len(emitted) == 1
    emitted_at, vehicle = emitted[0]
    assert vehicle.read.text == "AB12CDE"
    assert vehicle.direction == "towards"
    assert vehicle.camera_id == "cam1"
    assert vehicle.frames_seen == 30
    assert emitted_at is not None and emitted_at - vehicle.last_seen > config.max_gap_s
    assert vehicle.plate_crop.shape[:2] == (vehicle.box[3], vehicle.box[2])
    assert 1 < reader.calls <= 4 * config.reads_per_track


def test_agreeing_reads_emit_early_while_the_vehicle_is_still_in_view():
    config = TrackingConfig(reads_per_track=5, early_emit_reads=3)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    reader = Reader({2: "AB12CDE"}, error_rate=0.0)

    emitted = run(tracker, pass_of_one_vehicle(), reader)

    assert len(emitted) == 1
    emitted_at, vehicle = emitted[0]
    assert vehicle.read.text == "AB12CDE"
    assert emitted_at < T0 + 29 / FPS  # before the last sighting
    assert reader.calls == 3  # no OCR once the read is settled


@pytest.mark.parametrize(
    "confidence, plate_format, reads_to_settle",
    [(0.99, "current", 2), (0.99, None, 3), (0.9, "current", 3)],
)
def test_two_confident_reads_of_a_uk_plate_settle_a_track(
    confidence, plate_format, reads_to_settle
):
    """Two spaced reads that agree, each at least 95 % sure and fitting a UK format, settle the
    track without a third; a less sure read, or one fitting no UK format, waits for three."""
    tracker = PlateTracker("cam1", TrackingConfig(early_emit_reads=3), default_calibration("cam1"))
    read = PlateRead("AB12CDE", confidence, (confidence,) * 7, plate_format=plate_format)
    reads = []
    emitted = []
    for frame, detections in pass_of_one_vehicle():
        for track_id, detection in tracker.update(frame, detections):
            reads.append(frame.index)
            tracker.add_read(track_id, frame, detection, read)
        emitted += [(frame.index, v.read.text) for v in tracker.finished(frame.scene_time)]

    assert len(reads) == reads_to_settle
    assert emitted == [(reads[-1], "AB12CDE")]  # as soon as the last read is in


def test_two_vehicles_in_view_together_give_two_reads():
    config = TrackingConfig(early_emit_reads=0)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    reader = Reader({0: "AB12CDE", 4: "XY65ZZT"}, error_rate=0.1)
    frames = []
    for step in range(30):
        boxes = [approaching_box(step, x=20), approaching_box(step, x=420)]
        frames.append((frame_with(step, boxes), [Detection(b, 0.9) for b in boxes]))
    frames += [(frame_with(i, []), []) for i in range(30, 70)]

    emitted = run(tracker, frames, reader)

    assert sorted(v.read.text for _, v in emitted) == ["AB12CDE", "XY65ZZT"]
    assert len({v.track_id for _, v in emitted}) == 2


def test_a_track_broken_by_missed_detections_is_still_one_read():
    config = TrackingConfig(max_gap_s=0.2, early_emit_reads=0, repeat_window_s=5.0)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    reader = Reader({2: "AB12CDE"}, error_rate=0.0)
    frames = []
    for step in range(40):
        missed = 12 <= step < 22  # 0.4 s without a detection: the first track ends
        box = approaching_box(step)
        frames.append((frame_with(step, [box]), [] if missed else [Detection(box, 0.9)]))

    emitted = run(tracker, frames, reader)

    assert [v.read.text for _, v in emitted] == ["AB12CDE"]


@pytest.mark.parametrize(
    "read_beside",
    [
        "NIJ43I",  # part of the plate: boxed short as it enters the picture
        "NIJ43LB",  # the whole plate, read with look-alikes (1->L, 8->B) from a stray box
    ],
)
def test_part_or_look_alike_of_a_plate_tracked_on_its_own_is_not_a_second_read(read_beside):
    # The plate is tracked apart from itself for two frames: the stray track's read would match
    # a hotlist entry NIJ4318 as a possible misread and alert a second time for one vehicle.
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    reader = Reader({2: "NIJ4318", 4: read_beside, 5: "AB12"}, error_rate=0.0)
    frames = []
    for step in range(20):
        whole = approaching_box(step)
        detections = [Detection(whole, 0.9)]
        if step in (3, 4):  # a part, beside it
            detections.append(Detection(approaching_box(step, x=450), 0.9))
        if step in (6, 7, 8):  # another vehicle's short plate, contained in nothing
            detections.append(Detection(approaching_box(step, x=550), 0.9))
        frames.append((frame_with(step, [d.box for d in detections]), detections))
    frames += [(frame_with(i, []), []) for i in range(20, 60)]

    emitted = run(tracker, frames, reader)

    assert sorted(v.read.text for _, v in emitted) == ["AB12", "NIJ4318"]


def test_time_windows_run_on_scene_time_not_on_replay_speed():
    # A clip replayed as fast as possible: 1.6 s of scene between two vehicles stopping at one
    # spot goes by in 0.4 s of capture time. On capture time the second would continue the
    # first's track (already read, so never read itself).
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    box = (200, 200, 94, 20)
    emitted = []
    for index in range(80):
        in_view = index < 10 or 50 <= index < 60
        image = frame_with(index, [box] if in_view else []).image
        frame = Frame("cam1", index, T0 + index / 100, T0 + index / FPS, image)
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)] if in_view else []):
            tracker.add_read(
                track_id, frame, detection, plate_read("AB12CDE" if index < 10 else "XY65ZZT")
            )
        emitted += tracker.finished(frame.scene_time)
    emitted += tracker.flush()

    assert [v.read.text for v in emitted] == ["AB12CDE", "XY65ZZT"]
    assert emitted[1].first_seen == pytest.approx(T0 + 50 / 100)  # reported as captured


def test_a_road_marking_tracked_now_and_then_does_not_catch_the_next_plate_near_it():
    # The detector fires on a lane marking (never legible) until frame 20; a plate appears 4
    # plate heights away 18 frames later. Linked to the marking's track it would be judged
    # against the marking's sightings from frame 0.
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    marking, plate = (400, 300, 60, 40), (300, 390, 94, 20)
    started = {}
    for index in range(60):
        boxes = [marking] if index < 20 else [plate] if index >= 38 else []
        frame = frame_with(index, boxes)
        for track_id, detection in tracker.update(frame, [Detection(b, 0.9) for b in boxes]):
            started.setdefault(track_id, index)
            legible = detection.box == plate
            tracker.add_read(track_id, frame, detection, plate_read("AB12CDE") if legible else None)
        tracker.finished(frame.scene_time)

    assert sorted(started.values()) == [0, 38]


@pytest.mark.parametrize(
    "first_read",
    [
        "KPV",  # the plate entering the picture, read in part
        "PO0OKPV",  # the plate read with a look-alike (O for 0) where the reader was unsure
    ],
)
def test_a_first_read_of_part_of_the_plate_or_with_a_look_alike_does_not_hold_back_the_early_emit(
    first_read,
):
    # Three whole reads agree after it: it says nothing against them.
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    texts = iter([first_read, "PO00KPV", "PO00KPV", "PO00KPV", "PO00KPV"])
    emitted, reads = [], 0
    for step in range(30):
        box = approaching_box(step)
        frame = frame_with(step, [box])
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)]):
            reads += 1
            tracker.add_read(track_id, frame, detection, plate_read(next(texts)))
        emitted += [(step, v) for v in tracker.finished(frame.scene_time)]

    assert [v.read.text for _, v in emitted] == ["PO00KPV"]
    assert reads == 4 and emitted[0][0] < 29  # while the vehicle is still in view


@pytest.mark.parametrize("plate_format", ["current", None])
def test_a_receding_plate_read_twice_is_emitted_once_no_later_crop_is_worth_reading(plate_format):
    # Its first crops are its largest; after two agreeing reads every later crop is too small to
    # be worth a read. A UK plate is emitted a few sightings later, while still in view; a read
    # that fits no UK format (it may be part of a plate) waits for the track to end.
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    read = PlateRead("PO00KPV", 0.9, (0.9,) * 7, plate_format=plate_format)
    emitted, reads = [], []
    for step in range(40):
        height = max(12, 40 - 4 * step)
        box = (200, 300 - 6 * step, int(height * 4.7), height) if step < 12 else None
        frame = frame_with(step, [box] if box else [])
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)] if box else []):
            reads.append(step)
            tracker.add_read(track_id, frame, detection, read)
        emitted += [(step, v) for v in tracker.finished(frame.scene_time)]

    assert reads == [0, 2]
    assert [v.read.text for _, v in emitted] == ["PO00KPV"]
    if plate_format:
        assert emitted[0][0] == 2 + 4  # four sightings after the last read, still in view
    else:
        assert emitted[0][0] > 11 + TrackingConfig().max_gap_s * FPS  # after the track ended


def test_fast_mover_whose_boxes_never_overlap_stays_one_track():
    config = TrackingConfig(early_emit_reads=0)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    reader = Reader({0: "AB12CDE", 1: "AB12CDE", 2: "AB12CDE", 3: "AB12CDE", 4: "AB12CDE"}, 0.0)
    frames = []
    for step in range(8):
        box = (30 + 60 * step, 200, 94, 20)  # 60 px a frame, boxes 94 px wide: IoU 0 at times
        frames.append((frame_with(step, [box]), [Detection(box, 0.9)]))
    frames += [(frame_with(i, []), []) for i in range(8, 40)]

    emitted = run(tracker, frames, reader)

    assert len(emitted) == 1
    assert emitted[0][1].frames_seen == 8


def test_calibrated_lane_direction_decides_towards_or_away():
    upwards = Calibration(camera_id="cam1", towards=(0.0, -1.0))
    tracker = PlateTracker("cam1", TrackingConfig(early_emit_reads=0), upwards)
    emitted = run(tracker, pass_of_one_vehicle(), Reader({2: "AB12CDE"}, 0.0))
    assert emitted[0][1].direction == "away"


@pytest.mark.parametrize("approaching", [True, False])
def test_direction_follows_the_plate_through_boxes_found_in_part_or_with_their_surround(
    approaching,
):
    """A third of the boxes, the last ones among them, are a plate found in part (half its
    height) or with its surround (half again as tall): the trend still says which way it goes."""
    tracker = PlateTracker("cam1", TrackingConfig(early_emit_reads=0), default_calibration("cam1"))
    reader = Reader({2: "AB12CDE"}, 0.0)
    frames = []
    for step in range(30):
        x, y, w, h = approaching_box(step if approaching else 29 - step)
        if step % 3 == 2 or step >= 27:
            scale = 0.5 if approaching else 1.5
            box = (x, round(y + h * (1 - scale) / 2), w, round(h * scale))
        else:
            box = (x, y, w, h)
        frames.append((frame_with(step, [box]), [Detection(box, 0.9)]))
    emitted = run(tracker, frames, reader)
    assert [v.direction for _, v in emitted] == ["towards" if approaching else "away"]


def test_track_without_legible_reads_emits_nothing():
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    for frame, detections in pass_of_one_vehicle():
        for track_id, detection in tracker.update(frame, detections):
            tracker.add_read(track_id, frame, detection, None)
        assert tracker.finished(frame.captured_at) == []
    assert tracker.flush() == []


def test_fusion_votes_each_character_and_keeps_runner_ups_as_alternatives():
    reads = [
        plate_read("AB12CDE", 0.9),
        plate_read("AB12CDF", 0.6),
        plate_read("A812CDE", 0.7),
        plate_read("AB12CD", 0.5),  # a short read loses the length vote
    ]
    fused = fuse_reads(reads)
    assert fused.text == "AB12CDE"
    assert len(fused.char_confidences) == 7
    assert fused.char_confidences[0] == pytest.approx((0.9 + 0.6 + 0.7) / 3)
    assert fused.char_confidences[6] < fused.char_confidences[0]
    alternatives = dict(fused.alternatives)
    assert {"AB12CDF", "A812CDE", "AB12CD"} <= set(alternatives)
    assert all(score < fused.confidence or text == "AB12CD" for text, score in fused.alternatives)
    assert fused.plate_format is not None


@pytest.mark.parametrize(
    ("reads", "fused_text"),
    [
        # An Italian plate, one look-alike swap from a UK current-style plate (RK61ZAL): the
        # reader kept it as read, so fusion must not force it into the UK format.
        (["RK612AL", "RK612AL", "RK6I2AL"], "RK612AL"),
        (["BA738DE", "BA738DE"], "BA738DE"),
        # Reads of a UK plate, most fitting its format: look-alike misreads are outvoted, and
        # a fused text breaking the format would be corrected back to it.
        (["AB12CDE", "A812CDE", "AB1ZCDE"], "AB12CDE"),
        (["AB12CDE", "AB12CDE", "AB12CD8"], "AB12CDE"),
    ],
)
def test_fusion_corrects_to_a_uk_format_only_when_most_reads_fit_one(reads, fused_text):
    fused = fuse_reads([plate_read(text) for text in reads])
    assert fused.text == fused_text


def test_fusion_of_one_read_keeps_it_and_shows_its_alternatives_unmatched():
    reader_saw = (("A812CDE", 0.15), ("AB12CDF", 0.04), ("A812CDF", 0.02), ("AB12CME", 0.01))
    fused = fuse_reads([replace(plate_read("AB12CDE", 0.8), alternatives=reader_saw)])
    assert fused.text == "AB12CDE"
    assert fused.confidence == pytest.approx(0.8)
    assert fused.alternatives == ()  # what hotlist matching tries: no read disagreed
    # A look-alike of the read names the same vehicle; another plate is shown once, in its UK
    # format, with the probability the reader gave it.
    assert fused.reader_alternatives == (("AB12CDF", 0.04), ("AB12CME", 0.01))


def test_fused_reader_alternatives_are_averaged_over_the_reads_and_not_repeated():
    reads = [
        replace(plate_read("AB12CDE", 0.9), alternatives=(("AB12CDF", 0.3), ("AB12CEE", 0.4))),
        replace(plate_read("AB12CDE", 0.6), alternatives=(("AB12CDF", 0.1), ("AB12CDH", 0.2))),
        plate_read("AB12CDH", 0.5),  # disagrees: its text is a matched alternative already
    ]
    fused = fuse_reads(reads)
    assert fused.text == "AB12CDE"
    assert "AB12CDH" in dict(fused.alternatives)
    assert [t for t, _ in fused.reader_alternatives] == ["AB12CEE", "AB12CDF"]
    reader_alternatives = dict(fused.reader_alternatives)
    assert reader_alternatives["AB12CDF"] == pytest.approx((0.3 * 0.9 + 0.1 * 0.6) / 2.0, abs=1e-4)
    assert reader_alternatives["AB12CEE"] == pytest.approx(0.4 * 0.9 / 2.0, abs=1e-4)


@pytest.mark.slow
def test_one_read_and_at_most_one_alert_per_vehicle_on_real_footage(tmp_path):
    """The whole daemon on a stretch of the bundled footage where a hotlisted vehicle is in view
    for 35 frames."""
    pipeline_module = pytest.importorskip(
        "edge.pipeline", reason="the daemon pipeline is not there"
    )
    read_module = pytest.importorskip("edge.read", reason="the plate reader is not there yet")
    if not read_module.DEFAULT_MODEL.exists():
        pytest.skip(f"the reader model {read_module.DEFAULT_MODEL} is not built yet")
    footage = Path(__file__).resolve().parents[1] / "benchmarks" / "footage"
    capture = cv2.VideoCapture(str(footage / "demo.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    clip = tmp_path / "stretch.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (1280, 720))
    for _ in range(100, 140):  # SM01LMF is in view in frames 102-137
        ok, image = capture.read()
        assert ok
        writer.write(image)
    writer.release()
    config = EdgeConfig.model_validate(
        {
            "cameras": [{"id": "cam1", "source": str(clip), "pacing": "fast"}],
            "hotlists": {"paths": [str(footage / "hotlist.csv")]},
            "alerts": {"insecure": True, "bind": "tcp://127.0.0.1:0",
                       "journal": str(tmp_path / "journal.sqlite")},
        }
    )  # fmt: skip
    reads: list[VehicleRead] = []
    alerted: list[str] = []
    pipeline = pipeline_module.Pipeline(
        config,
        on_read=reads.append,
        on_alert=lambda activation, alert_id, at: alerted.append(activation.vehicle.read.text),
    )
    pipeline.run(max_seconds=120)

    texts = [vehicle.read.text for vehicle in reads]
    assert len(texts) == len(set(texts)), f"a vehicle was read more than once: {texts}"
    assert len(alerted) == len(set(alerted)), f"a vehicle alerted more than once: {alerted}"
    assert "SM01LMF" in texts


def test_one_badly_sized_detection_box_does_not_break_the_track():
    config = TrackingConfig(early_emit_reads=0)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    frames = []
    for step in range(12):
        x, y, w, h = 100 + 8 * step, 200, 94, 20
        if step == 6:  # the detector clips the plate to a sliver for one frame
            x, w, h = x + 60, 30, 8
        frames.append((frame_with(step, [(x, y, w, h)]), [Detection((x, y, w, h), 0.9)]))
    frames += [(frame_with(i, []), []) for i in range(12, 50)]
    reader = Reader({1: "AB12CDE", 2: "AB12CDE"}, 0.0)

    emitted = run(tracker, frames, reader)

    assert [v.frames_seen for _, v in emitted] == [12]


def test_a_broken_track_whose_second_part_outlasts_the_repeat_window_is_still_one_read():
    config = TrackingConfig(max_gap_s=0.2, early_emit_reads=0, repeat_window_s=0.5)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    frames = []
    for step in range(70):
        box = (100 + 2 * step, 200, 94, 20)
        missed = 12 <= step < 18  # the first track ends; the second lasts 2 s
        frames.append((frame_with(step, [box]), [] if missed else [Detection(box, 0.9)]))

    emitted = run(tracker, frames, Reader({1: "AB12CDE", 2: "AB12CDE"}, 0.0))

    assert [v.read.text for _, v in emitted] == ["AB12CDE"]


def test_a_plate_cut_by_the_frame_edge_is_tracked_but_read_only_once_wholly_in_view():
    """A vehicle entering at the bottom of the picture: while its plate's box reaches the frame
    edge, a read could be of part of it, which can fit a UK format (LJE0L) and match another
    vehicle's hotlist entry."""
    tracker = PlateTracker("cam1", TrackingConfig(early_emit_reads=0), default_calibration("cam1"))
    height = SIZE[0]
    read_boxes = []
    for step in range(12):
        box = (200, height - 8 - 6 * step, 94, 20)  # moving up, the first two past the edge
        y0 = max(box[1], 0)
        clipped = (box[0], y0, box[2], min(box[1] + box[3], height) - y0)
        frame = frame_with(step, [clipped])
        for track_id, detection in tracker.update(frame, [Detection(clipped, 0.9)]):
            read_boxes.append(detection.box)
            tracker.add_read(track_id, frame, detection, plate_read("AB12CDE"))
    vehicles = tracker.flush()

    assert read_boxes and all(y + h < height for _, y, _, h in read_boxes)
    assert [v.read.text for v in vehicles] == ["AB12CDE"]
    assert vehicles[0].frames_seen == 12  # the cut sightings still belong to the track


@pytest.mark.parametrize("sightings, emitted", [(1, []), (2, []), (3, ["Z1"])])
def test_a_plate_seen_in_one_or_two_frames_and_read_once_is_not_emitted(sightings, emitted):
    """A small box seen once or twice and read once as a short dateless plate is far likelier a
    speck, a sign or a far plate read in part ("H01HOK", seen twice 1.3 s before its whole plate
    KH01HOK came near) than a vehicle; seen a third time, it is a pass and its read is emitted."""
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    box = (300, 200, 16, 9)
    reads = 0
    for index in range(sightings):
        frame = frame_with(index, [box])
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)]):
            reads += 1
            tracker.add_read(track_id, frame, detection, plate_read("Z1", 0.98))
    later = T0 + 5.0
    vehicles = tracker.finished(later) + tracker.flush()
    assert reads == (1 if sightings < 3 else 2)
    assert [v.read.text for v in vehicles] == emitted


def test_a_plate_seen_in_two_frames_whose_two_reads_agree_is_emitted():
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    read = PlateRead("AB12CDE", 0.99, (0.99,) * 7, plate_format="current")
    box = (300, 200, 94, 20)
    emitted = []
    for index in (0, 2):  # detection missed the plate in frame 1
        frame = frame_with(index, [box])
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)]):
            tracker.add_read(track_id, frame, detection, read)
        emitted += [v.read.text for v in tracker.finished(frame.scene_time)]
    assert emitted == ["AB12CDE"]


def test_a_receding_track_whose_read_budget_is_spent_is_emitted_without_waiting_for_the_end():
    """Reads that disagree fill the budget from a receding plate's largest crops; its later
    crops only shrink, so no read could change the text, and it is emitted a few sightings on."""
    config = TrackingConfig(reads_per_track=4, early_emit_reads=3)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    reader = Reader({2: "AB12CDE"}, error_rate=0.3, seed=4)  # reads that disagree
    frames = []
    for step in range(60):
        height = 40 - step // 3
        box = (200, 400 - 4 * step, int(height * 4.7), height)
        frames.append((frame_with(step, [box]), [Detection(box, 0.9)]))

    emitted = run(tracker, frames, reader)

    assert len(emitted) == 1
    emitted_at, vehicle = emitted[0]
    assert reader.calls == 4
    assert emitted_at is not None and emitted_at < T0 + 20 / FPS  # long before the last sighting
    assert vehicle.read.text == "AB12CDE"


def inside(box: tuple[int, int, int, int], window: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    wx, wy, ww, wh = window
    return wx <= x and wy <= y and x + w <= wx + ww and y + h <= wy + wh


@pytest.mark.parametrize("gap", [1, 2, 4])
def test_search_windows_hold_where_a_moving_plate_goes_next(gap):
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    for step in range(0, 12, 2):
        box = approaching_box(step)
        tracker.update(frame_with(step, [box]), [Detection(box=box, score=0.9)])
    later = 10 + gap
    windows = tracker.search_windows(later)
    assert len(windows) == 1
    assert inside(approaching_box(later), windows[0])
    far_away = (450, 20, 60, 13)
    assert not inside(far_away, windows[0])


def test_no_tracks_no_search_windows():
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    assert tracker.search_windows(0) == []


def tracker_following_a_read_plate(until_step: int, read: bool = True) -> PlateTracker:
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    for step in range(until_step + 1):
        frame, box = frame_with(step, [approaching_box(step)]), approaching_box(step)
        for track_id, detection in tracker.update(frame, [Detection(box=box, score=0.9)]):
            tracker.add_read(track_id, frame, detection, plate_read("AB12CDE") if read else None)
    return tracker


def test_a_read_plate_just_seen_and_not_found_has_its_window_searched_again():
    tracker = tracker_following_a_read_plate(until_step=8)
    missed = tracker.windows_missed(9, [])
    assert missed == tracker.search_windows(9)
    assert inside(approaching_box(9), missed[0])
    fragment = approaching_box(9)[:2] + (12, approaching_box(9)[3] // 2)
    assert tracker.windows_missed(9, [Detection(box=fragment, score=0.6)]) == missed
    elsewhere = (450, 20, 60, 13)
    assert tracker.windows_missed(9, [Detection(box=elsewhere, score=0.9)]) == missed


def test_a_plate_found_gone_for_frames_or_never_read_is_not_searched_again():
    tracker = tracker_following_a_read_plate(until_step=8)
    assert tracker.windows_missed(9, [Detection(box=approaching_box(9), score=0.9)]) == []
    assert tracker.windows_missed(12, []) == []  # last seen 4 frames before: most likely gone
    unread = tracker_following_a_read_plate(until_step=8, read=False)
    assert unread.windows_missed(9, []) == []


def test_illegible_reads_of_a_far_plate_do_not_use_up_its_read_budget():
    """A plate first detected too far away to read comes back illegible a few times; it must
    still be read once it comes near, and the reads then fused."""
    config = TrackingConfig(reads_per_track=3, early_emit_reads=0)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    legible_from = 16
    requested = []
    for step in range(34):
        box = approaching_box(step)
        frame = frame_with(step, [box])
        for track_id, detection in tracker.update(frame, [Detection(box=box, score=0.9)]):
            requested.append(step)
            read = plate_read("AB12CDE") if step >= legible_from else None
            tracker.add_read(track_id, frame, detection, read)
    legible = [step for step in requested if step >= legible_from]
    assert len(legible) >= config.reads_per_track
    assert len(requested) <= 4 * config.reads_per_track
    assert [vehicle.read.text for vehicle in tracker.flush()] == ["AB12CDE"]


def test_reads_of_a_far_plate_are_replaced_by_reads_of_its_nearer_crops():
    """An approaching plate read while still barely legible gives disagreeing part-right reads
    that fill the read budget; its nearer, larger crops are read too, their reads replace those
    of the smallest crops, and the pass is emitted as the near crops read it."""
    config = TrackingConfig(reads_per_track=3, early_emit_reads=3)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    far_reads = iter(["AB35BKJ", "ABTYSK", "AB31VRK", "ABCLCDE", "A812CQE", "AB1ZCDF"])
    emitted, near_reads = [], 0
    for frame, detections in pass_of_one_vehicle():
        for track_id, detection in tracker.update(frame, detections):
            if detection.box[3] < 16:
                read = PlateRead(next(far_reads), 0.7, (0.9, 0.9, 0.5, 0.5, 0.9, 0.9, 0.9))
            else:
                near_reads += 1
                read = PlateRead("AB12CDE", 0.99, (0.99,) * 7, plate_format="current")
            tracker.add_read(track_id, frame, detection, read)
        emitted += [v.read.text for v in tracker.finished(frame.scene_time)]
    emitted += [v.read.text for v in tracker.flush()]
    assert emitted == ["AB12CDE"]
    assert near_reads >= 2


def test_one_disagreeing_read_does_not_hold_back_three_that_agree():
    """A far crop read "AB12CDF", then three reads "AB12CDE", none sure enough to settle the
    track in two: three to one settles it while the plate is still in view."""
    tracker = PlateTracker("cam1", TrackingConfig(early_emit_reads=3), default_calibration("cam1"))
    texts = iter(["AB12CDF", "AB12CDE", "AB12CDE", "AB12CDE", "AB12CDE", "AB12CDE"])
    emitted, reads = [], []
    for frame, detections in pass_of_one_vehicle():
        for track_id, detection in tracker.update(frame, detections):
            reads.append(frame.index)
            tracker.add_read(track_id, frame, detection, plate_read(next(texts)))
        emitted += [(frame.index, v.read.text) for v in tracker.finished(frame.scene_time)]
    assert len(reads) == 4
    assert emitted == [(reads[-1], "AB12CDE")]


def test_a_plate_read_once_whose_later_crops_are_blurred_is_read_again_and_emitted_in_view():
    """At night an approaching plate's first crop can be its sharpest: its nearer ones are
    blurred by its motion, none as good. It is read again all the same, and emitted once the
    reads agree, not when its track ends."""
    tracker = PlateTracker("cam1", TrackingConfig(early_emit_reads=3), default_calibration("cam1"))
    read = PlateRead("AB12CDE", 0.9, (0.9,) * 7, plate_format="current")
    emitted, reads = [], []
    for step in range(30):
        box = approaching_box(step)
        frame = frame_with(step, [box])
        if step > 0:
            blurred = cv2.blur(frame.image, (1, 9))  # vertical motion blur
            frame = Frame(
                frame.camera_id, frame.index, frame.captured_at, frame.scene_time, blurred
            )
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)]):
            reads.append(step)
            tracker.add_read(track_id, frame, detection, read)
        emitted += [(step, v.read.text) for v in tracker.finished(frame.scene_time)]
    assert reads == [0, 4]  # the second four sightings after the first
    assert emitted == [(8, "AB12CDE")]  # four more, no crop worth reading: settled


def test_a_track_that_never_reads_stops_asking_after_its_attempts():
    config = TrackingConfig(reads_per_track=2)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    requested = 0
    for step in range(36):
        box = approaching_box(step)
        frame = frame_with(step, [box])
        for track_id, detection in tracker.update(frame, [Detection(box=box, score=0.9)]):
            requested += 1
            tracker.add_read(track_id, frame, detection, None)
    assert 0 < requested <= 4 * config.reads_per_track
    assert tracker.flush() == []


def test_a_far_plate_does_not_spend_a_small_budgets_attempts_before_it_is_legible():
    """With 2 reads a pass, 8 attempts: a plate found far away, illegible and then read in part
    ("0REH") while it is still small, keeps attempts for its nearer crops, and its pass is
    emitted as they read it, not as the part read."""
    config = TrackingConfig(reads_per_track=2)
    tracker = PlateTracker("cam1", config, default_calibration("cam1"))
    part = PlateRead("0REH", 0.68, (0.9, 0.9, 0.9, 0.85))
    whole = PlateRead("AB12CDE", 0.99, (0.99,) * 7, plate_format="current")
    emitted, requested = [], []
    for step in range(40):
        box = approaching_box(step)
        frame = frame_with(step, [box])
        for track_id, detection in tracker.update(frame, [Detection(box, 0.9)]):
            requested.append(step)
            read = None if step < 12 else part if step < 24 else whole
            tracker.add_read(track_id, frame, detection, read)
        emitted += [v.read.text for v in tracker.finished(frame.scene_time)]
    emitted += [v.read.text for v in tracker.flush()]
    assert emitted == ["AB12CDE"]
    assert len(requested) <= 4 * config.reads_per_track + 4  # a few clearly better crops past them


def test_crop_quality_grows_with_the_plate_not_with_its_boxs_padding():
    """A far plate's box is taller than its characters: quality follows the box's width."""
    image = np.full((200, 400, 3), 90, np.uint8)
    far, near = (10, 10, 40, 14), (10, 80, 120, 26)
    for x, y, w, h in (far, near):
        cv2.rectangle(image, (x, y + h // 4), (x + w, y + h - h // 4), (255, 255, 255), -1)
        cv2.putText(
            image, "AB12CDE", (x + 2, y + h - h // 4 - 2), cv2.FONT_HERSHEY_PLAIN, w / 70, (0, 0, 0)
        )
    assert _crop_quality(image, Detection(near, 0.9)) > 1.5 * _crop_quality(
        image, Detection(far, 0.9)
    )


@pytest.mark.parametrize("confidence, emitted", [(0.52, []), (0.97, ["A1"])])
def test_a_short_read_is_emitted_only_when_sure(confidence, emitted):
    """A road stripe boxed as a plate and read "G2" three times at about 0.5 is no vehicle; a
    dateless plate read "A1" with confidence is."""
    tracker = PlateTracker("cam1", TrackingConfig(), default_calibration("cam1"))
    read = PlateRead("A1", confidence, (confidence**0.5,) * 2, plate_format="dateless")
    texts = []
    for frame, detections in pass_of_one_vehicle():
        for track_id, detection in tracker.update(frame, detections):
            tracker.add_read(track_id, frame, detection, read)
        texts += [vehicle.read.text for vehicle in tracker.finished(frame.scene_time)]
    texts += [vehicle.read.text for vehicle in tracker.flush()]
    assert texts == emitted

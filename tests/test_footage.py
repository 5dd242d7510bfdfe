"""Synthetic footage: deterministic frames, ground truth that matches the pixels, the set format."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.footageset import FootageError, load_footage_set
from benchmarks.synthetic.footage import (
    HOTLIST_HEADER,
    FootageOptions,
    SyntheticClip,
    fictitious_vrm,
    is_unissued,
    write_clip,
    write_hotlist,
)
from edge.hotlist import load_hotlists
from edge.plates import uk_format
from edge.types import Marker

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "benchmarks" / "footage"
SHORT = REPO / "tests" / "fixtures" / "short"
SMALL = FootageOptions(seconds=2.4, vehicles=2, width=320, height=180, fps=10.0, zoom=1.3, seed=7)


def _yellow_pixels(image: np.ndarray) -> int:
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    return int(np.count_nonzero(cv2.inRange(hsv, (15, 120, 150), (35, 255, 255))))


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames
        frames.append(image)


def test_same_seed_gives_same_frames_and_truth_another_seed_does_not():
    first, second, other = (SyntheticClip(o) for o in (SMALL, SMALL, replace(SMALL, seed=8)))
    frames = [list(clip.frames()) for clip in (first, second, other)]
    assert len(frames[0]) == first.frame_count == 24
    assert all(np.array_equal(a, b) for a, b in zip(frames[0], frames[1], strict=True))
    assert first.truth("a.mp4") == second.truth("a.mp4")
    assert not all(np.array_equal(a, c) for a, c in zip(frames[0], frames[2], strict=True))
    assert first.truth("a.mp4").passes != other.truth("a.mp4").passes


def test_written_clip_matches_its_truth_and_loads_as_a_footage_set(tmp_path):
    options = replace(SMALL, directions=("away",))
    truth = write_clip(tmp_path, "clip", options, progress=False)
    write_hotlist(tmp_path / "hotlist.csv", [truth], unlisted=1)

    footage = load_footage_set(tmp_path)
    (clip,) = footage.clips
    assert clip.truth == truth and footage.hotlist == tmp_path / "hotlist.csv"
    frames = _video_frames(clip.video)
    assert len(frames) == truth.frames and frames[0].shape == (truth.height, truth.width, 3)
    assert truth.passes, "a 2.4 s clip with two vehicles shows at least one plate"
    for vehicle in truth.passes:
        assert 0 <= vehicle.first_frame <= vehicle.last_frame < truth.frames
        assert vehicle.start_s == pytest.approx(vehicle.first_frame / truth.fps, abs=1e-3)
        assert (vehicle.direction, vehicle.plate) == ("away", "rear")
        assert vehicle.char_height_px == pytest.approx(vehicle.plate_height_px * 79 / 111, abs=0.2)
        # A rear plate is yellow: at the pass's first frame (the plate at its largest, as it
        # drives away) the frame holds about a plate's worth of yellow, and far more than
        # before any vehicle is in view.
        plate_area = vehicle.plate_height_px**2 * 520 / 111
        assert _yellow_pixels(frames[vehicle.first_frame]) > 0.3 * plate_area
    assert _yellow_pixels(frames[0]) < 0.1 * truth.passes[0].plate_height_px ** 2 * 4.7


def test_hotlist_names_only_unissued_vrms_in_the_project_format(tmp_path):
    truth = write_clip(tmp_path, "clip", SMALL, progress=False)
    write_hotlist(tmp_path / "hotlist.csv", [truth], unlisted=0)
    with (tmp_path / "hotlist.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == HOTLIST_HEADER
    assert all(is_unissued(row[1]) for row in rows[1:])
    hotlist = load_hotlists([tmp_path / "hotlist.csv"])
    assert len(hotlist) == len(rows) - 1


def test_fictitious_vrms_fit_uk_formats_and_current_ones_are_never_issued():
    rng = np.random.default_rng(3)
    vrms = [fictitious_vrm(rng) for _ in range(300)]
    assert all(uk_format(vrm) is not None for vrm in vrms)
    current = [vrm for vrm in vrms if uk_format(vrm) == "current"]
    assert len(current) > 200
    assert all(vrm[2:4] in ("00", "01") and is_unissued(vrm) for vrm in current)


def test_bundled_demo_footage_set_is_complete():
    footage = load_footage_set(DEMO)
    (clip,) = footage.clips
    capture = cv2.VideoCapture(str(clip.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == clip.truth.frames
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), clip.truth.fps) == (1280, 25.0)
    assert 4 <= len(clip.truth.passes) <= 6
    assert max(p.char_height_px for p in clip.truth.passes) >= 20
    assert {p.plate for p in clip.truth.passes} == {"front", "rear"}
    hotlist = load_hotlists([footage.hotlist])
    markers = {}
    for vehicle in clip.truth.passes:
        entries = [hotlist.entry(n) for n in hotlist.exact_matches(vehicle.vrm)]
        markers[vehicle.vrm] = frozenset().union(*(e.markers for e in entries))
    listed = set(markers.values())
    assert frozenset({Marker.FIREARMS}) in listed
    assert frozenset({Marker.FIREARMS, Marker.GANGS}) in listed
    assert any(m and Marker.FIREARMS not in m for m in listed)
    assert frozenset() in listed, "at least one vehicle in the demo is not on the hotlist"


def test_short_fixture_footage_set_is_small_and_complete():
    footage = load_footage_set(SHORT)
    (clip,) = footage.clips
    assert clip.video.stat().st_size < 500_000
    assert (clip.truth.width, clip.truth.height) == (640, 360)
    assert 1 <= len(clip.truth.passes) <= 2 and footage.hotlist is not None


def test_footage_set_problems_name_the_file_and_field(tmp_path):
    with pytest.raises(FootageError, match="no video files"):
        load_footage_set(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(FootageError, match=r"a\.mp4: no ground truth file a\.truth\.json"):
        load_footage_set(tmp_path)
    (tmp_path / "a.truth.json").write_text('{"video": "a.mp4",\n "fps": }')
    with pytest.raises(FootageError, match=r"a\.truth\.json: line 2, column 9: not valid JSON"):
        load_footage_set(tmp_path)
    truth = json.loads((SHORT / "short.truth.json").read_text())
    truth["video"] = "a.mp4"
    truth["passes"][0]["last_frame"] = -1
    truth["passes"][1]["plate"] = "side"
    (tmp_path / "a.truth.json").write_text(json.dumps(truth))
    with pytest.raises(FootageError) as error:
        load_footage_set(tmp_path)
    assert "passes.0.last_frame" in str(error.value) and "passes.1.plate" in str(error.value)

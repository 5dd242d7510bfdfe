"""Calibration files, the region of interest, perspective correction and `anpr-edge calibrate`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.synthetic.render import render_plate
from edge.calibration import (
    Calibration,
    CalibrationError,
    RegionOfInterest,
    calibrate_command,
    default_calibration,
    load_calibration,
)
from edge.cli import main
from edge.config import DetectorConfig

REPO = Path(__file__).resolve().parents[1]

VALID = """\
camera_id: cam1
image_size: [1280, 720]
roi:
  - [100, 300]
  - [1200, 300]
  - [1270, 710]
  - [10, 710]
plate_height_px: [14, 90]
direction:
  towards: down
perspective:
  plate_corners: [[500, 400], [700, 420], [700, 465], [500, 445]]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cam1.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads_every_field(tmp_path):
    calibration = load_calibration(write(tmp_path, VALID))
    assert calibration.camera_id == "cam1"
    assert calibration.roi.shape == (4, 2) and calibration.roi.dtype == np.int32
    assert calibration.plate_height_px == (14, 90)
    assert calibration.towards == (0.0, 1.0)
    assert calibration.perspective.shape == (3, 3)
    assert calibration.image_size == (1280, 720)


def test_example_calibration_in_the_repository_loads():
    calibration = load_calibration(REPO / "calibration" / "example.yaml")
    assert calibration.roi is not None


def test_minimal_file_means_whole_frame_and_default_sizes(tmp_path):
    calibration = load_calibration(write(tmp_path, "camera_id: cam1\n"))
    assert calibration.roi is None and calibration.perspective is None
    assert calibration.plate_height_px == default_calibration("cam1").plate_height_px
    assert calibration.towards is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID.replace("plate_height_px", "plate_hieght_px"),
            "line 8: plate_hieght_px: unknown key",
        ),
        (VALID.replace("[14, 90]", "[90, 14]"), "smallest (90) is larger than largest (14)"),
        (VALID.replace("towards: down", "towards: sideways"), "line 10: direction.towards"),
        (VALID.replace("[1270, 710]", "[1900, 710]"), "outside the 1280x720 image"),
        ("camera_id: cam1\nroi: [[0, 0], [5, 5]]\n", "line 2: roi: List should have at least 3"),
        ("roi: [[0, 0], [5, 5], [0, 5]]\n", "camera_id: required key is missing"),
        ("camera_id: cam1\n  roi: [[0, 0]]\n", "line 2, column 6: not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_bad_files_are_refused_naming_file_line_and_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(CalibrationError) as error:
        load_calibration(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_file_for_another_camera_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match="camera_id is 'cam1'.*'cam2'"):
        load_calibration(write(tmp_path, VALID), camera_id="cam2")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CalibrationError, match="absent.yaml: cannot read"):
        load_calibration(tmp_path / "absent.yaml")


def test_region_of_interest_crops_its_bounding_rectangle_and_filters_by_polygon():
    triangle = np.array([[100, 100], [300, 100], [100, 300]], np.int32)
    roi = RegionOfInterest(Calibration(camera_id="cam1", roi=triangle))
    image = np.arange(400 * 500 * 3, dtype=np.uint32).reshape(400, 500, 3).astype(np.uint8)

    region, (dx, dy) = roi.crop(image)

    assert (dx, dy) == (100, 100)
    assert region.shape == (201, 201, 3)
    assert np.shares_memory(region, image)  # a view, not a copy
    assert roi.contains((110, 110, 40, 10))  # centre inside the triangle
    assert not roi.contains((250, 250, 40, 10))  # inside the rectangle, outside the triangle
    assert not roi.contains((400, 350, 40, 10))


def test_region_larger_than_the_frame_is_clipped():
    roi = RegionOfInterest(
        Calibration(camera_id="cam1", roi=np.array([[-50, -50], [900, -50], [900, 900]], np.int32))
    )
    region, offset = roi.crop(np.zeros((100, 200, 3), np.uint8))
    assert offset == (0, 0) and region.shape == (100, 200, 3)


def test_a_box_reaching_the_edge_of_the_searched_rectangle_is_cut():
    frame_shape = (400, 500, 3)
    whole = RegionOfInterest(default_calibration("cam1"))
    assert not whole.cuts((10, 10, 40, 10), frame_shape)
    assert whole.cuts((10, 390, 40, 10), frame_shape)  # bottom edge of the frame
    assert whole.cuts((0, 100, 40, 10), frame_shape)  # left edge
    triangle = np.array([[100, 100], [300, 100], [100, 300]], np.int32)
    region = RegionOfInterest(Calibration(camera_id="cam1", roi=triangle))
    assert not region.cuts((120, 120, 40, 10), frame_shape)
    assert region.cuts((100, 150, 40, 10), frame_shape)  # the rectangle's left side
    assert region.cuts((250, 150, 51, 10), frame_shape)  # its right side, inside the frame


def test_default_calibration_is_the_whole_frame():
    roi = RegionOfInterest(default_calibration("cam1"))
    image = np.zeros((50, 80, 3), np.uint8)
    region, offset = roi.crop(image)
    assert region is image and offset == (0, 0)
    assert roi.contains((0, 0, 10, 10))


def test_perspective_correction_straightens_a_skewed_plate(tmp_path):
    # A plate seen from the side: its top and bottom edges slope down to the right.
    corners = [[20, 20], [220, 60], [220, 105], [20, 65]]
    image = np.zeros((140, 260, 3), np.uint8)
    cv2.fillPoly(image, [np.array(corners, np.int32)], (255, 255, 255))
    text = "camera_id: cam1\nperspective:\n  plate_corners: " + str(corners) + "\n"
    calibration = load_calibration(write(tmp_path, text))

    straightened = calibration.rectify_plate(image)

    def slope_of_top_edge(picture: np.ndarray) -> float:
        white = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY) > 128
        columns = np.flatnonzero(white.any(axis=0))
        left, right = columns[5], columns[-5]
        top = [np.flatnonzero(white[:, c])[0] for c in (left, right)]
        return (top[1] - top[0]) / (right - left)

    assert slope_of_top_edge(image) == pytest.approx(0.2, abs=0.03)
    assert abs(slope_of_top_edge(straightened)) < 0.03
    assert default_calibration("cam1").rectify_plate(image) is image


def road_frame_with_plates() -> np.ndarray:
    """Two rear plates in the UK plate font, 39 and 60 px tall, on a grey road."""
    image = np.full((720, 1280, 3), 90, np.uint8)
    for (x, y, char_height), text in [((300, 400, 28), "AB12CDE"), ((800, 550, 43), "XY65ZZT")]:
        plate = render_plate(text, rear=True, char_height_px=char_height)
        image[y : y + plate.shape[0], x : x + plate.shape[1]] = plate
    return image


def test_calibrate_suggests_roi_and_plate_sizes_from_a_frame(tmp_path, capsys):
    make_detector = pytest.importorskip(
        "edge.detect", reason="the plate detector (edge.detect) is not there yet"
    ).make_detector
    frame_path = tmp_path / "frame.png"
    frame = road_frame_with_plates()
    # A road marking: text the text detector finds, but no registration.
    cv2.putText(frame, "SLOW", (700, 200), cv2.FONT_HERSHEY_DUPLEX, 3.5, (235, 235, 235), 9)
    text_detector = make_detector(DetectorConfig(backend="text"))
    assert any(d.box[1] < 200 < d.box[1] + d.box[3] for d in text_detector.detect(frame))
    cv2.imwrite(str(frame_path), frame)

    status = main(["calibrate", str(frame_path), "--camera", "lane1", "--out", str(tmp_path)])

    assert status == 0
    calibration = load_calibration(tmp_path / "lane1.yaml", camera_id="lane1")
    low, high = calibration.plate_height_px
    found = make_detector(DetectorConfig()).detect(road_frame_with_plates())
    heights = [d.box[3] for d in found]
    assert len(found) == 2
    assert low < min(heights) and max(heights) < high < 3 * max(heights)
    roi = RegionOfInterest(calibration)
    assert roi.contains((300, 400, 188, 40)) and roi.contains((800, 550, 282, 60))
    assert not roi.contains((20, 20, 50, 10))  # the sky, far from any plate
    annotated = cv2.imread(str(tmp_path / "lane1.png"))
    assert annotated.shape == (720, 1280, 3)
    assert not roi.contains((700, 120, 250, 80))  # the road marking
    output = capsys.readouterr().out
    assert "2 plate(s) found" in output and "lane1.yaml" in output


def test_calibrate_on_a_clip_without_plates_writes_whole_frame_defaults(tmp_path):
    pytest.importorskip("edge.detect", reason="the plate detector (edge.detect) is not there yet")
    clip = tmp_path / "empty.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    for _ in range(10):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()

    assert calibrate_command(clip, "cam9", tmp_path / "out", frames=3) == 0

    calibration = load_calibration(tmp_path / "out" / "cam9.yaml")
    assert calibration.roi is None
    assert calibration.image_size == (320, 240)
    assert (tmp_path / "out" / "cam9.png").is_file()


def test_calibrate_refuses_an_unreadable_source(tmp_path, capsys):
    pytest.importorskip("edge.detect", reason="the plate detector (edge.detect) is not there yet")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert calibrate_command(junk, "cam1", tmp_path, frames=5) == 1
    assert "junk.mp4: not a readable image or video" in capsys.readouterr().err

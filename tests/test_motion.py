"""The motion gate on real (compressed) clips: still scenes are skipped, moving ones are not, and
the regions it returns hold what moves and leave out what does not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.calibration import Calibration
from edge.motion import MotionGate

WIDTH, HEIGHT = 320, 180


def road(seed: int = 3) -> np.ndarray:
    """A textured background, so the codec has real detail (and artefacts) to deal with."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 160, (HEIGHT // 6, WIDTH // 6, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (WIDTH, HEIGHT)), (5, 5), 0)


def clip(tmp_path: Path, name: str, frames: int, moving_x: int | None = None) -> list[np.ndarray]:
    """Write a clip with an optional car-sized block moving down at column `moving_x`, then
    read it back through the codec."""
    path = tmp_path / name
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (WIDTH, HEIGHT))
    background = road()
    for i in range(frames):
        image = background.copy()
        if moving_x is not None:
            y = 5 + 6 * i
            cv2.rectangle(image, (moving_x, y), (moving_x + 50, y + 30), (230, 230, 230), -1)
        writer.write(image)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(image)
    capture.release()
    assert len(decoded) == frames
    return decoded


def test_still_scene_has_no_motion_after_the_first_frame(tmp_path):
    gate = MotionGate()
    results = [bool(gate.moving_regions(image)) for image in clip(tmp_path, "still.mp4", 25)]
    assert results[0] is True
    assert not any(results[1:])


def test_moving_vehicle_is_motion_on_every_frame(tmp_path):
    gate = MotionGate()
    results = [bool(gate.moving_regions(image)) for image in clip(tmp_path, "moving.mp4", 20, 130)]
    assert all(results)


def test_motion_outside_the_region_of_interest_is_ignored(tmp_path):
    left_half = np.array([[0, 0], [150, 0], [150, HEIGHT], [0, HEIGHT]], np.int32)
    gate = MotionGate(Calibration(camera_id="cam1", roi=left_half))
    results = [bool(gate.moving_regions(image)) for image in clip(tmp_path, "right.mp4", 20, 240)]
    assert results[0] is True
    assert not any(results[1:])


def test_motion_holds_for_a_few_frames_after_it_stops(tmp_path):
    frames = clip(tmp_path, "moving.mp4", 10, 130)
    gate = MotionGate(hold_frames=3)
    assert all(bool(gate.moving_regions(image)) for image in frames)
    last = frames[-1]
    after = [bool(gate.moving_regions(last)) for _ in range(80)]  # about 40 frames to adapt at 0.05
    assert after[:3] == [True, True, True]
    assert not any(after[-5:])  # the block that stopped becomes background


def covers(region: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
    rx, ry, rw, rh = region
    x, y, w, h = box
    return rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh


def test_regions_hold_the_moving_block_and_leave_out_the_still_frame(tmp_path):
    gate = MotionGate()
    frames = clip(tmp_path, "moving.mp4", 20, 130)
    assert gate.moving_regions(frames[0]) == [(0, 0, WIDTH, HEIGHT)]
    for i, image in enumerate(frames[1:], start=1):
        regions = gate.moving_regions(image)
        block = (130, 5 + 6 * i, 51, 31)
        assert any(covers(region, block) for region in regions), (i, regions)
        searched = sum(w * h for _, _, w, h in regions)
        assert searched < 0.5 * WIDTH * HEIGHT, (i, regions)


def test_two_vehicles_apart_give_two_regions(tmp_path):
    path = tmp_path / "two.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (WIDTH, HEIGHT))
    background = road()
    for i in range(12):
        image = background.copy()
        for x in (20, 250):
            cv2.rectangle(image, (x, 5 + 6 * i), (x + 40, 35 + 6 * i), (230, 230, 230), -1)
        writer.write(image)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    gate = MotionGate()
    regions = []
    while (frame := capture.read())[0]:
        regions = gate.moving_regions(frame[1])
    capture.release()
    assert len(regions) == 2
    left, right = sorted(regions)
    assert left[0] + left[2] < 250 and right[0] > 60


def test_motion_over_most_of_the_frame_searches_the_whole_frame():
    gate = MotionGate()
    dark = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    gate.moving_regions(dark)
    assert gate.moving_regions(np.full((HEIGHT, WIDTH, 3), 200, np.uint8)) == [
        (0, 0, WIDTH, HEIGHT)
    ]

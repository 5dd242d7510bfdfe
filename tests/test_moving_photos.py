"""The moving-photos benchmark's clips: the plate's box follows the plate as the clip zooms."""

from __future__ import annotations

import numpy as np

from benchmarks.moving_photos import FRAME_SIZE, FRAMES, zoom_frames


def test_the_box_given_for_each_frame_is_where_the_plate_is():
    photo = np.full((600, 800, 3), 40, np.uint8)
    plate = (500, 380, 120, 30)
    x, y, w, h = plate
    photo[y : y + h, x : x + w] = 255
    frames = zoom_frames(photo, plate)
    assert len(frames) == FRAMES
    widths = []
    for image, (bx, by, bw, bh) in frames:
        assert image.shape[:2] == (FRAME_SIZE[1], FRAME_SIZE[0])
        inner = image[round(by) + 2 : round(by + bh) - 2, round(bx) + 2 : round(bx + bw) - 2]
        assert inner.min() > 200  # all plate
        ring = image[round(by + bh) + 3 : round(by + bh) + 6, round(bx) : round(bx + bw)]
        assert ring.max() < 100  # just outside it, none
        assert abs(bw / bh - w / h) < 0.01  # the aspect is kept
        widths.append(bw)
    assert widths[-1] / widths[0] > 1.35  # the vehicle comes closer

"""`anpr-edge read`: the still-image contract, with the real detector and reader."""

import json

import cv2
import numpy as np
import pytest

from benchmarks.synthetic.render import render_plate
from edge.cli import main


def street_image(vrm: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    rng = np.random.default_rng(5)
    image = rng.integers(60, 120, size=(480, 800, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (7, 7), 0)
    cv2.rectangle(image, (200, 180), (600, 420), (40, 40, 150), -1)
    plate = render_plate(vrm, rear=True, char_height_px=36)
    h, w = plate.shape[:2]
    x, y = 400 - w // 2, 330
    image[y : y + h, x : x + w] = plate
    return image, (x, y, w, h)


def test_json_gives_one_object_per_image_with_the_plate_text_and_box(tmp_path, capsys):
    image, (x, y, w, h) = street_image("OP01FNH")
    path = tmp_path / "street.png"
    cv2.imwrite(str(path), image)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))

    assert main(["read", "--json", str(path), str(blank)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    found, empty = (json.loads(line) for line in lines)
    assert found["image"] == str(path)
    best = found["plates"][0]
    assert best["text"] == "OP01FNH"
    assert 0 < best["confidence"] <= 1
    assert best["uk_format"] == "current"
    assert len(best["char_confidences"]) == 7
    assert best["confidence"] == pytest.approx(np.prod(best["char_confidences"]), abs=1e-3)
    assert all(text != "OP01FNH" and 0 < c <= 1 for text, c in best["alternatives"])
    bx, by, bw, bh = best["box"]
    assert abs((bx + bw / 2) - (x + w / 2)) < w / 4 and abs((by + bh / 2) - (y + h / 2)) < h
    order = [(any(c.isdigit() for c in p["text"]), p["confidence"]) for p in found["plates"]]
    assert order == sorted(order, reverse=True)
    assert empty == {"image": str(blank), "plates": []}


def test_unreadable_files_fail_with_a_message_naming_them(tmp_path, capsys):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_text("not an image")
    assert main(["read", "--json", str(garbage), str(tmp_path / "absent.jpg")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "garbage.jpg" in captured.err and "absent.jpg" in captured.err


def test_a_small_plate_in_a_large_photo_is_read_unless_tiles_are_off(tmp_path, capsys):
    """A 2800 x 1800 photo with a plate 53 px wide: found in the photo's tiles
    (`detector.still_tiles`, on by default), not by the whole-photo search alone (the second
    detector, which can find it too, kept out)."""
    rng = np.random.default_rng(6)
    image = rng.integers(70, 150, (1800, 2800, 3), dtype=np.uint8)
    plate = render_plate("KH05OKX", rear=True, char_height_px=8)
    image[900 : 900 + plate.shape[0], 1300 : 1300 + plate.shape[1]] = plate
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), image)

    def read_with(detector: str) -> list[str]:
        config = tmp_path / "edge.yaml"
        config.write_text(
            f"cameras:\n  - {{id: cam1, source: unused.mp4}}\ndetector: {detector}\n",
            encoding="utf-8",
        )
        assert main(["read", "--json", "--config", str(config), str(path)]) == 0
        return [p["text"] for p in json.loads(capsys.readouterr().out)["plates"]]

    assert read_with("{still_fallback: none}") == ["KH05OKX"]
    assert read_with("{still_fallback: none, still_tiles: false}") == []

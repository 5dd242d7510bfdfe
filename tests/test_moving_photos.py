"""The moving-photos benchmark: clips that follow the plate, and bad labels or photos named."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.moving_photos import FRAME_SIZE, FRAMES, main, zoom_frames
from benchmarks.read_eval import TRAINING_SPLIT_READER
from tests.test_read_eval import PLATES, write_labelled_folder


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


def test_a_bad_label_or_photo_is_named_and_nothing_runs(tmp_path, capsys):
    (tmp_path / "car.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "car.txt").write_text("car.jpg\t10\t20\t120\t30\tAB12CDE\n", encoding="utf-8")
    assert main([str(tmp_path), "--step", "1"]) == 2
    assert f"{tmp_path / 'car.jpg'}: cannot be read as an image" in capsys.readouterr().err

    (tmp_path / "car.txt").write_text("car.jpg\t10\tten\t120\t30\tAB12CDE\n", encoding="utf-8")
    assert main([str(tmp_path)]) == 2
    assert "car.txt: line 1: field y: not a number: 'ten'" in capsys.readouterr().err

    assert main([str(tmp_path / "absent")]) == 2
    assert "not a folder" in capsys.readouterr().err

    (tmp_path / "car.txt").write_text("car.jpg\t10\t20\t120\t30\tAB12CDE\n", encoding="utf-8")
    absent = tmp_path / "absent.onnx"
    assert main([str(tmp_path), "--reader-model", str(absent)]) == 2
    assert f"moving_photos: reader model {absent} not found" in capsys.readouterr().err


def test_the_held_out_caveat_follows_the_reader_measured(tmp_path, capsys):
    """The shipped reader learned the held-out photos: the run says so, and a run with the
    training-split reader, the one whose held-out figures are those of unseen plates, does not."""
    folder = write_labelled_folder(tmp_path / "generated", PLATES[:1])
    assert main([str(folder), "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the reader learned from the held-out photos too" in out
    assert "clips                          1" in out
    model = str(TRAINING_SPLIT_READER)
    assert main([str(folder), "--step", "1", "--json", "--reader-model", model]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["held_out_caveat"] is None and report["clips"] == 1


def test_a_degraded_run_moves_the_label_with_the_photo(tmp_path, capsys):
    """`--degrade half` halves each photo before it is zoomed into: the plate is still found
    where its label, halved with it, says, and the report names the degradation."""
    folder = write_labelled_folder(tmp_path / "generated", PLATES[:1])
    assert main([str(folder), "--step", "1", "--json", "--degrade", "half"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["degradation"] == "half"
    assert report["clips"] == 1 and report["found_full_search"] == 1.0

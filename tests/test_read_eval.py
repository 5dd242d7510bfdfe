"""The reading evaluation harness: label parsing, metrics, and a run over a generated folder."""

from __future__ import annotations

import json

import cv2
import pytest

from benchmarks import read_eval
from benchmarks.read_eval import LabelError, char_accuracy, load_labels
from edge.config import HotlistConfig
from edge.read import DEFAULT_MODEL as READER_MODEL
from edge.read import OnnxReader
from edge.types import box_iou
from tests.test_detect import plate_scene

PLATES = [
    ("AB12CDE", 34, (300, 380)),
    ("YX07KLM", 26, (700, 200)),
    ("GF63PRT", 42, (150, 120)),
]


def write_labelled_folder(folder, plates=PLATES):
    folder.mkdir(parents=True, exist_ok=True)
    for index, (vrm, char_height_px, at) in enumerate(plates):
        image, (x, y, w, h) = plate_scene(vrm, char_height_px, at, size=(1024, 576), seed=index)
        cv2.imwrite(str(folder / f"photo{index}.png"), image)
        (folder / f"photo{index}.txt").write_text(f"photo{index}.png\t{x}\t{y}\t{w}\t{h}\t{vrm}\n")
    return folder


def test_labels_are_loaded_in_file_order(tmp_path):
    folder = write_labelled_folder(tmp_path / "set", PLATES[:2])
    labels = load_labels(folder)
    assert [label.text for label in labels] == ["AB12CDE", "YX07KLM"]
    assert labels[0].image_path == folder / "photo0.png"
    assert labels[0].box[2] > labels[0].box[3] > 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("photo0.png\t1\t2\t3\tAB12CDE", "line 1: expected 6 tab-separated fields"),
        ("photo0.png\t1\ttwo\t30\t10\tAB12CDE", "line 1: field y: not a number"),
        ("photo0.png\t1\t2\t0\t10\tAB12CDE", "line 1: fields width/height: must be positive"),
        ("photo0.png\t1\t2\t30\t10\t--", "line 1: field PLATE_TEXT"),
        ("absent.png\t1\t2\t30\t10\tAB12CDE", "line 1: field IMAGE_FILE: no such file"),
    ],
)
def test_bad_label_lines_name_file_line_and_field(tmp_path, line, message):
    folder = write_labelled_folder(tmp_path / "set", PLATES[:1])
    (folder / "photo0.txt").write_text(line + "\n")
    with pytest.raises(LabelError, match=message) as error:
        load_labels(folder)
    assert "photo0.txt" in str(error.value)


def test_bad_label_makes_the_command_fail_cleanly(tmp_path, capsys):
    folder = write_labelled_folder(tmp_path / "set", PLATES[:1])
    (folder / "photo0.txt").write_text("photo0.png\tx\n")
    if not READER_MODEL.is_file():
        pytest.skip(f"reader model {READER_MODEL} not built yet")
    assert read_eval.main([str(folder)]) == 2
    assert "photo0.txt: line 1" in capsys.readouterr().err


def test_iou_and_character_accuracy():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert char_accuracy("AB12CDE", "AB12CDE") == 1.0
    assert char_accuracy("AB12CDF", "AB12CDE") == pytest.approx(6 / 7)
    assert char_accuracy("", "AB12CDE") == 0.0


def test_missing_folder_is_reported(tmp_path, capsys):
    assert read_eval.main([str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_missing_reader_model_is_named_and_nothing_runs(tmp_path, capsys):
    folder = write_labelled_folder(tmp_path / "generated", PLATES[:1])
    absent = tmp_path / "absent.onnx"
    assert read_eval.main([str(folder), "--reader-model", str(absent)]) == 2
    assert f"read_eval: reader model {absent} not found" in capsys.readouterr().err


def test_end_to_end_on_a_generated_folder(tmp_path, capsys):
    if not READER_MODEL.is_file():
        pytest.skip(f"reader model {READER_MODEL} not built yet")
    folder = write_labelled_folder(tmp_path / "generated")
    out = tmp_path / "report.json"
    assert read_eval.main([str(folder), "--json", "--frame-sample", "2", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    overall = report["overall"]
    assert overall["plates"] == 3
    assert overall["detection_recall"] == 1.0
    exact = round(overall["exact_accuracy"] * 3)
    assert len(report["misses"]) == 3 - exact
    assert exact >= 2, f"clean rendered UK plates misread: {report['misses']}"
    hotlist = overall["hotlist"]
    assert hotlist["entries"] == 3 and hotlist["exact"] == exact
    assert hotlist["exact"] + hotlist["possible_misread"] + hotlist["missed"] == 3
    assert overall["exact_accuracy_reader_only"] >= 2 / 3
    assert 0 < overall["ms_per_crop_median"] < overall["ms_per_photo_median"]
    assert overall["ms_per_1280x720_frame_median"] > 0
    assert report["monochrome"] is False
    assert report["folders"]["generated"]["plates"] == 3
    low, high = overall["exact_accuracy_interval_95"]
    assert 0 <= low <= overall["exact_accuracy"] <= high <= 1
    live = report["live_frames"]  # the same photos as 1280x720 frames, searched as live video
    assert live["plates"] == 3 and live["detection_recall"] >= 2 / 3
    assert live["exact_accuracy"] >= 1 / 3, f"live frames misread: {live}"
    assert len(report["live_misses"]) == 3 - round(live["exact_accuracy"] * 3)

    table = read_eval.format_table(report)
    assert "detection recall" in table and "100.0%" in table and "generated" in table
    assert read_eval.HOTLIST_HEADING in table and f"exact {hotlist['exact']}," in table


def test_monochrome_photos_are_grey_in_three_channels(tmp_path):
    folder = write_labelled_folder(tmp_path / "generated", PLATES[:1])
    photo = folder / "photo0.png"
    colour, grey = read_eval.read_photo(photo), read_eval.read_photo(photo, monochrome=True)
    assert grey.shape == colour.shape and grey.shape[2] == 3
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert (grey[..., 0] == cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)).all()


def test_degradations_make_poorer_photos_and_move_the_label(tmp_path):
    folder = write_labelled_folder(tmp_path / "generated", PLATES[:1])
    plate = load_labels(folder)[0]
    photo = read_eval.read_photo(plate.image_path)

    half_plate, half = read_eval.degrade(plate, photo, "half")
    assert half.shape[:2] == (photo.shape[0] // 2, photo.shape[1] // 2)
    x, y, w, h = plate.box
    assert half_plate.box == (round(x / 2), round(y / 2), round(w / 2), round(h / 2))
    assert half_plate.text == plate.text

    for name in ("jpeg", "dark", "blur"):
        moved, degraded = read_eval.degrade(plate, photo, name)
        assert moved == plate and degraded.shape == photo.shape and degraded.dtype == photo.dtype
        assert (degraded != photo).any(), name
    dark = read_eval.degrade_image(photo, "photo0.png", "dark")
    assert dark.mean() < photo.mean() / 2
    assert (dark == read_eval.degrade_image(photo, "photo0.png", "dark")).all()  # same noise

    def sharpness(image):
        return cv2.Laplacian(
            cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(float), cv2.CV_64F
        ).var()

    assert sharpness(read_eval.degrade_image(photo, "photo0.png", "blur")) < sharpness(photo) / 4

    wide_plate, wide = read_eval.degrade(plate, photo, "wide")
    height, width = photo.shape[:2]
    assert wide.shape[:2] == (3 * height, 3 * width)
    assert wide_plate.box == (x + width, y + height, w, h)  # the same pixels, moved
    assert (wide[height : 2 * height, width : 2 * width] == photo).all()
    unchanged_plate, unchanged = read_eval.degrade(plate, photo, None)
    assert unchanged_plate is plate and unchanged is photo


def test_degraded_run_reports_its_degradation(tmp_path, capsys):
    if not READER_MODEL.is_file():
        pytest.skip(f"reader model {READER_MODEL} not built yet")
    folder = write_labelled_folder(tmp_path / "generated", PLATES[2:])
    assert read_eval.main([str(folder), "--json", "--frame-sample", "1", "--degrade", "half"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["degradation"] == "half"
    # The 42 px characters become 21 px: still found where the moved label says.
    assert report["overall"]["plates"] == 1 and report["overall"]["detection_recall"] == 1.0
    assert "--degrade half" in read_eval.format_table(report)


def test_train_and_heldout_splits_partition_the_shared_sets(tmp_path):
    from benchmarks.read_eval import LabelledPlate, split_filter

    held_out, train, everything = (split_filter(s) for s in ("heldout", "train", "all"))
    for set_name in ("openalpr-eu-dev", "openalpr-us-dev"):
        folder = tmp_path / set_name
        for i in range(40):
            plate = LabelledPlate(folder / f"photo{i}.jpg", (0, 0, 10, 5), "AB12CDE")
            assert held_out(folder, plate) != train(folder, plate)
            assert everything(folder, plate)
    other = tmp_path / "my-own-photos"
    plate = LabelledPlate(other / "a.jpg", (0, 0, 10, 5), "AB12CDE")
    assert held_out(other, plate) and not train(other, plate)


def test_wilson_interval_matches_its_closed_forms_at_the_ends():
    z2 = 1.959964**2
    # None right: from 0 to z^2 / (n + z^2); all right: from n / (n + z^2) to 1.
    assert read_eval.wilson_interval(0, 10) == pytest.approx([0.0, z2 / (10 + z2)], abs=1e-4)
    assert read_eval.wilson_interval(10, 10) == pytest.approx([10 / (10 + z2), 1.0], abs=1e-4)
    assert read_eval.wilson_interval(0, 0) is None


def test_wilson_interval_narrows_with_more_plates_around_the_rate():
    small = read_eval.wilson_interval(91, 101)
    large = read_eval.wilson_interval(910, 1010)
    assert small == pytest.approx([0.8273, 0.9453], abs=1e-4)  # 90.1 %: 83 to 95 %
    assert small[0] < large[0] < 0.901 < large[1] < small[1]


def _outcome(truth: str, *reads: tuple) -> read_eval.PlateOutcome:
    return read_eval.PlateOutcome(
        name=f"{truth}.jpg",
        truth=truth,
        detected=bool(reads),
        reads=tuple(read_eval.Read(*read) for read in reads),
        reader_only=None,
        photo_ms=1.0,
        read_ms=(),
        detections=len(reads),
    )


def test_reads_are_counted_right_or_wrong_in_the_band_of_their_confidence():
    outcomes = [
        _outcome("AB12CDE", ("AB12CDE", 1.0)),
        _outcome("AB12CDF", ("AB12CDF", 0.97), ("AB12COF", 0.2)),  # the most confident counts
        _outcome("YX07KLM", ("YX07KLN", 0.96)),
        _outcome("GF63PRT", ("GF63PRT", 0.6)),
        _outcome("KM19XYZ", ("KM19XY", 0.3)),
        _outcome("BD51SMR"),  # not found: in no band
    ]
    bands = {
        (b["confidence_from"], b["confidence_to"]): b for b in read_eval.confidence_bands(outcomes)
    }
    assert list(bands) == [(0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.0)]
    assert (bands[0.95, 1.0]["reads"], bands[0.95, 1.0]["exact"]) == (3, 2)
    assert bands[0.95, 1.0]["exact_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert (bands[0.5, 0.8]["reads"], bands[0.5, 0.8]["exact"]) == (1, 1)
    assert (bands[0.8, 0.95]["reads"], bands[0.8, 0.95]["exact_share"]) == (0, None)
    assert (bands[0.0, 0.5]["reads"], bands[0.0, 0.5]["exact"]) == (1, 0)

    summary = read_eval.summarise(outcomes, [], min_confidence=0.5)
    # Wrong at >= 0.5: only YX07KLN (KM19XY is below it and BD51SMR unread: missed, not wrong).
    assert summary["wrong_reads"] == 1
    assert summary["confidence_bands"] == read_eval.confidence_bands(outcomes)


def test_reads_are_matched_against_a_hotlist_of_the_plates_evaluated_together():
    outcomes = [
        _outcome("AB12CDE", ("AB12CDE", 0.99)),
        _outcome("OP01FNH", ("0P01FNH", 0.9)),  # a look-alike: a possible misread
        _outcome("BD51SMR", ("BD51SMX", 0.9)),  # one wrong character
        _outcome("KM19XYZ", ("KM19XYZ", 0.2)),  # below min_confidence: no read, missed
        _outcome("LP31YRK", ("LP31YRK", 0.95)),
        _outcome("LP01YRK", ("LP31YRK", 0.9)),  # reads as the plate above: the wrong vehicle
    ]
    hits = read_eval.hotlist_hits(outcomes, min_confidence=0.5, config=HotlistConfig())
    assert hits == {
        "entries": 6,
        "exact": 2,
        "possible_misread": 3,
        "missed": 1,
        "false_hits": 2,  # LP31YRK read: exactly the wrong one; read right: one edit from LP01YRK
    }
    strict = read_eval.hotlist_hits(outcomes, 0.5, HotlistConfig(max_distance=0))
    assert (strict["possible_misread"], strict["missed"], strict["false_hits"]) == (1, 3, 1)
    assert read_eval.summarise(outcomes, [], min_confidence=0.5)["hotlist"] == hits


def test_a_wrong_character_read_for_sure_is_no_possible_misread_of_another_entry():
    sure, unsure = (1.0,) * 7, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.6)
    outcomes = [
        _outcome("BD51SMR", ("BD51SMR", 0.99, sure)),
        _outcome("BD51SMX", ("BD51SMX", 0.99, sure)),  # one edit from BD51SMR: both read sure
        _outcome("YX07KLM", ("YX07KLN", 0.9, unsure)),  # N in doubt: a misread of YX07KLM
    ]
    doubted = read_eval.hotlist_hits(outcomes, 0.5, HotlistConfig(misread_doubt_below=0.999))
    assert (doubted["exact"], doubted["possible_misread"], doubted["false_hits"]) == (2, 1, 0)
    every_edit = read_eval.hotlist_hits(outcomes, 0.5, HotlistConfig())  # the default: off
    assert (every_edit["possible_misread"], every_edit["false_hits"]) == (1, 2)


def test_held_out_figures_of_a_reader_that_learned_them_are_flagged(tmp_path, capsys):
    """The shipped reader learned from every shared photo; the held-out split measures unseen
    photos only with the same recipe trained on the training split, which is shipped beside it."""
    shipped = OnnxReader(READER_MODEL)
    measure = OnnxReader(read_eval.TRAINING_SPLIT_READER)
    assert (shipped.real_photos, measure.real_photos) == ("all", "training-split")
    warning = read_eval.held_out_caveat(shipped, "heldout")
    assert warning.endswith("the reader trained without them, models/reader_training_split.onnx")
    assert read_eval.held_out_caveat(shipped, "all") == warning
    assert read_eval.held_out_caveat(shipped, "train") is None
    assert read_eval.held_out_caveat(measure, "heldout") is None

    folder = write_labelled_folder(tmp_path / "generated", PLATES[:1])
    assert read_eval.main([str(folder), "--frame-sample", "1"]) == 0
    assert f"WARNING: {warning}" in capsys.readouterr().out
    argv = [str(folder), "--frame-sample", "1", "--json"]
    assert read_eval.main([*argv, "--reader-model", str(read_eval.TRAINING_SPLIT_READER)]) == 0
    assert json.loads(capsys.readouterr().out)["held_out_caveat"] is None

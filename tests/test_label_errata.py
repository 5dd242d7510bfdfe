"""Known errors in the shared labels: each correction is the one its stated scheme demands, and
both the evaluation and the reader's training read the corrected text."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from benchmarks.label_errata import LABEL_ERRATA, corrected_label
from benchmarks.read_eval import load_labels
from edge.plates import uk_format
from models.build.reader_data import is_held_out, load_real_plates

SLOVAK = r"[A-Z]{2}\d{3}[A-Z]{2}"
CZECH = r"\d[A-Z][A-Z\d]\d{4}"


@pytest.mark.parametrize("key", sorted(LABEL_ERRATA))
def test_each_correction_turns_letter_o_into_zero_and_fits_its_scheme(key):
    erratum = LABEL_ERRATA[key]
    changed = [(a, b) for a, b in zip(erratum.labelled, erratum.corrected, strict=True) if a != b]
    assert changed and all(pair == ("O", "0") for pair in changed)
    if "Slovak" in erratum.why:  # two letters, three digits, two letters
        assert re.fullmatch(SLOVAK, erratum.corrected) and not re.fullmatch(
            SLOVAK, erratum.labelled
        )
    elif "Czech" in erratum.why:  # the scheme has no letter O
        assert re.fullmatch(CZECH, erratum.corrected) and "O" not in erratum.corrected
    else:
        assert "British" in erratum.why
        assert uk_format(erratum.corrected) == "current" and uk_format(erratum.labelled) is None


def test_a_label_is_corrected_only_while_it_reads_as_the_erratum_says():
    assert corrected_label("openalpr-eu-dev", "test_006.jpg", "RKO99AN") == "RK099AN"
    assert corrected_label("openalpr-eu-dev", "test_006.jpg", "RK099AN") == "RK099AN"
    assert corrected_label("openalpr-eu-dev", "test_006.jpg", "RK099AB") == "RK099AB"
    assert corrected_label("openalpr-us-dev", "test_006.jpg", "RKO99AN") == "RKO99AN"


def _photo_set(root, image_names_and_texts):
    folder = root / "openalpr-eu-dev"
    folder.mkdir(parents=True)
    image = np.full((120, 240, 3), 200, np.uint8)
    for image_name, text in image_names_and_texts:
        cv2.imwrite(str(folder / image_name), image)
        stem = image_name.rsplit(".", 1)[0]
        (folder / f"{stem}.txt").write_text(f"{image_name}\t40\t40\t120\t30\t{text}\n")
    return folder


def test_evaluation_scores_the_correction_unless_asked_for_the_labels_as_written(tmp_path):
    folder = _photo_set(tmp_path, [("test_006.jpg", "RKO99AN"), ("eu1.jpg", "M5XSX")])
    assert [p.text for p in load_labels(folder)] == ["M5XSX", "RK099AN"]
    assert [p.written for p in load_labels(folder)] == [None, "RKO99AN"]
    assert [p.text for p in load_labels(folder, as_labelled=True)] == ["M5XSX", "RKO99AN"]
    assert [p.written for p in load_labels(folder, as_labelled=True)] == [None, None]


def test_a_label_mended_at_its_source_is_not_reported_as_corrected(tmp_path):
    folder = _photo_set(tmp_path, [("test_006.jpg", "RK099AN")])
    [plate] = load_labels(folder)
    assert (plate.text, plate.written) == ("RK099AN", None)


def test_the_reader_trains_on_the_corrected_text(tmp_path):
    # test_033 is in the training split, test_006 held out (the split is a hash of the name).
    assert not is_held_out("openalpr-eu-dev", "test_033.jpg")
    assert is_held_out("openalpr-eu-dev", "test_006.jpg")
    _photo_set(tmp_path, [("test_033.jpg", "RKO82AL"), ("test_006.jpg", "RKO99AN")])
    (tmp_path / "openalpr-us-dev").mkdir()
    assert [p.text for p in load_real_plates(held_out=False, data_dir=tmp_path)] == ["RK082AL"]
    assert [p.text for p in load_real_plates(held_out=True, data_dir=tmp_path)] == ["RK099AN"]

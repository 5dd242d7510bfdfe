"""Labels of the shared photos that the plate's own registration scheme shows to be wrong.

Each is a letter O written where the scheme allows only the digit 0, and the photo agrees (the
glyph is a digit's width, as its neighbours). They are corrected wherever the labels are read:
the reader trains on its split's plates (models/build/reader_data.py) and read_eval scores
against them (`--as-labelled` scores the labels as written).
"""

from __future__ import annotations

from typing import NamedTuple


class Erratum(NamedTuple):
    labelled: str
    corrected: str
    why: str


_SLOVAK = "Slovak plates since 1997 are two letters, three digits, two letters (XX-NNNLL)"

LABEL_ERRATA: dict[tuple[str, str], Erratum] = {
    ("openalpr-eu-dev", "test_006.jpg"): Erratum("RKO99AN", "RK099AN", _SLOVAK),
    ("openalpr-eu-dev", "test_033.jpg"): Erratum("RKO82AL", "RK082AL", _SLOVAK),
    ("openalpr-eu-dev", "test_056.jpg"): Erratum("RK3OOAG", "RK300AG", _SLOVAK),
    ("openalpr-eu-dev", "test_065.jpg"): Erratum(
        "4BO4979", "4B04979", "Czech plates (digit, region letter, ...) never use the letter O"
    ),
    ("openalpr-eu-dev", "eu5.jpg"): Erratum(
        "OYO9FEU", "OY09FEU", "a British current-style plate: the age identifier is two digits"
    ),
}
"""(set folder name, image file name) -> the erratum."""


def corrected_label(set_name: str, image_name: str, text: str) -> str:
    """`text` as labelled, or its correction when the label is a known erratum (only while the
    label still reads as the erratum says: a label mended at its source is left alone)."""
    erratum = LABEL_ERRATA.get((set_name, image_name))
    return erratum.corrected if erratum and erratum.labelled == text else text

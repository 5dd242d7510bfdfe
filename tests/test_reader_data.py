"""Reader training data: real plates recomposed from their own character strips."""

from __future__ import annotations

import numpy as np

from benchmarks.synthetic.render import render_plate
from edge.hotlist.index import CLASS_TRANSLATION
from edge.read import OnnxReader
from models.build.reader_data import (
    LabelledPlate,
    character_cells,
    crop_box,
    on_background,
    recomposed_plate,
)


def plate_on_background(text: str, label: str | None = None) -> LabelledPlate:
    image = render_plate(text, char_height_px=40)
    h, w = image.shape[:2]
    quad = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return on_background(LabelledPlate(image, quad, label or text), np.random.default_rng(0), [])


def test_characters_standing_apart_give_one_strip_each():
    cells = character_cells([plate_on_background("AB12CDE")])
    assert len(cells) == 1
    edges = cells[0].edges
    assert len(edges) == len("AB12CDE") + 1
    assert np.all(np.diff(edges) > 0)
    (x0, _), (x1, _) = cells[0].plate.quad[0], cells[0].plate.quad[2]
    assert x0 <= edges[0] and edges[-1] <= x1


def test_a_label_whose_length_the_blobs_do_not_match_is_left_out():
    assert character_cells([plate_on_background("AB12CDE", label="AB12CD")]) == []


def test_a_recomposed_plate_shows_its_new_text():
    """The strips carry their glyphs: the reader reads the new sequence, not the old one."""
    cells = character_cells([plate_on_background("AB12CDE")])[0]
    rng = np.random.default_rng(3)
    reader = OnnxReader()
    recomposed = [recomposed_plate(cells, rng) for _ in range(6)]
    assert all(len(p.text) == 7 and set(p.text) <= set("AB12CDE") for p in recomposed)
    assert len({p.text for p in recomposed} - {"AB12CDE"}) >= 5
    reads = [read.text for read in reader.read_batch([crop_box(p, 0.05) for p in recomposed])]
    truths = [p.text for p in recomposed]
    # A lone 1 among letters can be read I in this font; folded, look-alikes count as the same.
    assert sum(map(str.__eq__, reads, truths)) >= 4, list(zip(truths, reads))
    fold = [text.translate(CLASS_TRANSLATION) for text in reads + truths]
    assert fold[:6] == fold[6:], list(zip(truths, reads))

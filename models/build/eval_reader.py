"""Measure the plate reader on the held-out real crops and on synthetic UK plates.

    nice .venv/bin/python -m models.build.eval_reader [--model models/reader.onnx]

Real: the held-out split of the shared openalpr photos (never trained on by
models/reader_training_split.onnx; the shipped reader learned them too, and a warning says so
when it is measured), cut at the labelled
box grown by a margin as a detector would give it. Synthetic: UK plates from the renderer, cut
and degraded like the training data, from a seed the training never uses.

Each set is read twice: one crop per plate (`OnnxReader.read`), and three crops of it with
different margins fused as the daemon reads (`OnnxReader.read_views`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from benchmarks.read_eval import held_out_caveat
from benchmarks.synthetic.render import random_uk_vrm
from edge.hotlist.matching import edit_distance
from edge.read import DEFAULT_MODEL, OnnxReader, ctc_greedy
from edge.types import PlateRead
from models.build.reader_data import (
    augmented_crop,
    crop_box,
    load_real_plates,
    on_background,
    render_uk_plate,
    with_age,
)

RARE_AGES = ("00", "01", "50", "51")
"""Age identifiers missing from the issued-age training VRMs until run 8: 51 was issued
(September 2001); 00, 01 and 50 never were, and name the fictitious VRMs of the test footage."""
REAL_MARGINS = (0.05, 0.1, 0.15)
"""Views of a labelled box: its margin each side, as a fraction of its size."""


def synthetic_views(crop: np.ndarray) -> list[np.ndarray]:
    """The crop, a tighter and a looser one: as the daemon's three margins around a box."""
    h, w = crop.shape[:2]
    dy, dx = h // 12, w // 40
    tighter = crop[dy : h - dy, dx : w - dx]
    looser = cv2.copyMakeBorder(crop, dy, dy, dx, dx, cv2.BORDER_REPLICATE)
    return [crop, tighter, looser]


def report(
    name: str,
    read: Callable[[Sequence[np.ndarray]], PlateRead | None],
    reader: OnnxReader,
    views: list[list[np.ndarray]],
    truths: list[str],
) -> None:
    times, exact, exact_raw, any_alt, char_errors, chars = [], 0, 0, 0, 0, 0
    for crops, truth in zip(views, truths, strict=True):
        started = time.perf_counter()
        result = read(crops)
        times.append((time.perf_counter() - started) * 1000)
        text = result.text if result else ""
        probs = reader.class_probabilities([crops[0]])[0]
        raw = "" if probs is None else ctc_greedy(probs)[0]
        exact += text == truth
        exact_raw += raw == truth
        any_alt += text == truth or any(
            alt == truth for alt, _ in (result.alternatives if result else ())
        )
        char_errors += min(len(truth), edit_distance(text, truth))
        chars += len(truth)
    n = len(truths)
    print(
        f"{name}: n={n}  exact {exact / n:.3f}  first crop before UK correction "
        f"{exact_raw / n:.3f}  text-or-alternative {any_alt / n:.3f}  "
        f"char accuracy {1 - char_errors / chars:.3f}  median {statistics.median(times):.2f} ms"
    )


def report_both(name: str, reader: OnnxReader, views: list[list[np.ndarray]], truths: list[str]):
    report(f"{name}, one crop", lambda crops: reader.read(crops[0]), reader, views, truths)
    report(f"{name}, three views", reader.read_views, reader, views, truths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--synthetic", type=int, default=500, help="Synthetic plates to read.")
    args = parser.parse_args()
    reader = OnnxReader(args.model)
    held_out = load_real_plates(held_out=True)
    if held_out:
        if caveat := held_out_caveat(reader, "heldout"):
            print(f"WARNING: {caveat}")
        truths = [p.text for p in held_out]
        for margin in (0.05, 0.15):
            views = [
                [crop_box(p, margin)] + [crop_box(p, m) for m in REAL_MARGINS] for p in held_out
            ]
            report(
                f"held-out real crops, margin {margin:.0%}, one crop",
                lambda crops: reader.read(crops[0]),
                reader,
                views,
                truths,
            )
        views = [[crop_box(p, m) for m in REAL_MARGINS] for p in held_out]
        report("held-out real crops, margins 5/10/15 %, three views", reader.read_views, reader,
               views, truths)  # fmt: skip
    else:
        print("shared data absent: no real crops measured")
    synthetic_sets = (
        (0.3, "mild degradation", random_uk_vrm),
        (1.0, "training-style degradation", random_uk_vrm),
        (1.0, "current style, age identifier 00, 01, 50 or 51, training-style degradation",
         lambda rng: with_age(random_uk_vrm(rng, "current"), str(rng.choice(RARE_AGES)))),
    )  # fmt: skip
    for strength, kind, vrm in synthetic_sets:
        rng = np.random.default_rng(2026)
        plates = [
            on_background(render_uk_plate(rng, vrm(rng)), rng, []) for _ in range(args.synthetic)
        ]
        views = [synthetic_views(augmented_crop(p, rng, strength)) for p in plates]
        report_both(f"synthetic UK plates, {kind}", reader, views, [p.text for p in plates])


if __name__ == "__main__":
    main()

"""Measure the plate reader on the held-out real crops and on synthetic UK plates.

    nice .venv/bin/python -m models.build.eval_reader [--model models/reader.onnx]

Real: the held-out split of the shared openalpr photos (never trained on), cut at the labelled
box grown by a margin as a detector would give it. Synthetic: UK plates from the renderer, cut
and degraded like the training data, from a seed the training never uses.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from edge.read import DEFAULT_MODEL, OnnxReader, ctc_greedy
from models.build.reader_data import (
    augmented_crop,
    crop_box,
    load_real_plates,
    on_background,
    render_uk_plate,
)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def report(name: str, reader: OnnxReader, crops: list[np.ndarray], truths: list[str]) -> None:
    times, exact, exact_raw, any_alt, char_errors, chars = [], 0, 0, 0, 0, 0
    for crop, truth in zip(crops, truths, strict=True):
        started = time.perf_counter()
        read = reader.read(crop)
        times.append((time.perf_counter() - started) * 1000)
        text = read.text if read else ""
        probs = reader.class_probabilities([crop])[0]
        raw = "" if probs is None else ctc_greedy(probs)[0]
        exact += text == truth
        exact_raw += raw == truth
        any_alt += text == truth or any(
            alt == truth for alt, _ in (read.alternatives if read else ())
        )
        char_errors += min(len(truth), edit_distance(text, truth))
        chars += len(truth)
    n = len(truths)
    print(
        f"{name}: n={n}  exact {exact / n:.3f}  exact before UK correction {exact_raw / n:.3f}  "
        f"text-or-alternative {any_alt / n:.3f}  char accuracy {1 - char_errors / chars:.3f}  "
        f"median {statistics.median(times):.2f} ms/crop"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--synthetic", type=int, default=500, help="Synthetic plates to read.")
    args = parser.parse_args()
    reader = OnnxReader(args.model)
    held_out = load_real_plates(held_out=True)
    if held_out:
        truths = [p.text for p in held_out]
        for margin in (0.05, 0.15):
            crops = [crop_box(p, margin) for p in held_out]
            report(f"held-out real crops, margin {margin:.0%}", reader, crops, truths)
    else:
        print("shared data absent: no real crops measured")
    for strength, kind in ((0.3, "mild"), (1.0, "training-style")):
        rng = np.random.default_rng(2026)
        plates = [on_background(render_uk_plate(rng), rng, []) for _ in range(args.synthetic)]
        crops = [augmented_crop(p, rng, strength) for p in plates]
        truths = [p.text for p in plates]
        report(f"synthetic UK plates, {kind} degradation", reader, crops, truths)


if __name__ == "__main__":
    main()

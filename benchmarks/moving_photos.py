"""Real plates in motion: labelled roadside photos zoomed into as a vehicle drives towards the
camera, searched frame by frame as the daemon searches live video.

    .venv/bin/python -m benchmarks.moving_photos [--step 3] [--split all|heldout|train]
                                                  [--retry-input-side N] [--reader-model PATH]
                                                  [--degrade half|jpeg|dark|blur|wide] [--json]
                                                  [FOLDER ...]

The rendered footage of the other benchmarks has synthetic plates, which the text detector
finds in any window; real plates it sometimes misses in the small windows the daemon searches
around tracked plates. Here each labelled photo (default: every `--step`th of `../shared/data`)
becomes a 1280x720 clip of FRAMES frames (the whole photo fitted, aspect kept) zooming from 1x
to 1.4x towards a point between the picture's centre and the plate, so that the plate grows and drifts as an approaching plate
does. The frames go through the daemon's own camera worker (`edge.pipeline.CameraWorker`:
detector, reader, tracker; full search of the region of interest every
`tracking.full_search_every` frames, windows around the tracked plates between, and the
windows searched again padded where a tracked plate was missed; no motion gate, as the whole
picture moves).

Printed: the share of frames in which the labelled plate was found, for full searches and for
searches around tracked plates; the frames searched again; the passes read exactly (a vehicle
read emitted with the labelled text), with what was read instead for the others; and
milliseconds per frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.read_eval import (
    DEGRADATIONS,
    SHARED_DATA,
    LabelError,
    degrade,
    held_out_caveat,
    load_labels,
    read_photo,
    split_filter,
)
from edge.config import DetectorConfig, EdgeConfig
from edge.detect import make_detector
from edge.pipeline import CameraWorker
from edge.read import make_reader
from edge.types import Box, Frame, box_iou

FRAME_SIZE = (1280, 720)
FRAMES = 30
ZOOM = 1.4
FOUND_IOU = 0.3
"""A detection overlapping the labelled plate this much finds it."""


def zoom_frames(photo: np.ndarray, plate: Box) -> list[tuple[np.ndarray, Box]]:
    """The clip's frames, each with the plate's box in it."""
    height, width = photo.shape[:2]
    x, y, w, h = plate
    fit = min(FRAME_SIZE[0] / width, FRAME_SIZE[1] / height)  # whole photo, aspect kept
    left, top = (FRAME_SIZE[0] - width * fit) / 2, (FRAME_SIZE[1] - height * fit) / 2
    fixed_x, fixed_y = (width / 2 + x + w / 2) / 2, (height / 2 + y + h / 2) / 2
    frames = []
    for index in range(FRAMES):
        scale = fit * (1.0 + (ZOOM - 1.0) * index / (FRAMES - 1))
        # The fixed point stays where the first frame shows it.
        dx, dy = left + fixed_x * (fit - scale), top + fixed_y * (fit - scale)
        warp = np.float32([[scale, 0, dx], [0, scale, dy]])
        image = cv2.warpAffine(photo, warp, FRAME_SIZE, flags=cv2.INTER_AREA)
        frames.append((image, (scale * x + dx, scale * y + dy, scale * w, scale * h)))
    return frames


def in_frame(box: Box) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and x + w <= FRAME_SIZE[0] and y + h <= FRAME_SIZE[1]


def run_clip(worker: CameraWorker, photo: np.ndarray, plate: Box, counts: dict) -> list[str]:
    """One clip through `worker` (a new one: this takes over its reads and detections); counts
    updated; the texts of the vehicle reads emitted."""
    texts = []
    worker.on_vehicle = lambda vehicle: texts.append(vehicle.read.text)
    found: list[Box] = []
    detect = worker.finder.detect

    def detect_and_note(image, regions=None, *, pad_to=0):
        detections = detect(image, regions, pad_to=pad_to)
        found.extend(d.box for d in detections)
        return detections

    worker.finder.detect = detect_and_note
    for index, (image, truth) in enumerate(zoom_frames(photo, plate)):
        frame = Frame("moving", index, index / 25, index / 25, image)
        windows = worker._search_windows(frame, None)
        full_search = windows is None
        if not in_frame(truth) or (not full_search and not windows):
            continue
        found.clear()
        started = time.perf_counter()
        worker._detect_and_read(frame, windows)
        counts["ms"].append((time.perf_counter() - started) * 1000)
        kind = "full" if full_search else "tracked"
        counts[kind][1] += 1
        counts[kind][0] += any(box_iou(box, truth) >= FOUND_IOU for box in found)
    texts.extend(vehicle.read.text for vehicle in worker.tracker.flush())
    return texts


def evaluate(
    folders: list[Path],
    step: int,
    retry_input_side: int,
    split: str = "all",
    detector_backend: str = "default",
    reader_model: Path | None = None,
    degradation: str | None = None,
) -> dict:
    config = EdgeConfig.model_validate(
        {
            "cameras": [{"id": "moving", "source": "unused.mp4"}],
            "tracking": {"motion_gate": False},
            "detector": {"backend": detector_backend, "retry_input_side": retry_input_side},
            "reader": {"model": reader_model},
        }
    )
    detector, reader = make_detector(config.detector), make_reader(config.reader)
    keep = split_filter(split)
    plates = [p for folder in folders for p in load_labels(folder) if keep(folder, p)][::step]
    counts: dict = {"full": [0, 0], "tracked": [0, 0], "ms": []}
    exact = searched_again = 0
    misses = []
    for plate in plates:
        worker = CameraWorker(config.cameras[0], config, detector, reader, lambda vehicle: None)
        plate, photo = degrade(plate, read_photo(plate.image_path), degradation)
        texts = run_clip(worker, photo, plate.box, counts)
        exact += plate.text in texts
        if plate.text not in texts:
            misses.append({"photo": plate.image_path.name, "truth": plate.text, "reads": texts})
        searched_again += worker.frames_searched_again
    frames = counts["full"][1] + counts["tracked"][1]
    return {
        "split": split,
        "degradation": degradation,
        "held_out_caveat": held_out_caveat(reader, split),
        "clips": len(plates),
        "frames": frames,
        "retry_input_side": retry_input_side,
        "found_full_search": round(counts["full"][0] / max(counts["full"][1], 1), 4),
        "found_around_tracked_plates": round(
            counts["tracked"][0] / max(counts["tracked"][1], 1), 4
        ),
        "frames_searched_again": searched_again,
        "passes_read_exactly": round(exact / max(len(plates), 1), 4),
        "ms_per_frame_median": round(statistics.median(counts["ms"]), 1) if counts["ms"] else None,
        "misses": misses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, metavar="FOLDER")
    parser.add_argument("--step", type=int, default=3, help="Use every Nth labelled photo.")
    parser.add_argument("--retry-input-side", type=int, default=DetectorConfig().retry_input_side,
                        help="detector.retry_input_side (0: no search again).")  # fmt: skip
    parser.add_argument("--split", choices=["all", "heldout", "train"], default="all",
                        help="'heldout': photos the training-split reader did not learn from.")  # fmt: skip
    parser.add_argument("--reader-model", type=Path, default=None,
                        help="'onnx' reader model (default: models/reader.onnx).")  # fmt: skip
    parser.add_argument("--detector", choices=["default", "plate", "text", "morphology"],
                        default="default", help="detector.backend.")  # fmt: skip
    parser.add_argument("--degrade", choices=sorted(DEGRADATIONS), default=None,
                        help="Make every photo poorer first, as benchmarks.read_eval --degrade.")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    folders = args.folders or sorted(SHARED_DATA.glob("openalpr-*"))
    if not folders:
        print(f"moving_photos: no folders given and no shared data under {SHARED_DATA}; skipping")
        return 0
    missing = [folder for folder in folders if not folder.is_dir()]
    if missing:
        print(f"moving_photos: not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        report = evaluate(
            folders,
            max(1, args.step),
            args.retry_input_side,
            args.split,
            args.detector,
            args.reader_model,
            args.degrade,
        )
    except (LabelError, FileNotFoundError) as error:  # a bad label, or no --reader-model file
        print(f"moving_photos: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if report["held_out_caveat"]:
            print(f"WARNING: {report['held_out_caveat']}")
        for key, value in report.items():
            if key not in ("misses", "held_out_caveat"):
                print(f"{key:30} {value}")
        for miss in report["misses"]:
            print(
                f"  missed {miss['truth']:10} read {', '.join(miss['reads']) or '-'}  ({miss['photo']})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

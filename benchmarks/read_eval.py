"""Detection + reading over folders of labelled photos: recall, accuracy and timing.

    python -m benchmarks.read_eval [FOLDER ...] [--json] [--reader onnx|easyocr]
                                   [--detector default|plate|text|morphology]
                                   [--split all|heldout|train]

Each FOLDER holds photos and one NAME.txt per photo, each line tab-separated
`IMAGE_FILE x y width height PLATE_TEXT` (the format of ../shared/data/README.md). Photos go
through the daemon's own PlateFinder (detector, plate crops with margins, rectification, reader)
with the default calibration (whole frame), set up for stills as `anpr-edge read` is
(`detector.still_input_long_side`, or --input-long-side); the 1280x720 frames for the per-frame
timing as the daemon sets it up for live video (`detector.input_long_side`), and again every
photo as such a frame, for recall and accuracy at the live set-up. A labelled plate counts as
detected when a detection overlaps its box with IoU >= 0.3; its predicted text is the most
confident read among those detections.

Reported: detection recall; exact full-plate accuracy end to end (of all labelled plates), on
detected plates, and "reader only" (reading the labelled box, so the two halves can be told
apart), each counting reads at or above the reader's min_confidence as the daemon does, and
also at any confidence, with a 95 % Wilson score interval for the end-to-end figure (where the
rate on photos of the same kind may lie: 91 of 101 plates right puts it between 83 and 95 %);
wrong reads (a read at or above min_confidence that is not the plate: what could send someone
after the wrong vehicle or miss the right one); how often the read is right in each band of its
confidence (0-0.5, 0.5-0.8, 0.8-0.95, 0.95-1); had the plates been wanted, how many reads would
have hit their plate's hotlist entry exactly or as a possible misread, and how many another
plate's (the plates evaluated together as one hotlist); character accuracy (1 - edit distance /
longer length); ms per photo (detect + read), ms per plate crop read, and ms per 1280x720 frame
(an evenly spaced sample of the photos resized to 1280x720, detect + read).

Labels that the plate's own registration scheme shows to be wrong (an O where only the digit 0
can stand; benchmarks/label_errata.py) are scored as corrected, and listed in the report
(`label_corrections`); `--as-labelled` scores the labels as written.

`--monochrome` turns every photo grey first (an infrared camera); `--degrade
half|jpeg|dark|blur|wide` makes every photo poorer first (`DEGRADATIONS`: fewer pixels, heavy
compression, underexposure, blur, or a small plate in a large photo), to measure how reading
holds up where the camera sees less.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from benchmarks.label_errata import LABEL_ERRATA, corrected_label
from edge.calibration import default_calibration
from edge.config import DetectorConfig, HotlistConfig, ReaderConfig
from edge.detect import make_detector, make_still_fallback
from edge.hotlist import Hotlist, load_hotlists, plausible_misreads
from edge.hotlist.csvfile import HEADER as HOTLIST_HEADER
from edge.hotlist.matching import edit_distance
from edge.pipeline import PlateFinder
from edge.plates import normalise
from edge.read import MODELS_DIR, OnnxReader, make_reader
from edge.types import Box, Detection, MatchKind, PlateRead, Reader, box_iou

logger = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_FOLDERS = (SHARED_DATA / "openalpr-eu-dev", SHARED_DATA / "openalpr-us-dev")
RESULTS = Path(__file__).resolve().parent / "results" / "read_eval.json"
MATCH_IOU = 0.3
FRAME_SIZE = (1280, 720)
FRAME_SAMPLE = 20
"""Photos resized to FRAME_SIZE for the per-frame timing."""
CONFIDENCE_BAND_EDGES = (0.5, 0.8, 0.95)
"""Reads are grouped by confidence between these (and 0 and 1) to show how often each is right;
0.5 is the daemon's default reader.min_confidence."""


class LabelError(ValueError):
    """A label file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class LabelledPlate:
    image_path: Path
    box: Box
    text: str
    written: str | None = None
    """The label as written, where it is a known error and `text` its correction."""


def parse_label_line(line: str, where: str, folder: Path) -> LabelledPlate:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 6:
        raise LabelError(
            f"{where}: expected 6 tab-separated fields "
            f"(IMAGE_FILE x y width height PLATE_TEXT), found {len(fields)}"
        )
    image_name, *numbers, text = fields
    box = []
    for name, value in zip(("x", "y", "width", "height"), numbers, strict=True):
        try:
            box.append(int(float(value)))
        except ValueError:
            raise LabelError(f"{where}: field {name}: not a number: {value!r}") from None
    if box[2] <= 0 or box[3] <= 0:
        raise LabelError(f"{where}: fields width/height: must be positive, got {box[2]}x{box[3]}")
    plate = normalise(text)
    if not plate:
        raise LabelError(f"{where}: field PLATE_TEXT: no letters or digits in {text!r}")
    image_path = folder / image_name
    if not image_path.is_file():
        raise LabelError(f"{where}: field IMAGE_FILE: no such file {image_path}")
    return LabelledPlate(image_path, (box[0], box[1], box[2], box[3]), plate)


def load_labels(folder: Path, as_labelled: bool = False) -> list[LabelledPlate]:
    """Every labelled plate in a folder, in file-name order; known label errors corrected
    (benchmarks/label_errata.py) unless `as_labelled`."""
    plates = []
    for label_path in sorted(folder.glob("*.txt")):
        lines = label_path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if line.strip():
                plate = parse_label_line(line, f"{label_path}: line {number}", folder)
                text = corrected_label(folder.name, plate.image_path.name, plate.text)
                if text != plate.text and not as_labelled:
                    plate = dataclasses.replace(plate, text=text, written=plate.text)
                plates.append(plate)
    return plates


def char_accuracy(predicted: str, truth: str) -> float:
    return 1.0 - edit_distance(predicted, truth) / max(len(predicted), len(truth), 1)


class Read(NamedTuple):
    text: str
    confidence: float
    char_confidences: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class PlateOutcome:
    name: str
    truth: str
    detected: bool
    reads: tuple[Read, ...]
    """End to end: the reads of the detections matching the labelled box."""
    reader_only: Read | None
    """The read of the labelled box itself (None when nothing legible)."""
    photo_ms: float
    read_ms: tuple[float, ...]
    detections: int

    def predicted(self, min_confidence: float) -> str:
        """The most confident end-to-end read at or above `min_confidence` ("" when none)."""
        return _best_text(self.reads, min_confidence)

    def read_alone(self, min_confidence: float) -> str:
        return _best_text((self.reader_only,) if self.reader_only else (), min_confidence)


def _best_text(reads: Iterable[Read], min_confidence: float) -> str:
    best = _best_read(reads, min_confidence)
    return best.text if best else ""


def _best_read(reads: Iterable[Read], min_confidence: float) -> Read | None:
    return max(
        (read for read in reads if read.confidence >= min_confidence),
        key=lambda r: r.confidence,
        default=None,
    )


def _timed(function: Callable, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - start) * 1000.0


def _as_read(read: PlateRead | None) -> Read | None:
    return Read(read.text, read.confidence, read.char_confidences) if read is not None else None


def evaluate_plate(finder: PlateFinder, plate: LabelledPlate, image: np.ndarray) -> PlateOutcome:
    """One labelled plate through `finder`, which must keep reads of any confidence."""
    read_ms = []

    def timed_read(image: np.ndarray, detection: Detection) -> PlateRead | None:
        read, ms = _timed(finder.read, image, detection)
        read_ms.append(ms)
        return read

    reads, photo_ms = _timed(finder.candidates, image, timed_read)
    matching = [(d, r) for d, r in reads if box_iou(d.box, plate.box) >= MATCH_IOU]
    labelled = Detection(box=plate.box, score=1.0)
    return PlateOutcome(
        name=plate.image_path.name,
        truth=plate.text,
        detected=bool(matching),
        reads=tuple(_as_read(r) for _, r in matching if r is not None),
        reader_only=_as_read(finder.read(image, labelled)),
        photo_ms=photo_ms,
        read_ms=tuple(read_ms),
        detections=len(reads),
    )


def frame_ms(finder: PlateFinder, images: Sequence[np.ndarray]) -> list[float]:
    """Detect + read time of each image resized to a 1280x720 frame (after one untimed run)."""
    frames = [cv2.resize(image, FRAME_SIZE, interpolation=cv2.INTER_AREA) for image in images]
    if frames:
        finder.find(frames[0])
    times = []
    for frame in frames:
        start = time.perf_counter()
        finder.find(frame)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def as_frame(plate: LabelledPlate, image: np.ndarray) -> tuple[LabelledPlate, np.ndarray]:
    """The labelled photo `image` resized to a 1280x720 frame, and its label moved with it."""
    sx, sy = FRAME_SIZE[0] / image.shape[1], FRAME_SIZE[1] / image.shape[0]
    frame = cv2.resize(image, FRAME_SIZE, interpolation=cv2.INTER_AREA)
    return moved_label(plate, sx, sy), frame


def moved_label(plate: LabelledPlate, sx: float, sy: float) -> LabelledPlate:
    """`plate` with its box scaled as its photo was, `sx` across and `sy` down."""
    x, y, w, h = plate.box
    box = (round(x * sx), round(y * sy), max(1, round(w * sx)), max(1, round(h * sy)))
    return dataclasses.replace(plate, box=box)


def _ratio(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> list[float] | None:
    """The Wilson score interval for a success rate measured as successes / total: unlike
    p +/- z * sqrt(p(1 - p) / n), it stays within 0..1 and holds near 0 and 1, where these
    rates sit."""
    if not total:
        return None
    z = statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    rate = successes / total
    scale = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / scale
    half = z / scale * np.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total))
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.median(values), 2) if values else None


def _p95(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(float(np.percentile(values, 95)), 2) if values else None


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.fmean(values), 4) if values else None


def summarise(
    outcomes: Sequence[PlateOutcome], frame_times: Sequence[float], min_confidence: float
) -> dict:
    total = len(outcomes)
    detected = [o for o in outcomes if o.detected]
    crop_times = [ms for o in outcomes for ms in o.read_ms]

    def exact(items: Sequence[PlateOutcome], text: Callable[[PlateOutcome], str]) -> float | None:
        return _ratio(sum(text(o) == o.truth for o in items), len(items))

    exact_end_to_end = sum(o.predicted(min_confidence) == o.truth for o in outcomes)

    return {
        "plates": total,
        "detection_recall": _ratio(len(detected), total),
        "exact_accuracy": _ratio(exact_end_to_end, total),
        "exact_accuracy_interval_95": wilson_interval(exact_end_to_end, total),
        "exact_accuracy_any_confidence": exact(outcomes, lambda o: o.predicted(0.0)),
        "wrong_reads": sum(o.predicted(min_confidence) not in ("", o.truth) for o in outcomes),
        "exact_accuracy_detected": exact(detected, lambda o: o.predicted(min_confidence)),
        "exact_accuracy_reader_only": exact(outcomes, lambda o: o.read_alone(min_confidence)),
        "exact_accuracy_reader_only_any_confidence": exact(outcomes, lambda o: o.read_alone(0.0)),
        "char_accuracy": _mean(char_accuracy(o.predicted(0.0), o.truth) for o in outcomes),
        "char_accuracy_reader_only": _mean(
            char_accuracy(o.read_alone(0.0), o.truth) for o in outcomes
        ),
        "detections_per_photo": _mean(o.detections for o in outcomes),
        "ms_per_photo_median": _median(o.photo_ms for o in outcomes),
        "ms_per_photo_p95": _p95(o.photo_ms for o in outcomes),
        "ms_per_crop_median": _median(crop_times),
        "ms_per_1280x720_frame_median": _median(frame_times),
        "ms_per_1280x720_frame_p95": _p95(frame_times),
        "confidence_bands": confidence_bands(outcomes),
        "hotlist": hotlist_hits(outcomes, min_confidence, HotlistConfig()),
    }


def confidence_bands(outcomes: Sequence[PlateOutcome]) -> list[dict]:
    """How often the end-to-end read is right at each level of its confidence: what a read's
    confidence is worth to the person who is shown it."""
    best = [(read, o.truth) for o in outcomes if (read := _best_read(o.reads, 0.0)) is not None]
    bands = []
    for low, high in itertools.pairwise((0.0, *CONFIDENCE_BAND_EDGES, 1.0)):
        inside = [
            read.text == truth
            for read, truth in best
            if low <= read.confidence < high or (high == 1.0 and read.confidence == 1.0)
        ]
        bands.append(
            {
                "confidence_from": low,
                "confidence_to": high,
                "reads": len(inside),
                "exact": sum(inside),
                "exact_share": _ratio(sum(inside), len(inside)),
            }
        )
    return bands


def hotlist_hits(
    outcomes: Sequence[PlateOutcome], min_confidence: float, config: HotlistConfig
) -> dict:
    """Would each plate have been found had it been wanted? The plates evaluated together become
    one hotlist (a temporary file, never kept), and each plate's read (at `min_confidence`,
    without its alternatives) is matched against it as the daemon matches a pass's read: an
    exact hit on its own entry, a possible misread of it (look-alike characters, up to
    `config.max_distance` other edits of which the reader was in doubt), or missed; a hit on
    another plate's entry is a false hit, the wrong vehicle."""
    truths = sorted({o.truth for o in outcomes})
    counts = {
        "entries": len(truths),
        "exact": 0,
        "possible_misread": 0,
        "missed": 0,
        "false_hits": 0,
    }
    if not truths:
        return counts
    hotlist = hotlist_of(truths, "read_eval")
    for outcome in outcomes:
        read = _best_read(outcome.reads, min_confidence)
        hits = []
        if read is not None and read.text:
            hits = plausible_misreads(
                hotlist.match(read.text, max_distance=config.max_distance),
                PlateRead(read.text, read.confidence, read.char_confidences),
                config.misread_doubt_below,
            )
        own = [hit.kind for hit in hits if normalise(hit.entry.vrm) == outcome.truth]
        if MatchKind.EXACT in own:
            counts["exact"] += 1
        elif own:
            counts["possible_misread"] += 1
        else:
            counts["missed"] += 1
        counts["false_hits"] += len(hits) - len(own)
    return counts


def hotlist_of(vrms: Iterable[str], source: str) -> Hotlist:
    """A hotlist naming each of `vrms` once (firearms, never expiring), written to a temporary
    CSV file that is gone once it is loaded."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plates.csv"
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(HOTLIST_HEADER)
            for number, vrm in enumerate(sorted(set(vrms))):
                row = (f"{source}-{number}", vrm, "firearms", "none", "labelled plate", source)
                writer.writerow((*row, "2000-01-01", "2999-12-31"))
        return load_hotlists([path])


TRAINING_SPLIT_READER = MODELS_DIR / "reader_training_split.onnx"
"""The shipped reader's recipe trained without the held-out photos: the reader whose held-out
figures are those of unseen photos."""


def held_out_caveat(reader: Reader, split: str) -> str | None:
    """A warning when `split` holds held-out photos and `reader` learned from them (its model's
    `real_photos` metadata is 'all'): its figures there are not those of unseen photos."""
    if split == "train" or not isinstance(reader, OnnxReader) or reader.real_photos != "all":
        return None
    return (
        "the reader learned from the held-out photos too (its model's real_photos metadata is "
        "'all'): these are not figures for unseen photos; for those, measure the reader "
        f"trained without them, {TRAINING_SPLIT_READER.relative_to(MODELS_DIR.parent)}"
    )


def split_filter(split: str) -> Callable[[Path, LabelledPlate], bool]:
    """Which photos a split keeps: 'heldout' those the training-split reader never learned from
    (by the reader training's own rule; `held_out_caveat`), 'train' the others of the shared sets,
    'all' every photo."""
    if split == "all":
        return lambda folder, plate: True
    from models.build.reader_data import REAL_SETS, is_held_out

    def keep(folder: Path, plate: LabelledPlate) -> bool:
        if folder.name not in REAL_SETS:
            return split == "heldout"  # the reader never trained on other folders
        return is_held_out(folder.name, plate.image_path.name) == (split == "heldout")

    return keep


def evaluate(
    folders: Sequence[Path],
    finder: PlateFinder,
    min_confidence: float,
    split: str = "all",
    frame_sample: int = FRAME_SAMPLE,
    frame_finder: PlateFinder | None = None,
    as_labelled: bool = False,
    monochrome: bool = False,
    degradation: str | None = None,
) -> dict:
    """Every labelled plate of `folders` through `finder` (built with min_confidence 0, so that
    accuracy can be given both at `min_confidence` and at any confidence); the 1280x720 frames
    through `frame_finder` (the daemon's live-video set-up), `finder` when None. Scored against
    the labels with known errors corrected, unless `as_labelled`. `monochrome` turns every
    photo to grey first, as a monochrome (infrared) ANPR camera sees; `degradation` names one of
    `DEGRADATIONS`, applied to every photo (after `monochrome`) with its label moved with it."""
    keep = split_filter(split)
    frame_finder = frame_finder or finder
    outcomes: dict[str, list[PlateOutcome]] = {}
    live, paths, corrections = [], [], []
    for folder in folders:
        outcomes[folder.name] = []
        for plate in (p for p in load_labels(folder, as_labelled) if keep(folder, p)):
            if plate.written is not None:
                name = plate.image_path.name
                why = LABEL_ERRATA[folder.name, name].why
                corrections.append(
                    {"photo": name, "labelled": plate.written, "corrected": plate.text, "why": why}
                )
            plate, image = degrade(plate, read_photo(plate.image_path, monochrome), degradation)
            outcomes[folder.name].append(evaluate_plate(finder, plate, image))
            live.append(evaluate_plate(frame_finder, *as_frame(plate, image)))
            paths.append(plate.image_path)
    everything = [o for folder_outcomes in outcomes.values() for o in folder_outcomes]
    sample = paths[:: max(1, len(paths) // frame_sample)][:frame_sample] if frame_sample else []
    frame_times = frame_ms(
        frame_finder,
        [degrade_image(read_photo(path, monochrome), path.name, degradation) for path in sample],
    )
    return {
        "split": split,
        "monochrome": monochrome,
        "degradation": degradation,
        "min_confidence": min_confidence,
        "label_corrections": corrections,
        "overall": summarise(everything, frame_times, min_confidence),
        "live_frames": summarise(live, [], min_confidence),
        "folders": {name: summarise(items, [], min_confidence) for name, items in outcomes.items()},
        "misses": _misses(everything, min_confidence),
        "live_misses": _misses(live, min_confidence),
    }


def _misses(outcomes: Sequence[PlateOutcome], min_confidence: float) -> list[dict]:
    """The plates not read exactly at `min_confidence`: what was read instead, and by the
    reader alone on the labelled box."""
    return [
        {
            "photo": o.name,
            "truth": o.truth,
            "detected": o.detected,
            "read": o.predicted(min_confidence),
            "best_read_any_confidence": o.predicted(0.0),
            "reader_only": o.read_alone(0.0),
        }
        for o in outcomes
        if o.predicted(min_confidence) != o.truth
    ]


class Degradation(NamedTuple):
    """A poorer photo of the same scene: how the pipeline holds up where the camera sees less."""

    what: str
    scale: float
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    border: float = 0.0
    """The photo, after `scale`, is set in a border this many times its width and height wide
    on each side: its label moves by that much."""


def _half_size(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.resize(
        image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
    )


def _jpeg_20(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def _dark(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dim = 255 * (image / 255.0) ** 2.2 * 0.5 + rng.normal(0, 4, image.shape)
    return np.clip(dim, 0, 255).astype(np.uint8)


def _blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), 1.5)


def _wide(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.copyMakeBorder(image, height, height, width, width, cv2.BORDER_REFLECT)


DEGRADATIONS = {
    "half": Degradation("half the pixels each way (a plate twice as far)", 0.5, _half_size),
    "jpeg": Degradation("JPEG quality 20 (a starved video link)", 1.0, _jpeg_20),
    "dark": Degradation("underexposed: gamma 2.2, half the gain, sensor noise sd 4", 1.0, _dark),
    "blur": Degradation("Gaussian blur sd 1.5 px (defocus or motion)", 1.0, _blur),
    "wide": Degradation(
        "set in a picture three times as wide and high, mirrored around it (a small plate in a "
        "large photo, as from a high-resolution camera's wide view)",
        1.0,
        _wide,
        border=1.0,
    ),
}


def degrade_image(image: np.ndarray, name: str, degradation: str | None) -> np.ndarray:
    """`image` degraded as `DEGRADATIONS[degradation]` says (the same noise for the same photo
    name every run), or as it is when `degradation` is None."""
    if degradation is None:
        return image
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return DEGRADATIONS[degradation].apply(image, rng)


def degrade(
    plate: LabelledPlate, image: np.ndarray, degradation: str | None
) -> tuple[LabelledPlate, np.ndarray]:
    """The photo degraded (`degrade_image`) and its label moved with it."""
    if degradation is None:
        return plate, image
    how = DEGRADATIONS[degradation]
    degraded = degrade_image(image, plate.image_path.name, degradation)
    moved = moved_label(plate, how.scale, how.scale)
    if how.border:
        height, width = image.shape[:2]
        x, y, w, h = moved.box
        dx, dy = round(width * how.scale * how.border), round(height * how.scale * how.border)
        moved = dataclasses.replace(moved, box=(x + dx, y + dy, w, h))
    return moved, degraded


def read_photo(path: Path, monochrome: bool = False) -> np.ndarray:
    """A labelled photo (in grey, still 3 channels, when `monochrome`), or a LabelError naming it
    when it cannot be read."""
    image = cv2.imread(str(path))
    if image is None:
        raise LabelError(f"{path}: cannot be read as an image")
    if monochrome:
        return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return image


_TABLE_ROWS = (
    ("plates", "labelled plates", "{}"),
    ("detection_recall", "detection recall (IoU >= 0.3)", "{:.1%}"),
    ("exact_accuracy", "exact plate, end to end", "{:.1%}"),
    ("exact_accuracy_interval_95", "  ... 95% interval", "{0[0]:.1%}-{0[1]:.1%}"),
    ("exact_accuracy_any_confidence", "  ... at any confidence", "{:.1%}"),
    ("wrong_reads", "wrong reads (a read, not the plate)", "{}"),
    ("exact_accuracy_detected", "exact plate, of detected", "{:.1%}"),
    ("exact_accuracy_reader_only", "exact plate, reader on label box", "{:.1%}"),
    ("exact_accuracy_reader_only_any_confidence", "  ... at any confidence", "{:.1%}"),
    ("char_accuracy", "character accuracy, end to end*", "{:.1%}"),
    ("char_accuracy_reader_only", "character accuracy, reader only*", "{:.1%}"),
    ("detections_per_photo", "detections per photo", "{:.2f}"),
    ("ms_per_photo_median", "ms per photo (detect+read), median", "{:.1f}"),
    ("ms_per_photo_p95", "ms per photo (detect+read), p95", "{:.1f}"),
    ("ms_per_crop_median", "ms per plate crop read, median", "{:.2f}"),
    ("ms_per_1280x720_frame_median", "ms per 1280x720 frame, median", "{:.1f}"),
    ("ms_per_1280x720_frame_p95", "ms per 1280x720 frame, p95", "{:.1f}"),
)


HOTLIST_HEADING = (
    "had every plate been on one hotlist (the read, without alternatives, matched as the "
    "daemon matches):"
)


def format_table(report: dict) -> str:
    columns = {"all": report["overall"], **report["folders"], "live 720p": report["live_frames"]}
    header = ["metric", *columns]
    rows = [header]
    for key, label, pattern in _TABLE_ROWS:
        values = [columns[c].get(key) for c in columns]
        if all(v is None for v in values):
            continue
        rows.append([label, *("-" if v is None else pattern.format(v) for v in values)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    heading = (
        f"split: {report['split']}; exact plate counts reads with confidence >= "
        f"{report['min_confidence']} (the daemon's reader.min_confidence) unless marked"
    )
    if report.get("held_out_caveat"):
        heading += f"\nWARNING: {report['held_out_caveat']}"
    if report.get("monochrome"):
        heading += "\nphotos turned grey first (--monochrome)"
    if report.get("degradation"):
        what = DEGRADATIONS[report["degradation"]].what
        heading += f"\nphotos degraded first (--degrade {report['degradation']}): {what}"
    corrections = report.get("label_corrections", [])
    if corrections:
        heading += (
            "\nlabels corrected (benchmarks/label_errata.py; --as-labelled to score them as "
            "written): " + ", ".join(f"{c['labelled']} -> {c['corrected']}" for c in corrections)
        )
    footnote = (
        "* character accuracy: the best read at any confidence\n"
        "live 720p: every photo resized to a 1280x720 frame and searched as the daemon searches "
        "live video (its ms per photo is detect + read of the frame)"
    )
    bands, hotlist = [], []
    for name in ("all", "live 720p"):
        bands.append(
            f"  {name}: "
            + "; ".join(
                f"{band['confidence_from']:.2f}-{band['confidence_to']:.2f}: {band['exact']} of "
                f"{band['reads']}"
                for band in columns[name]["confidence_bands"]
            )
        )
        hits = columns[name]["hotlist"]
        hotlist.append(
            f"  {name}: exact {hits['exact']}, possible misread {hits['possible_misread']}, "
            f"missed {hits['missed']}; false hits (another plate's entry) {hits['false_hits']}"
        )
    return "\n".join(
        [
            heading,
            *lines,
            "exact reads by the read's confidence (any confidence):",
            *bands,
            HOTLIST_HEADING,
            *hotlist,
            footnote,
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, metavar="FOLDER")
    parser.add_argument("--json", action="store_true", help="Print one JSON object, no table.")
    parser.add_argument("--reader", choices=["onnx", "easyocr"], default="onnx")
    parser.add_argument("--reader-model", type=Path, default=None,
                        help="'onnx' reader model (default: models/reader.onnx).")  # fmt: skip
    parser.add_argument("--detector", choices=["default", "plate", "text", "morphology"],
                        default="default")  # fmt: skip
    parser.add_argument("--detector-model", type=Path, default=None,
                        help="'plate' or 'text' detector model (default: the bundled one).")  # fmt: skip
    parser.add_argument("--still-fallback", choices=["none", "plate", "text"], default=None,
                        help="Second detector for the photos where the first reads no plate "
                        "(default: the config's still_fallback).")  # fmt: skip
    parser.add_argument("--no-still-tiles", action="store_true",
                        help="detector.still_tiles false: no tile search of large photos.")  # fmt: skip
    parser.add_argument("--input-long-side", type=int, default=None,
                        help="Detector input size for the photos (default: the config's "
                        "still_input_long_side).")  # fmt: skip
    parser.add_argument("--live-input-long-side", type=int, default=None,
                        help="Detector input size for the 1280x720 frames (default: the config's "
                        "input_long_side).")  # fmt: skip
    parser.add_argument("--split", choices=["all", "heldout", "train"], default="all",
                        help="'heldout': photos the training-split reader did not learn from; 'train': those it did.")  # fmt: skip
    parser.add_argument("--frame-sample", type=int, default=FRAME_SAMPLE,
                        help="Photos resized to 1280x720 for the per-frame timing.")  # fmt: skip
    parser.add_argument("--as-labelled", action="store_true",
                        help="Score against the labels as written, known errors included "
                        "(benchmarks/label_errata.py).")  # fmt: skip
    parser.add_argument("--monochrome", action="store_true",
                        help="Turn every photo grey first, as a monochrome (infrared) ANPR "
                        "camera sees.")  # fmt: skip
    parser.add_argument("--degrade", choices=sorted(DEGRADATIONS), default=None,
                        help="Degrade every photo first: "
                        + "; ".join(f"{k}: {d.what}" for k, d in DEGRADATIONS.items()))  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report here.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folders = args.folders or [f for f in DEFAULT_FOLDERS if f.is_dir()]
    if not folders:
        print(f"read_eval: no folders given and no shared data under {SHARED_DATA}; skipping")
        return 0
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        print(f"read_eval: not a folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    detector_options = {"backend": args.detector, "model": args.detector_model}
    if args.still_fallback:
        detector_options["still_fallback"] = args.still_fallback
    if args.no_still_tiles:
        detector_options["still_tiles"] = False
    if args.input_long_side:
        detector_options["still_input_long_side"] = args.input_long_side
    if args.live_input_long_side:
        detector_options["input_long_side"] = args.live_input_long_side
    detector_config = DetectorConfig(**detector_options)
    reader_config = ReaderConfig(backend=args.reader, model=args.reader_model)
    try:
        reader = make_reader(reader_config)
    except FileNotFoundError as error:
        print(f"read_eval: {error}", file=sys.stderr)
        return 2
    calibration = default_calibration("read_eval")
    photo_finder = PlateFinder(
        make_detector(detector_config, stills=True),
        reader,
        0.0,
        calibration,
        fallback=make_still_fallback(detector_config),
        fallback_below=reader_config.min_confidence,
        tiles=detector_config.still_tiles,
    )
    frame_finder = PlateFinder(make_detector(detector_config), reader, 0.0, calibration)
    try:
        report = evaluate(
            folders,
            photo_finder,
            reader_config.min_confidence,
            args.split,
            args.frame_sample,
            frame_finder,
            args.as_labelled,
            args.monochrome,
            args.degrade,
        )
    except LabelError as error:
        print(f"read_eval: {error}", file=sys.stderr)
        return 2
    report["held_out_caveat"] = held_out_caveat(reader, args.split)
    report["detector"] = detector_config.model_dump(mode="json")
    report["reader"] = reader_config.model_dump(mode="json")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

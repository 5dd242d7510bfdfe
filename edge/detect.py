"""Plate detection: candidate plate boxes in a BGR image of any size.

Three backends, chosen by measurement (see the Detector section of models/README.md):

- "plate": a small text-kernel network (56 k parameters) distilled from the text detector on
  roadside photos and rendered UK plates (`models/build/train_plate_detector.py`), trained to
  give from a smaller input the map the text detector gives at 1280 px; same post-processing.
- "text": the PP-OCRv4 text detector (a DBNet, Apache-2.0, from the registry wheel
  rapidocr-onnxruntime; `models/build/fetch_text_detector.py` fetches and rebuilds it) run with
  onnxruntime, DB post-processing in OpenCV, and a filter keeping plate-shaped lines of text.
- "morphology": dark-on-light character strokes (black-hat, horizontal gradient, closing),
  contours kept by plate shape; needs no model, much less accurate.

All return boxes around the plate's characters, adjusted to what the reader reads best; the
network backends also find two-line (square) plates, as two stacked lines of characters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge.config import DetectorConfig
from edge.types import Box, Detection, Detector

logger = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[1] / "models"
DEFAULT_TEXT_MODEL = MODELS / "text_detector.onnx"
DEFAULT_PLATE_MODEL = MODELS / "plate_detector.onnx"


_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""PaddleOCR's normalisation for its detectors, applied to BGR channels as PaddleOCR does."""
_PIXEL_SCALE = (1.0 / (255.0 * _IMAGENET_STD)).astype(np.float32)
_PIXEL_OFFSET = (_IMAGENET_MEAN / _IMAGENET_STD).astype(np.float32)
"""The normalisation as one multiply and one subtract per pixel: (p / 255 - mean) / std."""

_MIN_SIDE_PX = 16
"""Images smaller than this on either side hold no readable plate."""


@dataclass(frozen=True, slots=True)
class PlateShape:
    """Which lines of text can be a plate, and the box handed to the reader for one."""

    min_aspect: float = 1.4
    max_aspect: float = 9.0
    min_text_height_px: int = 7
    grow_x: float = 0.0
    """Fraction of the text width added on each side (negative: removed)."""
    grow_y: float = -0.06
    """Fraction of the text height added above and below (negative: removed). Measured: the
    reader, given the pipeline's crop margin on top, reads best from boxes slightly tighter than
    DB's text boxes (end-to-end exact reads on the shared photos: 39% at -0.06, 27% at +0.08)."""

    def accepts(self, width: float, height: float) -> bool:
        return (
            height >= self.min_text_height_px
            and self.min_aspect <= width / max(height, 1e-6) <= self.max_aspect
        )

    def plate_box(
        self, x: float, y: float, w: float, h: float, image_shape: tuple[int, ...]
    ) -> Box:
        dx, dy = w * self.grow_x, h * self.grow_y
        height, width = image_shape[:2]
        x0, y0 = max(0, round(x - dx)), max(0, round(y - dy))
        x1, y1 = min(width, round(x + w + dx)), min(height, round(y + h + dy))
        return (x0, y0, x1 - x0, y1 - y0)


PLATE_NETWORK_SHAPE = PlateShape(min_text_height_px=11)
"""The plate network finds plates from 8 px tall, smaller than the reader reads: on the demo
footage a far plate's illegible crops used up its pass's read attempts and a garbage read
("22RER") was emitted for it, losing its alert; keeping lines from 11 px (boxes from about
10 px, after the 6% tightening), every pass of the demo is read (measured, not a test)."""


@dataclass(frozen=True, slots=True)
class _NetworkBackend:
    model: Path
    live_input_long_side: int
    still_input_long_side: int
    shape: PlateShape


_NETWORK_BACKENDS = {
    "plate": _NetworkBackend(DEFAULT_PLATE_MODEL, 800, 1280, PLATE_NETWORK_SHAPE),
    "text": _NetworkBackend(DEFAULT_TEXT_MODEL, 960, 1280, PlateShape()),
}
"""Each network backend's model, default input long sides and plate shape."""


def as_bgr(image: object) -> np.ndarray | None:
    """The image as contiguous BGR uint8, or None when it cannot hold a plate."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        return None
    if min(image.shape[:2]) < _MIN_SIDE_PX:
        return None
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels != 3:
        return None
    return np.ascontiguousarray(image)


def _merge_line_pieces(boxes: list[tuple[float, float, float, float, float]]) -> list[tuple]:
    """Join text boxes that continue one line (a plate split at the gap between its groups).

    Boxes are (x, y, w, h, score); two join when their heights and vertical centres agree and the
    horizontal gap between them is under one character height.
    """
    boxes = sorted(boxes)
    merged: list[tuple[float, float, float, float, float]] = []
    for box in boxes:
        for i, other in enumerate(merged):
            ox, oy, ow, oh, os_ = other
            x, y, w, h, s = box
            same_height = 0.7 <= h / oh <= 1.0 / 0.7
            same_line = abs((y + h / 2) - (oy + oh / 2)) < 0.3 * max(h, oh)
            gap = x - (ox + ow)
            if same_height and same_line and -0.5 * h < gap < 1.0 * max(h, oh):
                x0, y0 = min(x, ox), min(y, oy)
                x1, y1 = max(x + w, ox + ow), max(y + h, oy + oh)
                merged[i] = (x0, y0, x1 - x0, y1 - y0, (s * w + os_ * ow) / (w + ow))
                break
        else:
            merged.append(box)
    return merged


_SQUARE_ASPECT = (0.8, 1.4)
"""Width / height of a text blob taken for a two-line plate's run-together lines (UK: about
1.2 once DB has grown it); the shortest one-line plates grow to about 1.9."""

_Line = tuple[float, float, float, float, float]
"""A line of text: x, y, w, h, score."""


def _pair_stacked_lines(lines: list[_Line]) -> tuple[list[tuple[_Line, _Line]], list[_Line]]:
    """Two-line plates: pairs of lines stacked like the two rows of a square plate (heights
    alike, centres about one line height apart, one centred over the other), each line cut at
    the midpoint where DB's grown boxes overlap; and the lines left single."""
    pairs = []
    paired: set[int] = set()
    order = sorted(range(len(lines)), key=lambda i: lines[i][1])
    for a in order:
        if a in paired:
            continue
        ax, ay, aw, ah, a_score = lines[a]
        for b in order:
            if b == a or b in paired:
                continue
            bx, by, bw, bh, b_score = lines[b]
            height = (ah + bh) / 2
            rows_apart = ((by + bh / 2) - (ay + ah / 2)) / height
            if (
                0.75 <= bh / ah <= 1 / 0.75
                and 0.45 <= rows_apart <= 1.6
                and abs((ax + aw / 2) - (bx + bw / 2)) <= 0.25 * max(aw, bw)
                and 0.5 <= bw / aw <= 2.0
                and max(aw, bw) <= 4.5 * height
            ):
                middle = min(ay + ah, max(by, (ay + ah + by) / 2))
                upper = (ax, ay, aw, middle - ay, a_score)
                lower_top = max(by, middle)
                lower = (bx, lower_top, bw, by + bh - lower_top, b_score)
                pairs.append((upper, lower))
                paired.update((a, b))
                break
    return pairs, [line for i, line in enumerate(lines) if i not in paired]


def _is_square(line: _Line) -> bool:
    """Shaped like a two-line plate's characters taken together."""
    return _SQUARE_ASPECT[0] <= line[2] / max(line[3], 1e-6) <= _SQUARE_ASPECT[1]


def _union(boxes: tuple[Box, ...]) -> Box:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


class TextLineDetector:
    """Text-kernel detection (the PP-OCRv4 DBNet or the plate network distilled from it), kept
    to plate-shaped lines of text."""

    def __init__(
        self,
        model: Path = DEFAULT_TEXT_MODEL,
        *,
        input_long_side: int = 960,
        min_score: float = 0.3,
        max_detections: int = 8,
        shape: PlateShape = PlateShape(),
        threads: int = 0,
    ):
        if not model.is_file():
            raise FileNotFoundError(
                f"detector model {model} is missing: models/README.md says how to rebuild it "
                "(models/build/fetch_text_detector.py, models/build/train_plate_detector.py)"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self.model = model
        self._input_name = self._session.get_inputs()[0].name
        self.input_long_side = input_long_side
        self.min_score = min_score
        self.max_detections = max_detections
        self.shape = shape
        self.pixel_threshold = 0.3
        self.unclip_ratio = 1.6

    def scale_for(self, shape: tuple[int, ...]) -> float:
        """The resampling for a whole image of this shape: long side to `input_long_side`."""
        return min(self.input_long_side / max(shape[:2]), 2.0)

    def _text_lines(
        self, probability: np.ndarray
    ) -> list[tuple[float, float, float, float, float]]:
        """Axis-aligned (x, y, w, h, score) text lines in probability-map pixels."""
        mask = cv2.dilate((probability > self.pixel_threshold).astype(np.uint8), np.ones((2, 2)))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        lines = []
        for contour in contours:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if min(rw, rh) < 2:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            region = mask[y : y + h, x : x + w] > 0
            score = float(probability[y : y + h, x : x + w][region].mean())
            if score < self.min_score:
                continue
            # DB predicts a shrunk text kernel: grow it back by area * ratio / perimeter.
            grow = rw * rh * self.unclip_ratio / (2 * (rw + rh))
            corners = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle))
            (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
            lines.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0), score))
        return lines

    def detect(self, image: np.ndarray, scale: float | None = None) -> list[Detection]:
        bgr = as_bgr(image)
        if bgr is None:
            return []
        scale = self.scale_for(bgr.shape) if scale is None else scale
        return self._search([bgr], scale, least=0)[0]

    def detect_parts(
        self, image: np.ndarray, parts: Sequence[Box], scale: float, *, pad_to: int = 0
    ) -> list[Detection]:
        """Plates in `parts` of `image`, in the image's coordinates, each part searched at
        `scale`: on its own, or with `pad_to`, all packed side by side into one input padded
        with the mean colour to at least `pad_to` network pixels each way (one network run)."""
        bgr = as_bgr(image)
        cut = [] if bgr is None else _cut(bgr, parts)
        crops = [crop for _, crop in cut]
        if pad_to and crops:
            return _in_image(cut, self._search(crops, scale, least=pad_to))
        return _in_image(cut, [self._search([crop], scale, least=0)[0] for crop in crops])

    def _search(
        self, crops: Sequence[np.ndarray], scale: float, least: int
    ) -> list[list[Detection]]:
        """Each crop's detections (in its coordinates), the crops resampled by `scale` and packed
        side by side into one network input padded with the mean colour to multiples of 32 and
        to at least `least` each way."""
        sizes = [_resampled_size(crop.shape, scale) for crop in crops]
        places, (height, width) = _pack(sizes, least)
        network_input = _mean_canvas(height, width)
        for crop, (top, left) in zip(crops, places, strict=True):
            _place(network_input, crop, scale, top, left)
        try:
            probability = self._session.run(None, {self._input_name: network_input})[0][0, 0]
        except Exception:  # a failed inference must not stop the daemon
            logger.exception("text detector inference failed on a %dx%d input", width, height)
            return [[] for _ in crops]
        return [
            self._detections(probability[top : top + h, left : left + w], crop.shape)
            for crop, (top, left), (h, w) in zip(crops, places, sizes, strict=True)
        ]

    def _detections(self, probability: np.ndarray, shape: tuple[int, ...]) -> list[Detection]:
        """Plate boxes, in the coordinates of an image of `shape`, from its probability map."""
        sx, sy = shape[1] / probability.shape[1], shape[0] / probability.shape[0]
        lines = [
            (x * sx, y * sy, w * sx, h * sy, score)
            for x, y, w, h, score in _merge_line_pieces(self._text_lines(probability))
        ]
        stacked, single = _pair_stacked_lines(lines)
        for line in [line for line in single if _is_square(line)]:
            # A small two-line plate whose lines DB ran together: its two halves.
            single.remove(line)
            x, y, w, h, score = line
            stacked.append(((x, y, w, h / 2, score), (x, y + h / 2, w, h / 2, score)))
        detections = []
        for upper, lower in stacked:
            line_boxes = tuple(self.shape.plate_box(*line[:4], shape) for line in (upper, lower))
            score = round(min((upper[4] + lower[4]) / 2, 1.0), 4)
            detections.append(Detection(_union(line_boxes), score, lines=line_boxes))
        for x, y, w, h, score in single:
            if self.shape.accepts(w, h):
                box = self.shape.plate_box(x, y, w, h, shape)
                detections.append(Detection(box=box, score=round(min(score, 1.0), 4)))
        detections.sort(key=lambda d: d.score, reverse=True)
        return detections[: self.max_detections]


_PACKING_GAP_PX = 32
"""Mean-colour network pixels between packed parts, so that no text line runs from one to the
next."""


def _padded_side(side: int, least: int) -> int:
    return -(-max(side, least) // 32) * 32


def _resampled_size(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(height, width) of an image of `shape` resampled by `scale`."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _mean_canvas(height: int, width: int) -> np.ndarray:
    """A network input of the mean colour (zero, once normalised)."""
    return np.zeros((1, 3, height, width), np.float32)


def _place(network_input: np.ndarray, image: np.ndarray, scale: float, top: int, left: int):
    """`image` resampled by `scale` and normalised into `network_input` at (top, left)."""
    height, width = _resampled_size(image.shape, scale)
    resized = cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    # Channel by channel straight into the network's layout: a tenth of the time of
    # normalising the whole image and transposing it.
    for channel in range(3):
        plane = network_input[0, channel, top : top + height, left : left + width]
        np.multiply(resized[:, :, channel], _PIXEL_SCALE[channel], out=plane, dtype=np.float32)
        plane -= _PIXEL_OFFSET[channel]


def _pack(sizes: Sequence[tuple[int, int]], least: int):
    """Places (top, left) for parts of `sizes` (height, width) in rows, tallest first, each row
    at most as wide as the widest part or `least`, with gaps between; and the input's (height,
    width), multiples of 32 and at least `least` each way."""
    row_limit = max(least, *(width for _, width in sizes))
    places: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    top = left = row_height = width_used = 0
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i][0]):
        height, width = sizes[index]
        if left and left + width > row_limit:
            top, left, row_height = _padded_side(top + row_height + _PACKING_GAP_PX, 0), 0, 0
        places[index] = (top, left)
        width_used = max(width_used, left + width)
        left = _padded_side(left + width + _PACKING_GAP_PX, 0)
        row_height = max(row_height, height)
    return places, (_padded_side(top + row_height, least), _padded_side(width_used, least))


def _cut(image: np.ndarray, parts: Sequence[Box]) -> list[tuple[tuple[int, int], np.ndarray]]:
    """The `parts` of `image` large enough to hold a plate, each with its top-left corner (a
    part reaching past the top or left edge cut there)."""
    cut = []
    for x, y, w, h in parts:
        x, y = max(0, x), max(0, y)
        crop = image[y : y + h, x : x + w]
        if min(crop.shape[:2]) >= _MIN_SIDE_PX:
            cut.append(((x, y), crop))
    return cut


def _in_image(
    cut: Sequence[tuple[tuple[int, int], np.ndarray]], found: Sequence[Sequence[Detection]]
) -> list[Detection]:
    """Each part's detections moved into the whole image's coordinates, most confident first."""
    detections = [
        moved(detection, x, y)
        for ((x, y), _), part_found in zip(cut, found, strict=True)
        for detection in part_found
    ]
    detections.sort(key=lambda d: d.score, reverse=True)
    return detections


def moved(detection: Detection, dx: int, dy: int) -> Detection:
    """The detection shifted by (dx, dy): from a part's coordinates to the whole image's."""

    def shift(box: Box) -> Box:
        return (box[0] + dx, box[1] + dy, box[2], box[3])

    return Detection(shift(detection.box), detection.score, tuple(map(shift, detection.lines)))


class MorphologyDetector:
    """Dark characters on a light plate found by black-hat filtering; no model needed."""

    def __init__(
        self,
        *,
        work_width: int = 640,
        min_score: float = 0.3,
        max_detections: int = 8,
        shape: PlateShape = PlateShape(min_aspect=1.8, max_aspect=8.0),
    ):
        self.work_width = work_width
        self.min_score = min_score
        self.max_detections = max_detections
        self.shape = shape

    def scale_for(self, shape: tuple[int, ...]) -> float:
        """The resampling for a whole image of this shape: at most `work_width` wide."""
        return min(1.0, self.work_width / shape[1])

    def detect(self, image: np.ndarray, scale: float | None = None) -> list[Detection]:
        bgr = as_bgr(image)
        if bgr is None:
            return []
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        scale = self.scale_for(gray.shape) if scale is None else scale
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)
        candidates = []
        for char_height in (6, 10, 16):
            candidates.extend(self._candidates(gray, char_height))
        detections = []
        for x, y, w, h, score in _suppress_overlaps(candidates):
            x, y, w, h = x / scale, y / scale, w / scale, h / scale
            if score >= self.min_score:
                box = self.shape.plate_box(x, y, w, h, bgr.shape)
                detections.append(Detection(box=box, score=round(score, 4)))
        return detections[: self.max_detections]

    def detect_parts(
        self, image: np.ndarray, parts: Sequence[Box], scale: float, *, pad_to: int = 0
    ) -> list[Detection]:
        """Plates in `parts` of `image`, each part searched on its own (`pad_to` is for the
        text detector: stroke filtering needs no padding)."""
        cut = _cut(image, parts) if isinstance(image, np.ndarray) else []
        return _in_image(cut, [self.detect(crop, scale) for _, crop in cut])

    def _candidates(self, gray: np.ndarray, char_height: int) -> list[tuple]:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (char_height * 3, char_height))
        strokes = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
        edges = np.abs(cv2.Sobel(strokes, cv2.CV_32F, 1, 0, ksize=3))
        edges = cv2.normalize(edges, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        edges = cv2.GaussianBlur(edges, (5, 5), 0)
        line_kernel = cv2.getStructuringElement(
            cv2.MORPH_RECT, (char_height * 2 + 1, max(3, char_height // 2))
        )
        closed = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, line_kernel)
        _, binary = cv2.threshold(closed, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        binary = cv2.dilate(cv2.erode(binary, None), None)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if not (0.8 * char_height <= h <= 4 * char_height and self.shape.accepts(w, h)):
                continue
            # Score: how solidly the region is filled with stroke edges, and how strong they are.
            fill = cv2.contourArea(contour) / float(w * h)
            strength = float(closed[y : y + h, x : x + w].mean()) / 255.0
            found.append((x, y, w, h, min(1.0, fill * (0.5 + strength))))
        return found


def _suppress_overlaps(boxes: list[tuple], max_overlap: float = 0.3) -> list[tuple]:
    """Greedy non-maximum suppression of (x, y, w, h, score) boxes, best first."""
    if not boxes:
        return []
    rects = [[int(b[0]), int(b[1]), int(b[2]), int(b[3])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(rects, [float(b[4]) for b in boxes], 0.0, max_overlap)
    return [boxes[i] for i in np.array(keep).reshape(-1)]


def _backend_name(config: DetectorConfig, *, stills: bool) -> str:
    """The backend the config names, "default" resolved: 'text' for stills, 'plate' for live."""
    if config.backend == "default":
        return "text" if stills else "plate"
    return config.backend


def make_detector(config: DetectorConfig, *, stills: bool = False) -> Detector:
    """The detector backend named in the config ("default": the best measured, "plate" for live
    video and "text" for stills); with `stills`, set up for photos rather than live video
    (`still_input_long_side`)."""
    name = _backend_name(config, stills=stills)
    if name == "morphology":
        return MorphologyDetector(min_score=config.min_score, max_detections=config.max_detections)
    backend = _NETWORK_BACKENDS[name]
    if stills:
        input_long_side = config.still_input_long_side or backend.still_input_long_side
    else:
        input_long_side = config.input_long_side or backend.live_input_long_side
    return TextLineDetector(
        config.model or backend.model,
        input_long_side=input_long_side,
        min_score=config.min_score,
        max_detections=config.max_detections,
        shape=backend.shape,
    )


def make_still_fallback(config: DetectorConfig) -> Detector | None:
    """The second detector for still images (`still_fallback`), with its bundled model, or None
    where there is none or it is the stills detector itself."""
    if config.still_fallback in ("none", _backend_name(config, stills=True)):
        return None
    second = DetectorConfig(
        backend=config.still_fallback,
        min_score=config.min_score,
        max_detections=config.max_detections,
    )
    return make_detector(second, stills=True)

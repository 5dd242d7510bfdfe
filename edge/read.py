"""Plate readers: a plate crop in, the registration with per-character confidences out.

`OnnxReader` runs the bundled plate-specific CRNN (models/reader.onnx, built by
models/build/train_reader.py); `EasyOcrReader` is an optional general-purpose reference.
Both apply the UK plate syntax (edge.plates) to what they read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.plates import (
    ALPHABET,
    correct,
    corrections,
    digits_together,
    format_slots,
    normalise,
    uk_format,
)
from edge.types import PlateRead, Reader

if TYPE_CHECKING:
    from edge.config import ReaderConfig

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "reader.onnx"
INPUT_H, INPUT_W = 32, 128
MIN_CROP_H, MIN_CROP_W = 6, 12
"""Smaller crops hold no legible characters: they are not read."""
MAX_ALTERNATIVES = 5
_RUNNER_UP_POSITIONS = 3
"""Alternatives swap the runner-up class into this many of the least confident positions."""
_MIN_ALTERNATIVE_CONFIDENCE = 1e-4
_VIEW_FORMAT_BUDGET = math.log(10)
"""Across views, a text fitting a UK format is preferred to the likeliest text (which fits
none) when the views find it at most this much less likely per character that differs (natural
log). One view's reading allows much more (edge.plates, a factor of 200 in all): several views
agreeing leave less doubt. Measured with the bundled reader (run 7): a factor of 10 per
character keeps the UK correction's gain on synthetic UK plates (O/0 and I/1 in the Charles
Wright font) and loses nothing on the foreign shared photos against 5; 20 or a flat 200 lose
1-4 foreign plates in 100."""


def preprocess(crop: np.ndarray) -> np.ndarray | None:
    """A crop (BGR, BGRA or grayscale) as the model's 1 x 32 x 128 float input; None if unusable."""
    if not isinstance(crop, np.ndarray) or crop.ndim not in (2, 3):
        return None
    if crop.shape[0] < MIN_CROP_H or crop.shape[1] < MIN_CROP_W:
        return None
    if crop.dtype != np.uint8:
        crop = np.clip(np.nan_to_num(crop), 0, 255).astype(np.uint8)
    if crop.ndim == 3:
        channels = crop.shape[2]
        if channels == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGRA2GRAY)
        elif channels == 1:
            crop = crop[..., 0]
        else:
            return None
    shrinking = crop.shape[1] > INPUT_W or crop.shape[0] > INPUT_H
    resized = cv2.resize(
        crop, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    return (resized.astype(np.float32) / 127.5 - 1.0)[None]


def ctc_greedy(probs: np.ndarray) -> tuple[str, np.ndarray]:
    """Best path of one output (T x 1+len(ALPHABET), class 0 blank): the text and, per character,
    the class probabilities (excluding blank, renormalised) at the frame where it peaked."""
    best = probs.argmax(-1)
    chars: list[str] = []
    rows: list[np.ndarray] = []
    peak = -1.0
    for t, k in enumerate(best):
        if k == 0:
            continue
        if t > 0 and best[t - 1] == k:
            if probs[t, k] > peak:
                peak, rows[-1] = float(probs[t, k]), probs[t, 1:]
            continue
        chars.append(ALPHABET[k - 1])
        peak = float(probs[t, k])
        rows.append(probs[t, 1:])
    if not rows:
        return "", np.zeros((0, len(ALPHABET)), dtype=np.float32)
    char_probs = np.stack(rows).astype(np.float32)
    char_probs /= np.maximum(char_probs.sum(axis=1, keepdims=True), 1e-12)
    return "".join(chars), char_probs


def char_confidences(text: str, char_probs: np.ndarray) -> tuple[float, ...]:
    """Each character's probability; where `text` fits a UK format, given that format (the
    probability renormalised over the characters the format allows at that position)."""
    slots = format_slots(text)
    confidences = []
    for i, char in enumerate(text):
        p = float(char_probs[i, ALPHABET.index(char)])
        if slots is not None:
            allowed = sum(float(char_probs[i, ALPHABET.index(c)]) for c in slots[i])
            p = p / allowed if allowed > 0 else 0.0
        confidences.append(p)
    return tuple(confidences)


def _confidence(text: str, char_probs: np.ndarray) -> float:
    return float(np.prod(char_confidences(text, char_probs)))


def plate_read_from_probs(
    text: str, char_probs: np.ndarray, *, as_read: bool = False
) -> PlateRead | None:
    """The corrected read of a decoded text, with confidence and alternatives; None if empty.
    With `as_read`, the text exactly as decoded is the read and its corrections alternatives.

    Confidence is the product of the per-character confidences: the probability of the whole
    text, so that reads and their alternatives compare on one scale.
    """
    if not text:
        return None
    ranked = corrections(text, char_probs)
    best = text if as_read else ranked[0].text
    candidates = {c.text for c in ranked} | {text}
    order = np.argsort(char_probs[np.arange(len(text)), [ALPHABET.index(c) for c in text]])
    for i in order[:_RUNNER_UP_POSITIONS]:
        runner_up = ALPHABET[int(np.argsort(char_probs[i])[-2])]
        candidates.add(text[:i] + runner_up + text[i + 1 :])
    candidates.discard(best)
    scored = sorted(((c, _confidence(c, char_probs)) for c in candidates), key=lambda a: -a[1])
    alternatives = tuple(
        (c, p) for c, p in scored[:MAX_ALTERNATIVES] if p >= _MIN_ALTERNATIVE_CONFIDENCE
    )
    confidences = char_confidences(best, char_probs)
    return PlateRead(
        text=best,
        confidence=float(np.prod(confidences)),
        char_confidences=confidences,
        alternatives=alternatives,
        plate_format=uk_format(best),
    )


def ctc_log_likelihoods(log_probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """log P(text | view) by the CTC forward algorithm, for every view and text at once.

    `log_probs`: views x columns x (1 + len(ALPHABET)) log-probabilities, class 0 the blank.
    Returns views x texts. Unlike the best path's probability, this sums every alignment, so it
    compares texts fairly across views whose columns fall differently on the characters.
    """
    views, columns, _ = log_probs.shape
    longest = max(len(text) for text in texts)
    states = 2 * longest + 1
    labels = np.zeros((len(texts), states), dtype=np.int64)
    ends = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        labels[i, 1 : 2 * len(text) : 2] = [ALPHABET.index(c) + 1 for c in text]
        ends[i] = 2 * len(text)
    # A character may follow the one two states back (skipping the blank) unless they repeat.
    can_skip = np.zeros_like(labels, dtype=bool)
    can_skip[:, 3::2] = labels[:, 3::2] != labels[:, 1:-2:2]
    emissions = log_probs[:, :, labels]  # views x columns x texts x states
    alpha = np.full((views, len(texts), states), -np.inf)
    alpha[:, :, :2] = emissions[:, 0, :, :2]
    for t in range(1, columns):
        one_back = np.concatenate([np.full((views, len(texts), 1), -np.inf), alpha[..., :-1]], -1)
        two_back = np.concatenate([np.full((views, len(texts), 2), -np.inf), alpha[..., :-2]], -1)
        two_back = np.where(can_skip, two_back, -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, one_back), two_back) + emissions[:, t]
    rows = np.arange(len(texts))
    last = alpha[:, rows, ends]
    before_last = np.where(ends > 0, alpha[:, rows, np.maximum(ends - 1, 0)], -np.inf)
    return np.logaddexp(last, before_last)


def fuse_views(view_probs: Sequence[np.ndarray]) -> PlateRead | None:
    """One plate's read from its outputs on several crops of it (views), or None.

    Each view proposes its corrected read and its text as decoded; every proposal is scored by
    its mean CTC log-likelihood over all the views, and the best kept, preferring one that fits
    a UK format within `_VIEW_FORMAT_BUDGET`, or else the same text with its digits together
    (`digits_together`: "4B4O262" read "4B40262") within the same budget. A misread that one
    view's framing causes (a bolt read as a character, a clipped edge) rarely convinces the
    others.
    """
    if len(view_probs) == 1:
        return plate_read_from_probs(*ctc_greedy(view_probs[0]))
    proposals: dict[str, PlateRead] = {}
    for probs in view_probs:
        text, char_probs = ctc_greedy(probs)
        corrected = plate_read_from_probs(text, char_probs)
        if corrected is None:
            continue
        reads = [corrected]
        if corrected.text != text:
            reads.append(plate_read_from_probs(text, char_probs, as_read=True))
        for read in reads:
            if read.text not in proposals or read.confidence > proposals[read.text].confidence:
                proposals[read.text] = read
    if not proposals:
        return None
    log_probs = np.log(np.maximum(np.stack(view_probs), 1e-12))
    best = next(iter(proposals))
    if len(proposals) > 1:
        texts = list(proposals)
        scores = dict(zip(texts, ctc_log_likelihoods(log_probs, texts).mean(axis=0), strict=True))
        best = max(texts, key=scores.__getitem__)
        if proposals[best].plate_format is None:
            fitting = [
                text
                for text in texts
                if proposals[text].plate_format is not None
                and scores[text] >= scores[best] - _VIEW_FORMAT_BUDGET * _differences(text, best)
            ]
            best = max(fitting, key=scores.__getitem__, default=best)
    return _with_digits_together(proposals[best], log_probs)


def _with_digits_together(read: PlateRead, log_probs: np.ndarray) -> PlateRead:
    """`read`, or, when it fits no UK format, the same text with its digits together if the
    views find that at most `_VIEW_FORMAT_BUDGET` less likely per character changed."""
    grouped = digits_together(read.text)
    if read.plate_format is not None or grouped == read.text:
        return read
    as_read, together = ctc_log_likelihoods(log_probs, [read.text, grouped]).mean(axis=0)
    if together < as_read - _VIEW_FORMAT_BUDGET * _differences(grouped, read.text):
        return read
    # The glyphs are read as sure as before; only the O/0 or I/1 between them is decided by the
    # grouping, so the read keeps its confidence and the text as read becomes an alternative.
    others = [a for a in read.alternatives if a[0] != grouped]
    return replace(
        read,
        text=grouped,
        alternatives=((read.text, read.confidence), *others)[:MAX_ALTERNATIVES],
        plate_format=uk_format(grouped),
    )


def _differences(a: str, b: str) -> int:
    """Characters that differ position by position, and any extra length."""
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


class OnnxReader:
    """The bundled plate reader: CRNN + CTC, greedy decoding, UK-syntax correction."""

    def __init__(self, model_path: Path = DEFAULT_MODEL, threads: int = 1) -> None:
        import onnxruntime

        if not Path(model_path).is_file():
            raise FileNotFoundError(
                f"reader model {model_path} not found (build it with "
                "models/build/train_reader.py, see models/README.md)"
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.real_photos = self._session.get_modelmeta().custom_metadata_map.get("real_photos")
        """Which shared photos the model learned from, as its export recorded ('training-split'
        or 'all', held-out split included); None for models exported before it was recorded,
        all of which learned from the training split only."""

    def read(self, crop: np.ndarray) -> PlateRead | None:
        return self.read_batch([crop])[0]

    def read_views(self, crops: Sequence[np.ndarray]) -> PlateRead | None:
        """One plate read from several crops of it (e.g. different margins), in one inference."""
        view_probs = [probs for probs in self.class_probabilities(list(crops)) if probs is not None]
        return fuse_views(view_probs) if view_probs else None

    def read_batch(self, crops: list[np.ndarray]) -> list[PlateRead | None]:
        """Reads of several crops in one inference, in order; None where a crop is unusable."""
        return [
            None if probs is None else plate_read_from_probs(*ctc_greedy(probs))
            for probs in self.class_probabilities(crops)
        ]

    def class_probabilities(self, crops: list[np.ndarray]) -> list[np.ndarray | None]:
        """Per crop, the model's output (columns x 1+len(ALPHABET), class 0 the CTC blank);
        None where a crop is unusable or inference failed."""
        inputs = [preprocess(crop) for crop in crops]
        usable = [i for i, x in enumerate(inputs) if x is not None]
        outputs: list[np.ndarray | None] = [None] * len(crops)
        if not usable:
            return outputs
        batch = np.stack([inputs[i] for i in usable])
        try:
            probs = self._session.run(None, {self._input: batch})[0]
        except Exception:  # a failed inference must not stop the daemon
            logger.exception("plate reader inference failed on %d crops", len(usable))
            return outputs
        for i, output in zip(usable, probs, strict=True):
            outputs[i] = output
        return outputs


class EasyOcrReader:
    """General-purpose OCR (easyocr, CPU, offline weights) as a reference reader."""

    def __init__(self) -> None:
        try:
            import easyocr
            import easyocr_en_models
        except ImportError:
            raise ImportError(
                "the 'easyocr' reader backend needs the optional extra: pip install -e '.[easyocr]'"
            ) from None
        weights = Path(easyocr_en_models.__file__).resolve().parent / "models"
        self._ocr = easyocr.Reader(
            ["en"],
            gpu=False,
            model_storage_directory=str(weights),
            download_enabled=False,
            verbose=False,
        )

    def read_views(self, crops: Sequence[np.ndarray]) -> PlateRead | None:
        """The most confident read of the views (easyocr gives no probabilities to fuse)."""
        reads = [read for read in map(self.read, crops) if read is not None]
        return max(reads, key=lambda read: read.confidence, default=None)

    def read(self, crop: np.ndarray) -> PlateRead | None:
        if preprocess(crop) is None:
            return None
        try:
            results = self._ocr.readtext(crop, allowlist=ALPHABET + " -", detail=1)
        except Exception:  # a failed read must not stop the daemon
            logger.exception("easyocr failed on a crop of shape %s", crop.shape)
            return None
        pieces = sorted(results, key=lambda r: min(point[0] for point in r[0]))
        text = "".join(normalise(piece[1]) for piece in pieces)
        if not text:
            return None
        # easyocr scores each text box, not each character: a box's score is given to each of
        # its characters, and the read's confidence is the product over boxes.
        confidence = float(np.prod([float(piece[2]) for piece in pieces]))
        char_scores = tuple(float(piece[2]) for piece in pieces for _ in normalise(piece[1]))
        corrected, plate_format = correct(text)
        return PlateRead(
            text=corrected,
            confidence=confidence,
            char_confidences=char_scores,
            alternatives=((text, confidence),) if corrected != text else (),
            plate_format=plate_format,
        )


def make_reader(config: ReaderConfig) -> Reader:
    """The reader the config names; the bundled ONNX model unless `config.model` says otherwise."""
    if config.backend == "easyocr":
        return EasyOcrReader()
    return OnnxReader(config.model or DEFAULT_MODEL)

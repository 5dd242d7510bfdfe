"""Training and evaluation data for the plate reader: real labelled crops and synthetic plates.

Real crops come from the shared openalpr photos, split once by a hash of the file name so that
the held-out photos are never trained on. Every sample is cut out of its picture by a jittered
quadrilateral around the plate (loose, rotated, skewed, like a detector's box) and put through
camera effects (blur, low resolution, noise, JPEG, night, glare, shadow). A real plate whose
characters stand apart can also be recomposed: its character strips redrawn into a new text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.read_eval import MATCH_IOU, load_labels
from benchmarks.synthetic.render import FONT_PATH, random_uk_vrm, render_plate
from edge.calibration import default_calibration
from edge.config import DetectorConfig
from edge.detect import make_detector
from edge.pipeline import reading_box
from edge.plates import ALPHABET, uk_format
from edge.types import box_iou

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_SETS = {"openalpr-eu-dev": 2, "openalpr-us-dev": 3}
"""Set name -> one photo in N is held out for evaluation."""

INPUT_H, INPUT_W = 32, 128

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_OTHER_FONTS = [
    _DEJAVU / name
    for name in (
        "DejaVuSans-Bold.ttf",
        "DejaVuSansCondensed-Bold.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSans.ttf",
        "DejaVuSansCondensed.ttf",
        "DejaVuSerifCondensed-Bold.ttf",
    )
]


@dataclass(frozen=True, slots=True)
class LabelledPlate:
    image: np.ndarray
    """BGR picture holding the plate."""
    quad: np.ndarray
    """Plate corners in `image`, float32 4x2: top-left, top-right, bottom-right, bottom-left."""
    text: str
    detected: bool = False
    """Cut where the daemon's detector boxes it: the crop is already as loose as in service, so
    it is jittered only a little."""


def is_held_out(set_name: str, file_name: str) -> bool:
    digest = hashlib.sha256(f"{set_name}/{file_name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % REAL_SETS[set_name] == 0


def _box_quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float32)


def load_real_plates(held_out: bool, data_dir: Path = SHARED_DATA) -> list[LabelledPlate]:
    """The labelled plates of the held-out (or the training) split, read as read_eval reads them
    (`load_labels`: known label errors corrected); empty when data is absent."""
    plates = []
    for set_name in REAL_SETS:
        for label in load_labels(data_dir / set_name):
            if is_held_out(set_name, label.image_path.name) != held_out:
                continue
            image = cv2.imread(str(label.image_path))
            if image is None:
                raise ValueError(f"{label.image_path}: cannot read image")
            plates.append(LabelledPlate(image, _box_quad(*label.box), label.text))
    return plates


def detector_box_plates(plates: list[LabelledPlate]) -> list[LabelledPlate]:
    """The plates again, each cut where the daemon's detector (at its defaults) boxes it, with
    the reader's crop margin: the crops the reader is given in service, which differ from the
    labelled boxes (a US plate's line of characters without its state name and slogan). Only
    detections overlapping the labelled box (IoU >= 0.3) are kept."""
    detector = make_detector(DetectorConfig())
    low, high = default_calibration("training").plate_height_px
    detected = []
    for plate in plates:
        (x0, y0), (x1, y1) = plate.quad[0], plate.quad[2]
        label = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        for detection in detector.detect(plate.image):
            if box_iou(detection.box, label) >= MATCH_IOU and low <= detection.box[3] <= high:
                x, y, w, h = reading_box(detection.box, plate.image.shape)
                quad = _box_quad(x, y, w, h)
                detected.append(LabelledPlate(plate.image, quad, plate.text, detected=True))
    return detected


def crop_box(plate: LabelledPlate, margin: float = 0.0) -> np.ndarray:
    """The plate's labelled box (grown by `margin` of its size each side), as a detector gives."""
    (x0, y0), (x1, y1) = plate.quad[0], plate.quad[2]
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = plate.image.shape[:2]
    left, top = max(0, int(x0 - mx)), max(0, int(y0 - my))
    right, bottom = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
    return plate.image[top:bottom, left:right]


@dataclass(frozen=True, slots=True)
class CharacterCells:
    """A real plate and where each of its characters stands: the strips of its box between
    consecutive `edges` (x in `plate.image`) hold one character each."""

    plate: LabelledPlate
    edges: np.ndarray


def character_cells(plates: list[LabelledPlate]) -> list[CharacterCells]:
    """The plates whose characters stand apart: one dark-on-light (or light-on-dark) blob of
    character size per character of the label, found by Otsu's threshold and connected
    components. A character's strip runs half-way to its neighbours' blobs."""
    cells = []
    for plate in plates:
        blobs = _character_blobs(crop_box(plate))
        if blobs is None or len(blobs) != len(plate.text):
            continue
        x0 = int(plate.quad[0][0])
        lefts = np.array([x for x, _ in blobs]) + x0
        rights = np.array([x + w for x, w in blobs]) + x0
        gaps = (lefts[1:] + rights[:-1]) / 2
        pitch = np.median(lefts[1:] - lefts[:-1]) if len(blobs) > 1 else rights[0] - lefts[0]
        ends = np.clip([lefts[0] - 0.1 * pitch, rights[-1] + 0.1 * pitch], x0, plate.quad[1][0])
        edges = np.concatenate([[ends[0]], gaps, [ends[1]]]).round().astype(int)
        if np.all(np.diff(edges) > 0):
            cells.append(CharacterCells(plate, edges))
    return cells


def _character_blobs(crop: np.ndarray) -> list[tuple[int, int]] | None:
    """The (x, width) of the character-sized blobs of a plate crop, left to right: those of the
    polarity with more of them, all of about one height and standing on about one line."""
    if crop.size == 0 or crop.shape[0] < 12:
        return None
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    best: list[tuple[int, int]] = []
    for polarity in (cv2.THRESH_BINARY_INV, cv2.THRESH_BINARY):
        _, binary = cv2.threshold(gray, 0, 255, polarity | cv2.THRESH_OTSU)
        _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        sized = [
            (x, y, w, h)
            for x, y, w, h, _ in stats[1:]
            if 0.3 * height <= h <= 0.95 * height and w <= 0.25 * width and h >= 1.1 * w / 1.5
        ]
        if not sized:
            continue
        median_h = float(np.median([h for *_, h in sized]))
        median_bottom = float(np.median([y + h for _, y, _, h in sized]))
        line = sorted(
            (x, w)
            for x, y, w, h in sized
            if abs(h - median_h) <= 0.2 * median_h and abs(y + h - median_bottom) <= 0.2 * median_h
        )
        if len(line) > len(best):
            best = line
    return best or None


def recomposed_plate(cells: CharacterCells, rng: np.random.Generator) -> LabelledPlate:
    """The real plate with its character strips drawn at random (with repeats) into a new
    text of the same length: real fonts, backgrounds and lighting in character sequences the
    training photos do not hold, so that the reader learns their glyphs, not their strings."""
    plate, edges = cells.plate, cells.edges
    text = plate.text
    order = rng.integers(0, len(text), size=len(text))
    (bx0, by0), (bx1, by1) = plate.quad[0], plate.quad[2]
    width, height = bx1 - bx0, by1 - by0
    h, w = plate.image.shape[:2]
    left, top = max(0, int(bx0 - width / 2)), max(0, int(by0 - 1.2 * height))
    right, bottom = min(w, int(bx1 + width / 2)), min(h, int(by1 + 1.2 * height))
    canvas = plate.image[top:bottom, left:right].copy()
    y0, y1 = int(by0), int(np.ceil(by1))
    strips = np.hstack([plate.image[y0:y1, edges[i] : edges[i + 1]] for i in order])
    span = int(edges[-1] - edges[0])
    canvas[y0 - top : y1 - top, edges[0] - left : edges[-1] - left] = cv2.resize(
        strips, (span, y1 - y0), interpolation=cv2.INTER_AREA
    )
    quad = plate.quad - np.float32([left, top])
    return LabelledPlate(canvas, quad, "".join(text[i] for i in order), plate.detected)


def _random_text(rng: np.random.Generator) -> str:
    n = int(rng.integers(4, 9))
    return "".join(rng.choice(list(ALPHABET), size=n))


def render_other_plate(rng: np.random.Generator, backgrounds: list[np.ndarray]) -> LabelledPlate:
    """A non-UK style plate (EU, US-like): other fonts, colours, clutter; varied aspect ratio."""
    text = _random_text(rng)
    spaced = text
    seals_at = None
    if rng.random() < 0.6:
        cut = int(rng.integers(1, len(text)))
        if rng.random() < 0.35:
            # Registration seals or a round emblem between the groups (German, Czech, ...
            # plates): wide spaces now, the seals drawn into the gap below.
            spaced = text[:cut] + "   " + text[cut:]
            seals_at = cut
        else:
            spaced = text[:cut] + rng.choice([" ", "-", " ", "  "]) + text[cut:]
    font_path = rng.choice(_OTHER_FONTS + [FONT_PATH])
    font = ImageFont.truetype(str(font_path), int(rng.integers(36, 56)))
    left, top, right, bottom = font.getbbox(spaced)
    text_w, text_h = right - left, bottom - top
    us_like = rng.random() < 0.5
    pad_x = int(text_w * rng.uniform(0.05, 0.25))
    pad_y = int(text_h * (rng.uniform(0.5, 0.9) if us_like else rng.uniform(0.12, 0.3)))
    strip_w = int(text_h * 0.6) if (not us_like and rng.random() < 0.6) else 0
    width, height = text_w + 2 * pad_x + strip_w, text_h + 2 * pad_y
    light = rng.random() < 0.88
    paper = tuple(int(v) for v in (rng.uniform(170, 255, 3) if light else rng.uniform(0, 90, 3)))
    ink = tuple(int(v) for v in (rng.uniform(0, 90, 3) if light else rng.uniform(190, 255, 3)))
    canvas = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(canvas)
    if rng.random() < 0.3 and backgrounds:
        art = backgrounds[int(rng.integers(len(backgrounds)))]
        art = cv2.resize(art, (width, height))[..., ::-1]
        canvas = Image.blend(canvas, Image.fromarray(np.ascontiguousarray(art)), 0.25)
        draw = ImageDraw.Draw(canvas)
    if strip_w:
        draw.rectangle((0, 0, strip_w, height), fill=(0, 50, 160))
        small = ImageFont.truetype(str(_OTHER_FONTS[0]), max(6, text_h // 3))
        draw.text(
            (strip_w // 6, height * 0.6),
            rng.choice(["HR", "D", "F", "NL", "GB", "UK"]),
            font=small,
            fill=(255, 255, 255),
        )
    text_x, text_y = strip_w + pad_x - left, pad_y - top
    draw.text((text_x, text_y), spaced, font=font, fill=ink)
    if seals_at is not None:
        _draw_seals(draw, rng, font, spaced[: seals_at + 3], (text_x, text_y), text_h)
    if us_like:
        small = ImageFont.truetype(str(rng.choice(_OTHER_FONTS)), max(6, int(pad_y * 0.6)))
        word = "".join(rng.choice(list("ABCDEFGHIJKLMNOPRSTUVWYabcdefghiklmnoprstuvy"), size=8))
        colour = tuple(int(v) for v in rng.uniform(0, 200, 3))
        draw.text((width * rng.uniform(0.2, 0.4), pad_y * 0.1), word, font=small, fill=colour)
        if rng.random() < 0.5:
            draw.text(
                (width * rng.uniform(0.1, 0.5), height - pad_y * 0.85),
                word[::-1].lower(),
                font=small,
                fill=colour,
            )
    if rng.random() < 0.5:
        draw.rectangle((1, 1, width - 2, height - 2), outline=ink, width=int(rng.integers(1, 4)))
    image = np.asarray(canvas)[..., ::-1]
    return LabelledPlate(np.ascontiguousarray(image), _box_quad(0, 0, width, height), text)


def _draw_seals(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    font: ImageFont.FreeTypeFont,
    before_and_gap: str,
    origin: tuple[float, float],
    text_h: int,
) -> None:
    """One or two small coloured discs (seals, emblems) in the gap ending `before_and_gap`:
    round marks that are no characters, which a reader must not read as O, 0 or 8."""
    gap_left = origin[0] + font.getlength(before_and_gap[:-3])
    gap_right = origin[0] + font.getlength(before_and_gap)
    centre_x = (gap_left + gap_right) / 2
    top = origin[1] + font.getbbox(before_and_gap)[1]
    count = int(rng.integers(1, 3))
    radius = min(gap_right - gap_left, text_h / count) * rng.uniform(0.3, 0.45)
    for i in range(count):
        centre_y = top + text_h * (i + 0.5) / count
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        draw.ellipse(
            (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius),
            fill=colour,
            outline=tuple(int(v) for v in rng.uniform(0, 255, 3)),
        )


ANY_AGE_SHARE = 0.5
"""Current-style plates whose age identifier is any two digits rather than an issued one: a
reader trained on issued ages only (02-25, 52-75) learned that no 0 is followed by 0 or 1 there,
and read the unissued 00 and 01 of the fictitious test VRMs as "OO" and "OI" with 95-99 %
confidence, too sure for the UK correction to overrule (and 51, which was issued, is not in
`random_uk_vrm` either)."""


def with_age(vrm: str, age: str) -> str:
    """A current-style VRM with its age identifier (third and fourth characters) replaced."""
    return f"{vrm[:2]}{age}{vrm[4:]}"


def training_uk_vrm(rng: np.random.Generator) -> str:
    vrm = random_uk_vrm(rng)
    if uk_format(vrm) == "current" and rng.random() < ANY_AGE_SHARE:
        vrm = with_age(vrm, f"{int(rng.integers(0, 100)):02d}")
    return vrm


def render_uk_plate(rng: np.random.Generator, vrm: str | None = None) -> LabelledPlate:
    """A rendered UK plate of `vrm` (by default `training_uk_vrm`), cut to its edges."""
    vrm = vrm or training_uk_vrm(rng)
    plate = render_plate(
        vrm, rear=rng.random() < 0.5, char_height_px=int(rng.integers(24, 44)), rng=rng
    )
    h, w = plate.shape[:2]
    return LabelledPlate(plate, _box_quad(0, 0, w, h), vrm)


def on_background(
    plate: LabelledPlate, rng: np.random.Generator, backgrounds: list[np.ndarray]
) -> LabelledPlate:
    """Place a rendered plate in a larger picture so that loose crops show surroundings."""
    h, w = plate.image.shape[:2]
    if backgrounds and rng.random() < 0.8:
        art = backgrounds[int(rng.integers(len(backgrounds)))]
        canvas = cv2.resize(art, (w * 2, h * 3))
    else:
        canvas = np.empty((h * 3, w * 2, 3), dtype=np.uint8)
        canvas[:] = rng.integers(0, 256, 3)
    x, y = w // 2, h
    canvas[y : y + h, x : x + w] = plate.image
    return LabelledPlate(canvas, plate.quad + np.float32([x, y]), plate.text)


def background_patches(plates: list[LabelledPlate], rng: np.random.Generator, per_photo: int = 8):
    """Patches of the photos away from their plates: car bodies, roads, grilles."""
    patches = []
    for plate in plates:
        h, w = plate.image.shape[:2]
        (px0, py0), (px1, py1) = plate.quad[0], plate.quad[2]
        for _ in range(per_photo * 4):
            pw, ph = int(rng.integers(40, max(41, w // 3))), int(rng.integers(20, max(21, h // 4)))
            x, y = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
            if x < px1 and x + pw > px0 and y < py1 and y + ph > py0:
                continue
            patches.append(plate.image[y : y + ph, x : x + pw].copy())
            if len(patches) % per_photo == 0:
                break
    return patches


def _jittered_quad(
    quad: np.ndarray, rng: np.random.Generator, loose: float, strength: float
) -> np.ndarray:
    """The plate quad grown by random margins, rotated, and with its corners moved a little."""
    centre = quad.mean(axis=0)
    width = np.linalg.norm(quad[1] - quad[0])
    height = np.linalg.norm(quad[3] - quad[0])
    left, right = rng.uniform(-0.03, loose, 2) * width
    top, bottom = rng.uniform(-0.06, loose * 2.5, 2) * height
    grown = quad + np.float32([[-left, -top], [right, -top], [right, bottom], [-left, bottom]])
    grown += rng.normal(0, 0.04 * strength * height, (4, 2)).astype(np.float32)
    angle = np.deg2rad(rng.uniform(-10, 10) * strength)
    rotation = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (grown - centre) @ rotation.T + centre


def _motion_kernel(rng: np.random.Generator) -> np.ndarray:
    length = int(rng.integers(3, 9))
    kernel = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(
        (length / 2 - 0.5, length / 2 - 0.5), rng.uniform(-30, 30), 1
    )
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / max(kernel.sum(), 1e-6)


def camera_effects(crop: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Lighting, blur, noise and compression as roadside cameras give them (BGR in and out).

    `strength` (0..1) scales how often each effect is applied: training starts gentle, so that
    the CTC model finds the characters before it sees the hardest crops.
    """
    image = crop.astype(np.float32)
    image = image * (1 + strength * rng.uniform(-0.45, 0.3)) + strength * rng.uniform(-40, 40)
    h, w = image.shape[:2]
    if rng.random() < 0.2 * strength:  # shadow across the plate
        a, b = rng.uniform(0, w, 2)
        xs = np.arange(w)[None, :] - (a + (b - a) * np.arange(h)[:, None] / h)
        image[xs < 0] *= rng.uniform(0.35, 0.7)
    if rng.random() < 0.15 * strength:  # glare
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        yy, xx = np.mgrid[0:h, 0:w]
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (rng.uniform(0.1, 0.4) * w) ** 2))
        image += blob[..., None] * rng.uniform(60, 200)
    if rng.random() < 0.15 * strength:  # night
        image = image * rng.uniform(0.12, 0.4)
        image += rng.normal(0, rng.uniform(2, 8), image.shape)
    if rng.random() < 0.3 * strength:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.6))
    elif rng.random() < 0.2 * strength:
        image = cv2.filter2D(image, -1, _motion_kernel(rng))
    if rng.random() < 0.4 * strength:
        image += rng.normal(0, rng.uniform(2, 14), image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.5 * strength:
        quality = int(rng.integers(15, 80))
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


def augmented_crop(
    plate: LabelledPlate, rng: np.random.Generator, strength: float = 1.0
) -> np.ndarray:
    """A randomly cut, warped, degraded crop of the plate, BGR, sized near the model input."""
    loose = 0.04 if plate.detected else rng.choice([0.08, 0.2, 0.35])
    quad = _jittered_quad(plate.quad, rng, loose * strength, strength)
    # Low resolution: warp into a smaller image (down to ~10 px characters), then let the
    # reader's resize bring it up as it would a distant plate.
    scale = rng.uniform(0.35, 1.0) if rng.random() < 0.5 * strength else 1.0
    out_w, out_h = max(16, int(INPUT_W * scale * 1.25)), max(6, int(INPUT_H * scale * 1.25))
    target = np.float32([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]])
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        plate.image, warp, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    return camera_effects(crop, rng, strength)

"""UK number plates rendered to the standard's proportions, for training data and tests.

Dimensions follow the oblong plate drawing (BS AU 145e style): plate 520 x 111 mm, characters
79 mm high and 50 mm wide (narrower for 1 and I), 11 mm between characters, 33 mm between the
two groups. Two-line (square) plates, as on motorcycles and some rear plates: 279 x 203 mm, one
group per line, 19 mm between the lines. Images are clean: callers add camera effects.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.plates import display_text as _display_text

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "CharlesWright-Bold.otf"
"""A Charles Wright style font as on UK plates (MIT licence, fonts/LICENSE-VRM-VLM.txt; a copy of
../shared/data/fonts/, so that plates render where the shared data is absent)."""

PLATE_W_MM, PLATE_H_MM = 520.0, 111.0
CHAR_H_MM, CHAR_W_MM = 79.0, 50.0
CHAR_SPACING_MM, GROUP_GAP_MM = 11.0, 33.0
SQUARE_W_MM, SQUARE_H_MM, LINE_GAP_MM = 279.0, 203.0, 19.0
SIDE_STRIP_MM = 50.0
BORDER_INSET_MM, BORDER_MM = 4.0, 3.0

_FONT_RENDER_PX = 200
"""Glyphs are drawn once at this size and resized per plate."""

FRONT_BGR = (240, 240, 240)
REAR_BGR = (0, 200, 250)
INK_BGR = (25, 25, 25)
STRIP_BGR = (140, 60, 0)

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _pick(rng: np.random.Generator, chars: str, n: int = 1) -> str:
    return "".join(rng.choice(list(chars), size=n))


def _random_current(rng: np.random.Generator) -> str:
    region = _pick(rng, "ABCDEFGHKLMNOPRSVWY")
    local = _pick(rng, "ABCDEFGHJKLMNOPRSTUVWXY")
    year = int(rng.integers(2, 26))
    age = year + 50 * int(rng.integers(0, 2))
    return f"{region}{local}{age:02d}{_pick(rng, 'ABCDEFGHJKLMNOPRSTUVWXYZ', 3)}"


def _random_prefix(rng: np.random.Generator) -> str:
    number = int(rng.integers(1, 1000))
    return (
        f"{_pick(rng, 'ABCDEFGHJKLMNPRSTVWXY')}{number}{_pick(rng, 'ABCDEFGHJKLMNOPRSTUVWXY', 3)}"
    )


def _random_suffix(rng: np.random.Generator) -> str:
    number = int(rng.integers(1, 1000))
    return (
        f"{_pick(rng, 'ABCDEFGHJKLMNOPRSTUVWXY', 3)}{number}{_pick(rng, 'ABCDEFGHJKLMNPRSTVWXY')}"
    )


def _random_dateless(rng: np.random.Generator) -> str:
    letters = _pick(rng, _LETTERS, int(rng.integers(1, 4)))
    digits = str(int(rng.integers(1, 10 ** int(rng.integers(1, 5)))))
    return letters + digits if rng.random() < 0.7 else digits + letters


_NI_AREA_CODES = (
    "AZ BZ CZ DZ FZ GZ HZ IA IB IG IJ IL JZ KZ LZ MZ NZ OI PZ RZ SZ TZ UI UZ VZ WZ XI XZ YZ"
)


def _random_northern_ireland(rng: np.random.Generator) -> str:
    codes = _NI_AREA_CODES.split()
    code = codes[int(rng.integers(len(codes)))]
    serial = _pick(rng, "ABCDEFGHJKLMNPRSTUVWXY") if rng.random() < 0.85 else ""
    return f"{serial}{code}{int(rng.integers(1, 10000))}"


_STYLES = {
    "current": (_random_current, 0.70),
    "prefix": (_random_prefix, 0.10),
    "suffix": (_random_suffix, 0.06),
    "dateless": (_random_dateless, 0.07),
    "northern_ireland": (_random_northern_ireland, 0.07),
}


def random_uk_vrm(rng: np.random.Generator, style: str | None = None) -> str:
    """A random registration in a UK format, e.g. 'AB12CDE'; `style` None mixes all formats."""
    if style is None:
        names = list(_STYLES)
        weights = np.array([_STYLES[n][1] for n in names])
        style = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if style not in _STYLES:
        raise ValueError(f"unknown plate style {style!r}; choose from {', '.join(_STYLES)}")
    return _STYLES[style][0](rng)


def display_text(vrm: str) -> str:
    """The registration grouped as printed on a UK plate: 'AB12CDE' -> 'AB12 CDE'."""
    return _display_text(vrm)


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), _FONT_RENDER_PX)


@lru_cache(maxsize=64)
def _glyph(char: str) -> np.ndarray:
    """The character's ink as a float32 coverage mask in 0..1, cropped to the glyph box."""
    font = _font()
    left, top, right, bottom = font.getbbox(char)
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), char, font=font, fill=255)
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.nonzero(mask > 0.05)
    return mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


@lru_cache(maxsize=1)
def _full_width_px() -> int:
    return _glyph("0").shape[1]


def _paint(image: np.ndarray, mask: np.ndarray, x: int, y: int, colour: tuple[int, ...]) -> None:
    h, w = mask.shape
    region = image[y : y + h, x : x + w].astype(np.float32)
    alpha = mask[..., None]
    image[y : y + h, x : x + w] = (region * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)


def render_plate(
    vrm: str,
    *,
    rear: bool = False,
    char_height_px: int = 48,
    two_line: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A UK plate showing `vrm` as a BGR uint8 image, white (front) or yellow (rear); oblong,
    or square with one group of characters per line (`two_line`).

    With `rng`, the background tint, an optional thin border and an optional blue side strip
    vary; without it the plate is plain and the output deterministic.
    """
    text = display_text(vrm)
    if not text.replace(" ", ""):
        raise ValueError(f"nothing to render in registration {vrm!r}")
    px_per_mm = char_height_px / CHAR_H_MM
    width_mm, height_mm = (SQUARE_W_MM, SQUARE_H_MM) if two_line else (PLATE_W_MM, PLATE_H_MM)
    height = round(height_mm * px_per_mm)
    width = round(width_mm * px_per_mm)
    background = np.array(REAR_BGR if rear else FRONT_BGR, dtype=np.float32)
    has_strip = has_border = False
    if rng is not None:
        background = np.clip(background + rng.normal(0, 8, 3), 0, 255)
        has_strip = rng.random() < 0.3 and not two_line
        has_border = rng.random() < 0.3
    plate = np.empty((height, width, 3), dtype=np.uint8)
    plate[:] = background.astype(np.uint8)

    text_left_px = 0
    if has_strip:
        text_left_px = strip_w = round(SIDE_STRIP_MM * px_per_mm)
        plate[:, :strip_w] = STRIP_BGR
        badge = _glyph_row("UK" if rng is not None and rng.random() < 0.6 else "GB", px_per_mm * 16)
        bx = max(0, (strip_w - badge.shape[1]) // 2)
        by = height - badge.shape[0] - round(8 * px_per_mm)
        _paint(plate, badge[:, : strip_w - bx], bx, max(0, by), (255, 255, 255))

    if two_line and " " in text:
        lines = text.split(" ", 1)
        block_px = (2 * CHAR_H_MM + LINE_GAP_MM) * px_per_mm
        top = round((height - block_px) / 2)
        line_tops = [top, top + round((CHAR_H_MM + LINE_GAP_MM) * px_per_mm)]
    else:
        lines, line_tops = [text], [(height - char_height_px) // 2]
    for line, y in zip(lines, line_tops, strict=True):
        _lay_line(plate, line, y, text_left_px, px_per_mm, char_height_px)

    if has_border:
        inset = round(BORDER_INSET_MM * px_per_mm)
        thickness = max(1, round(BORDER_MM * px_per_mm))
        cv2.rectangle(
            plate,
            (inset, inset),
            (width - 1 - inset, height - 1 - inset),
            INK_BGR,
            thickness,
            lineType=cv2.LINE_AA,
        )
    return plate


def _lay_line(
    plate: np.ndarray, text: str, y: int, left_px: int, px_per_mm: float, char_height_px: int
) -> None:
    """Paint one line of characters, centred between `left_px` and the plate's right edge."""
    glyphs, gaps = [], []
    for i, char in enumerate(text):
        if char == " ":
            gaps[-1] = GROUP_GAP_MM
            continue
        glyph = _glyph(char)
        glyph_w_mm = CHAR_W_MM * glyph.shape[1] / _full_width_px()
        glyph_px = cv2.resize(
            glyph,
            (max(1, round(glyph_w_mm * px_per_mm)), char_height_px),
            interpolation=cv2.INTER_AREA,
        )
        glyphs.append(glyph_px)
        gaps.append(CHAR_SPACING_MM if i < len(text) - 1 else 0.0)
    text_w_px = sum(g.shape[1] for g in glyphs) + sum(gaps) * px_per_mm
    x = left_px + (plate.shape[1] - left_px - text_w_px) / 2
    for glyph_px, gap in zip(glyphs, gaps, strict=True):
        _paint(plate, glyph_px, round(x), y, INK_BGR)
        x += glyph_px.shape[1] + gap * px_per_mm


def _glyph_row(text: str, char_height_px: float) -> np.ndarray:
    """A small line of text (the side strip's country code) as one coverage mask."""
    h = max(3, round(char_height_px))
    masks = [
        cv2.resize(_glyph(c), (max(1, round(h * _glyph(c).shape[1] / _glyph(c).shape[0])), h))
        for c in text
    ]
    gap = np.zeros((h, max(1, h // 5)), dtype=np.float32)
    parts = [m for mask in masks for m in (mask, gap)][:-1]
    return np.concatenate(parts, axis=1)

"""Per-camera calibration: where plates can be, how big they are, which way is towards us.

A calibration file (format: calibration/README.md) gives each camera a region of interest
polygon (detection runs only there), the plate height range in pixels (boxes outside it are not
plates), the image direction a plate moves in when its vehicle approaches (direction of travel),
and optionally the corners of one plate as seen by the camera (perspective correction of crops).
`anpr-edge calibrate` suggests one from a frame or clip.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.config import (
    ConfigError,
    DetectorConfig,
    ReaderConfig,
    format_validation_error,
    read_yaml,
)
from edge.plates import holds_digit
from edge.types import Box, Detection

logger = logging.getLogger(__name__)

DEFAULT_PLATE_HEIGHT_PX = (8, 1000)
UK_PLATE_ASPECT = 520 / 111
"""Width over height of a standard UK plate (520 mm x 111 mm)."""

_CALIBRATION_MIN_CONFIDENCE = 0.8
"""Reads that count as plates when calibrating: a suggestion drawn from a sign read as a plate
("SLOW" read "5LQH" at 0.54) is worse than one sample fewer; plates near enough to calibrate on
read at 0.95 and above."""

_COMPASS = {"down": (0.0, 1.0), "up": (0.0, -1.0), "right": (1.0, 0.0), "left": (-1.0, 0.0)}


class CalibrationError(ConfigError):
    """A calibration file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True, eq=False)
class Calibration:
    camera_id: str
    roi: np.ndarray | None = None
    """Region of interest polygon, N x 2 int32 pixel coordinates; None for the whole frame."""
    plate_height_px: tuple[int, int] = DEFAULT_PLATE_HEIGHT_PX
    """Smallest and largest plate height (pixels) expected in this camera's view."""
    perspective: np.ndarray | None = None
    """3 x 3 homography taking the calibration plate's corners to an upright rectangle centred
    on the origin."""
    towards: tuple[float, float] | None = None
    """Unit image vector a plate moves along when its vehicle approaches the camera; None when
    unknown (direction is then judged from the plate growing or shrinking)."""
    image_size: tuple[int, int] | None = None
    """Width and height of the frames the coordinates refer to, when known."""

    def rectify_plate(self, crop: np.ndarray) -> np.ndarray:
        """The crop with the calibrated plate skew removed (unchanged without a perspective).

        Plates seen by a fixed camera share roughly one skew, so the homography's local linear
        part at the calibration plate, scaled to keep the area, straightens every crop.
        """
        if self.perspective is None or crop.size == 0:
            return crop
        linear = _local_linear_map(self.perspective)
        height, width = crop.shape[:2]
        corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
        mapped = corners @ linear.T
        low, high = mapped.min(axis=0), mapped.max(axis=0)
        affine = np.hstack([linear, -low.reshape(2, 1)])
        size = tuple(int(v) for v in np.ceil(high - low))
        return cv2.warpAffine(
            crop, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def default_calibration(camera_id: str) -> Calibration:
    """The whole frame, any plate height from 8 to 1000 pixels, direction from plate growth."""
    return Calibration(camera_id=camera_id)


_EDGE_PX = 1
"""A box this close to the edge of the searched rectangle touches it."""


class RegionOfInterest:
    """Restricts detection to the calibrated region of interest.

    Detection runs on the polygon's bounding rectangle (a view, no copy: masking the outside
    would cost a full copy per frame and blank the edges of plates straddling the border);
    boxes whose centre lies outside the polygon are then dropped by `contains`.
    """

    def __init__(self, calibration: Calibration):
        self.polygon = calibration.roi
        if self.polygon is None:
            self._rect = None
        else:
            x, y, w, h = cv2.boundingRect(self.polygon)
            self._rect = (x, y, x + w, y + h)

    def crop(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The part of `image` to search and its offset (dx, dy) in the full frame."""
        if self._rect is None:
            return image, (0, 0)
        x0, y0, x1, y1 = self._searched(image.shape)
        return image[y0:y1, x0:x1], (x0, y0)

    def cuts(self, box: Box, image_shape: tuple[int, ...]) -> bool:
        """Whether the box reaches the edge of the searched rectangle (the frame's, or the
        region's bounding rectangle): the plate may go on beyond it, and a read of it may be a
        read of part of it."""
        x0, y0, x1, y1 = self._searched(image_shape)
        x, y, w, h = box
        return (
            x <= x0 + _EDGE_PX
            or y <= y0 + _EDGE_PX
            or x + w >= x1 - _EDGE_PX
            or y + h >= y1 - _EDGE_PX
        )

    def _searched(self, image_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        height, width = image_shape[:2]
        if self._rect is None:
            return 0, 0, width, height
        x0, y0, x1, y1 = self._rect
        x0, y0 = min(max(x0, 0), width), min(max(y0, 0), height)
        x1, y1 = min(max(x1, x0), width), min(max(y1, y0), height)
        return x0, y0, x1, y1

    def contains(self, box: Box) -> bool:
        """Whether the box's centre lies inside the polygon (or on its edge)."""
        if self.polygon is None:
            return True
        x, y, w, h = box
        centre = (float(x + w / 2), float(y + h / 2))
        return cv2.pointPolygonTest(self.polygon, centre, measureDist=False) >= 0


# The file format.

Point = tuple[int, int]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DirectionFile(_Section):
    towards: Literal["up", "down", "left", "right"] | tuple[float, float] = Field(
        description="Image direction of a plate whose vehicle approaches the camera."
    )

    @model_validator(mode="after")
    def _not_zero(self) -> _DirectionFile:
        if not isinstance(self.towards, str) and np.hypot(*self.towards) == 0:
            raise ValueError("towards must be up, down, left, right or a non-zero [dx, dy]")
        return self

    def unit_vector(self) -> tuple[float, float]:
        if isinstance(self.towards, str):
            return _COMPASS[self.towards]
        dx, dy = self.towards
        length = float(np.hypot(dx, dy))
        return (dx / length, dy / length)


class _PerspectiveFile(_Section):
    plate_corners: tuple[Point, Point, Point, Point] = Field(
        description="Top-left, top-right, bottom-right, bottom-left corner of one plate (pixels)."
    )

    @model_validator(mode="after")
    def _convex(self) -> _PerspectiveFile:
        quad = np.array(self.plate_corners, np.float32)
        if not cv2.isContourConvex(quad) or cv2.contourArea(quad) < 4:
            raise ValueError("plate_corners must be 4 corners of a plate, clockwise from top-left")
        return self

    def homography(self) -> np.ndarray:
        quad = np.array(self.plate_corners, np.float32)
        height = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
        right, bottom = height * UK_PLATE_ASPECT / 2, height / 2
        upright = np.array(
            [[-right, -bottom], [right, -bottom], [right, bottom], [-right, bottom]], np.float32
        )
        return cv2.getPerspectiveTransform(quad, upright)


class _CalibrationFile(_Section):
    camera_id: str = Field(min_length=1)
    image_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = None
    roi: list[Point] | None = Field(default=None, min_length=3)
    plate_height_px: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (
        DEFAULT_PLATE_HEIGHT_PX
    )
    direction: _DirectionFile | None = None
    perspective: _PerspectiveFile | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _CalibrationFile:
        low, high = self.plate_height_px
        if low > high:
            raise ValueError(f"plate_height_px: smallest ({low}) is larger than largest ({high})")
        if self.roi is not None:
            if cv2.contourArea(np.array(self.roi, np.float32)) < 1:
                raise ValueError("roi: the polygon encloses no area")
            if self.image_size is not None:
                width, height = self.image_size
                outside = [p for p in self.roi if not (0 <= p[0] <= width and 0 <= p[1] <= height)]
                if outside:
                    raise ValueError(f"roi: points outside the {width}x{height} image: {outside}")
        return self

    def to_calibration(self) -> Calibration:
        return Calibration(
            camera_id=self.camera_id,
            roi=None if self.roi is None else np.array(self.roi, np.int32),
            plate_height_px=self.plate_height_px,
            perspective=None if self.perspective is None else self.perspective.homography(),
            towards=None if self.direction is None else self.direction.unit_vector(),
            image_size=self.image_size,
        )


def load_calibration(path: Path, *, camera_id: str | None = None) -> Calibration:
    """Read a calibration YAML file; with `camera_id`, also check it is that camera's."""
    path = Path(path)
    text, raw = read_yaml(path, "calibration", CalibrationError)
    if not isinstance(raw, dict):
        raise CalibrationError(f"{path}: expected a mapping with camera_id, roi, plate_height_px")
    try:
        parsed = _CalibrationFile.model_validate(raw)
    except ValidationError as error:
        raise CalibrationError(
            format_validation_error(
                path, error, text=text, what="calibration", reference="calibration/README.md"
            )
        ) from None
    if camera_id is not None and parsed.camera_id != camera_id:
        raise CalibrationError(
            f"{path}: camera_id is {parsed.camera_id!r} but the file is configured for camera "
            f"{camera_id!r}"
        )
    return parsed.to_calibration()


def _local_linear_map(homography: np.ndarray) -> np.ndarray:
    """The homography's Jacobian at the plate centre (the point it maps to the origin, so the
    derivative of the projective division vanishes there), scaled to keep area."""
    centre = np.linalg.solve(homography, np.array([0.0, 0.0, 1.0]))
    centre /= centre[2]
    jacobian = homography[:2, :2] / float(homography[2] @ centre)
    return jacobian / np.sqrt(abs(np.linalg.det(jacobian)))


# `anpr-edge calibrate`.


@dataclass(frozen=True)
class Suggestion:
    """What `anpr-edge calibrate` found and proposes for one camera."""

    camera_id: str
    image_size: tuple[int, int]
    plates: list[Detection]
    """Every plate found, across the sampled frames."""
    roi: np.ndarray | None
    plate_height_px: tuple[int, int]
    texts: list[str] = field(default_factory=list)
    """What each plate read as, when known (shown on the annotated frame)."""

    def to_yaml(self, source: Path, frames_sampled: int) -> str:
        lines = [
            f"# Suggested by `anpr-edge calibrate` from {source.name}: {len(self.plates)} plate(s)",
            f"# in {frames_sampled} frame(s). Check it against the PNG beside this file, then",
            "# edit as needed (format: calibration/README.md).",
            f"camera_id: {self.camera_id}",
            f"image_size: [{self.image_size[0]}, {self.image_size[1]}]",
        ]
        if self.roi is None:
            lines.append("# roi: no plates found, so no region of interest (the whole frame)")
        else:
            lines.append("roi:")
            lines += [f"  - [{x}, {y}]" for x, y in self.roi.tolist()]
        low, high = self.plate_height_px
        lines += [
            f"plate_height_px: [{low}, {high}]",
            "# direction:",
            "#   towards: down     # image direction of a plate whose vehicle approaches",
            "# perspective:",
            "#   plate_corners: [[x, y], [x, y], [x, y], [x, y]]   # TL, TR, BR, BL of one plate",
        ]
        return "\n".join(lines) + "\n"


def suggest_calibration(
    camera_id: str,
    image_size: tuple[int, int],
    plates: Sequence[Detection],
    texts: Sequence[str] = (),
) -> Suggestion:
    """A region of interest around every plate position found, and their height range, padded.

    Each plate box is widened by its own width and height on every side (vehicles are seen a
    little before and after the sampled positions), the convex hull is simplified and clipped
    to the frame.
    """
    width, height = image_size
    if not plates:
        return Suggestion(camera_id, image_size, [], None, DEFAULT_PLATE_HEIGHT_PX)
    corners = []
    for plate in plates:
        x, y, w, h = plate.box
        corners += [(x - w, y - h), (x + 2 * w, y - h), (x + 2 * w, y + 2 * h), (x - w, y + 2 * h)]
    points = np.clip(np.array(corners, np.int32), 0, [width - 1, height - 1]).astype(np.int32)
    hull = cv2.convexHull(points)
    epsilon = 0.01 * cv2.arcLength(hull, closed=True)
    roi = cv2.approxPolyDP(hull, epsilon, closed=True).reshape(-1, 2)
    heights = [plate.box[3] for plate in plates]
    smallest = max(DEFAULT_PLATE_HEIGHT_PX[0], int(min(heights) * 0.7))
    plate_range = (smallest, max(smallest, int(np.ceil(max(heights) * 1.4))))
    return Suggestion(camera_id, image_size, list(plates), roi, plate_range, list(texts))


def sample_frames(source: Path, count: int) -> list[np.ndarray]:
    """The image itself, or `count` frames spread evenly through a clip."""
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is not None:
        return [image]
    capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened():
            return []
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:  # length unknown: the first frames
            total = count
        wanted = set(np.linspace(0, total - 1, num=max(count, 1)).astype(int).tolist())
        frames = []
        for index in range(total):
            if index in wanted:
                ok, frame = capture.read()
                if ok:
                    frames.append(frame)
            elif not capture.grab():
                break
        return frames
    finally:
        capture.release()


def annotate(frame: np.ndarray, suggestion: Suggestion) -> np.ndarray:
    """The frame with the suggested ROI and every plate found (box and height) drawn on it."""
    picture = frame.copy()
    if suggestion.roi is not None:
        cv2.polylines(picture, [suggestion.roi], isClosed=True, color=(0, 255, 0), thickness=3)
    texts = suggestion.texts if len(suggestion.texts) == len(suggestion.plates) else None
    for i, plate in enumerate(suggestion.plates):
        x, y, w, h = plate.box
        label = f"{texts[i]} {h}px" if texts else f"{h}px"
        cv2.rectangle(picture, (x, y), (x + w, y + h), (0, 0, 255), 2)
        cv2.putText(
            picture, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1
        )
    low, high = suggestion.plate_height_px
    caption = (
        f"{suggestion.camera_id}: {len(suggestion.plates)} plate(s); "
        f"plate height {low}-{high}px; green: region of interest"
    )
    cv2.putText(picture, caption, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4)
    cv2.putText(picture, caption, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return picture


def calibrate_command(source: Path, camera_id: str, out_dir: Path, *, frames: int) -> int:
    """`anpr-edge calibrate`: write OUT/CAMERA.yaml (suggested calibration) and OUT/CAMERA.png."""
    from edge.detect import make_detector
    from edge.pipeline import PlateFinder
    from edge.read import make_reader

    sampled = sample_frames(source, frames)
    if not sampled:
        print(f"anpr-edge calibrate: {source}: not a readable image or video", file=sys.stderr)
        return 1
    finder = PlateFinder(
        make_detector(DetectorConfig()),
        make_reader(ReaderConfig()),
        _CALIBRATION_MIN_CONFIDENCE,
        default_calibration(camera_id),
    )
    # Only what reads as a registration counts: road markings, signs and words on vehicles
    # would otherwise widen the suggested plate sizes and region of interest.
    per_frame = [[f for f in finder.find(frame) if holds_digit(f.read.text)] for frame in sampled]
    found = [finding for findings in per_frame for finding in findings]
    plates = [finding.detection for finding in found]
    height, width = sampled[0].shape[:2]
    suggestion = suggest_calibration(
        camera_id, (width, height), plates, [finding.read.text for finding in found]
    )
    busiest = max(range(len(sampled)), key=lambda i: len(per_frame[i]))

    out_dir.mkdir(parents=True, exist_ok=True)
    yaml_path = out_dir / f"{camera_id}.yaml"
    png_path = out_dir / f"{camera_id}.png"
    yaml_path.write_text(suggestion.to_yaml(source, len(sampled)), encoding="utf-8")
    if not cv2.imwrite(str(png_path), annotate(sampled[busiest], suggestion)):
        print(f"anpr-edge calibrate: cannot write {png_path}", file=sys.stderr)
        return 1
    low, high = suggestion.plate_height_px
    print(f"{len(plates)} plate(s) found in {len(sampled)} frame(s) of {source}")
    print(
        f"wrote {yaml_path}: plate height {low}-{high}px, "
        + (
            f"region of interest with {len(suggestion.roi)} corners"
            if suggestion.roi is not None
            else "no region of interest (no plates found: the whole frame)"
        )
    )
    print(f"wrote {png_path}: the region of interest and plates found, with their heights")
    return 0

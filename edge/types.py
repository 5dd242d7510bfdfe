"""The small typed interfaces between pipeline stages.

source -> Frame -> detect -> Detection -> read -> PlateRead -> track -> VehicleRead
       -> hotlist -> Hit -> Activation -> alerts (routed, journalled, published)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

Box = tuple[int, int, int, int]
"""x, y, width, height in pixels of the full frame."""


def box_intersection(a: Box, b: Box) -> float:
    """Area the two boxes share."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = min(ax + aw, bx + bw) - max(ax, bx)
    height = min(ay + ah, by + bh) - max(ay, by)
    return float(width * height) if width > 0 and height > 0 else 0.0


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union: 1 for the same box, 0 for boxes apart."""
    inter = box_intersection(a, b)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


@dataclass(frozen=True, slots=True)
class Frame:
    camera_id: str
    index: int
    captured_at: float
    """Wall-clock capture time, seconds since the epoch."""
    scene_time: float
    """When the scene looked like this, seconds since the epoch: the capture time for cameras,
    streams and files paced in real time; for a file replayed as fast as possible, the time the
    replay began plus the frame's position in the clip. Tracking's time windows (`max_gap_s`,
    `repeat_window_s`) run on it, so a fast replay tracks vehicles as a camera would."""
    image: np.ndarray
    """BGR uint8, height x width x 3."""


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box
    score: float
    lines: tuple[Box, ...] = ()
    """A two-line (square) plate's lines of characters, top first, inside `box`; empty for a
    plate of one line."""

    @property
    def text_height(self) -> int:
        """The height of one line of characters (what calibrated plate heights bound)."""
        return self.lines[0][3] if self.lines else self.box[3]


@dataclass(frozen=True, slots=True)
class PlateRead:
    text: str
    """Upper case, no spaces, as corrected by the plate syntax (or exactly as read if it fits none)."""
    confidence: float
    char_confidences: tuple[float, ...]
    alternatives: tuple[tuple[str, float], ...] = ()
    """Other likely texts with their confidences, most likely first, excluding `text`: the
    reader's, for one read; what the disagreeing reads saw, for a pass's fused read. Hotlist
    matching tries these too."""
    plate_format: str | None = None
    """Name of the UK format the text fits (e.g. "current", "prefix"), or None when it fits none."""
    reader_alternatives: tuple[tuple[str, float], ...] = ()
    """A pass's fused read only: the reader's own alternatives of its reads (runner-up
    characters, other UK corrections) that name another vehicle than `text` and `alternatives`
    (look-alikes left out), each with its probability averaged over the reads, most likely
    first. Shown to people, never matched: each is a character from the read
    already, and matching within a character of them too would multiply the possible misreads
    that big hotlists raise by chance."""


class Detector(Protocol):
    def scale_for(self, shape: tuple[int, ...]) -> float:
        """The resampling the detector applies to a whole image of this shape."""
        ...

    def detect(self, image: np.ndarray, scale: float | None = None) -> list[Detection]:
        """Plate boxes in `image` (BGR), most confident first, after resampling the image by
        `scale` (None: `scale_for(image.shape)`). A part of a larger image is searched at the
        whole image's scale, so that it costs its share of the whole."""
        ...

    def detect_parts(
        self, image: np.ndarray, parts: Sequence[Box], scale: float, *, pad_to: int = 0
    ) -> list[Detection]:
        """Plate boxes in the (x, y, w, h) `parts` of `image`, in the image's coordinates, most
        confident first; each part searched at `scale` (the whole image's). With `pad_to`, the
        parts are searched padded to at least that many network pixels each way, for detectors
        that find less in a small input."""
        ...


class Reader(Protocol):
    def read(self, crop: np.ndarray) -> PlateRead | None:
        """Read one plate crop (BGR); None when nothing legible is found."""
        ...

    def read_views(self, crops: Sequence[np.ndarray]) -> PlateRead | None:
        """Read one plate from several crops of it (BGR, e.g. cut with different margins)."""
        ...


@dataclass(frozen=True, slots=True)
class VehicleRead:
    """One fused read per vehicle pass, as emitted by the tracker."""

    camera_id: str
    track_id: int
    read: PlateRead
    captured_at: float
    """Capture time of the best frame of the pass."""
    first_seen: float
    last_seen: float
    box: Box
    """Plate box in the best frame."""
    plate_crop: np.ndarray
    overview: np.ndarray
    direction: str | None = None
    """"towards", "away", or None when the track is too short to tell."""
    frames_seen: int = 1


class Marker(StrEnum):
    FIREARMS = "firearms"
    GANGS = "gangs"
    BURGLARY = "burglary"
    DRUGS = "drugs"


class MatchKind(StrEnum):
    EXACT = "exact"
    POSSIBLE_MISREAD = "possible_misread"


class Role(StrEnum):
    TFC = "tfc"
    """Tactical Firearms Commander: receives every hit whose entry carries a firearms marker."""
    TSG = "tsg"
    """The unit that follows and stops: receives hits with no firearms marker."""


@dataclass(frozen=True, slots=True)
class HotlistEntry:
    entry_id: str
    vrm: str
    markers: frozenset[Marker]
    action: str
    information: str
    source: str
    added: dt.date
    expires: dt.date
    list_name: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    entry: HotlistEntry
    kind: MatchKind
    distance: int
    """0 for an exact match; edit/confusion distance between the read and the entry VRM otherwise."""
    matched_text: str
    """The read text (or alternative) that produced the hit."""


@dataclass(frozen=True, slots=True)
class Activation:
    """A vehicle read that hit one or more hotlist entries: what the alert stage routes and sends."""

    vehicle: VehicleRead
    hits: tuple[Hit, ...]

    @property
    def markers(self) -> frozenset[Marker]:
        return frozenset().union(*(hit.entry.markers for hit in self.hits))

    @property
    def role(self) -> Role:
        return Role.TFC if Marker.FIREARMS in self.markers else Role.TSG

"""The footage set format: video clips, their ground truth, an optional hotlist and config overlay.

A footage set is a folder holding, for each clip `NAME.mp4` (or .avi/.mkv/.mov), a ground-truth
file `NAME.truth.json`, and optionally `hotlist.csv` (the project's hotlist CSV format) and
`config.yaml` (a config overlay applied on top of the replay's config). benchmarks/README.md
documents the format; `load_footage_set` checks it and names the file and field of any problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TRUTH_FORMAT = "anpr-edge-truth/1"
TRUTH_SUFFIX = ".truth.json"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
HOTLIST_NAME = "hotlist.csv"
CONFIG_OVERLAY_NAME = "config.yaml"


class FootageError(Exception):
    """A footage set that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VehiclePass(_Strict):
    """One vehicle passing the camera: the VRM and when its plate is in view."""

    vrm: str = Field(pattern=r"^[A-Z0-9]{1,10}$", description="Upper case, no spaces.")
    first_frame: int = Field(
        ge=0, description="First frame (0-based) with the plate fully in view."
    )
    last_frame: int = Field(ge=0, description="Last frame with the plate fully in view.")
    start_s: float = Field(ge=0, description="first_frame / fps.")
    end_s: float = Field(ge=0, description="last_frame / fps.")
    plate_height_px: float = Field(gt=0, description="Plate height in pixels at its largest.")
    char_height_px: float = Field(gt=0, description="Character height in pixels at its largest.")
    plate: Literal["front", "rear"]
    direction: Literal["towards", "away"]
    lighting: Literal["day", "night"]
    speed_mph: float | None = Field(default=None, ge=0)
    lane: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> VehiclePass:
        if self.last_frame < self.first_frame:
            raise ValueError("last_frame is before first_frame")
        return self


class ClipTruth(_Strict):
    format: Literal["anpr-edge-truth/1"] = TRUTH_FORMAT
    video: str = Field(description="Video file name, in the same folder.")
    fps: float = Field(gt=0)
    frames: int = Field(ge=1)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    generator: str | None = Field(default=None, description="What made the clip, with its options.")
    passes: list[VehiclePass]

    @model_validator(mode="after")
    def _passes_inside_clip(self) -> ClipTruth:
        for index, vehicle in enumerate(self.passes):
            if vehicle.last_frame >= self.frames:
                raise ValueError(
                    f"passes.{index}.last_frame {vehicle.last_frame} is beyond the clip's "
                    f"{self.frames} frames"
                )
        return self


@dataclass(frozen=True, slots=True)
class Clip:
    video: Path
    truth: ClipTruth

    @property
    def name(self) -> str:
        return self.video.stem


@dataclass(frozen=True, slots=True)
class FootageSet:
    root: Path
    clips: tuple[Clip, ...]
    hotlist: Path | None
    config_overlay: Path | None


def truth_path(video: Path) -> Path:
    return video.with_name(video.stem + TRUTH_SUFFIX)


def write_truth(path: Path, truth: ClipTruth) -> None:
    path.write_text(json.dumps(truth.model_dump(), indent=1) + "\n", encoding="utf-8")


def read_truth(path: Path) -> ClipTruth:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise FootageError(f"{path}: cannot read ground truth: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise FootageError(
            f"{path}: line {error.lineno}, column {error.colno}: not valid JSON: {error.msg}"
        ) from None
    try:
        return ClipTruth.model_validate(raw)
    except ValidationError as error:
        problems = [
            f"  {'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        ]
        raise FootageError("\n".join([f"{path}: invalid ground truth", *problems])) from None


def load_footage_set(root: Path) -> FootageSet:
    """Every clip in `root` with its checked ground truth; a clip without truth is an error."""
    root = root.resolve()
    if not root.is_dir():
        raise FootageError(f"{root}: not a folder")
    videos = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise FootageError(f"{root}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    clips = []
    for video in videos:
        path = truth_path(video)
        if not path.exists():
            raise FootageError(f"{video}: no ground truth file {path.name} beside it")
        truth = read_truth(path)
        if truth.video != video.name:
            raise FootageError(f"{path}: video: names {truth.video!r}, expected {video.name!r}")
        clips.append(Clip(video, truth))
    hotlist = root / HOTLIST_NAME
    overlay = root / CONFIG_OVERLAY_NAME
    return FootageSet(
        root=root,
        clips=tuple(clips),
        hotlist=hotlist if hotlist.exists() else None,
        config_overlay=overlay if overlay.exists() else None,
    )

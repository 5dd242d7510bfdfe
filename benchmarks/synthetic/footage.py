"""Synthetic roadside footage with ground truth: vehicles carrying rendered UK plates.

    python -m benchmarks.synthetic.footage OUT_DIR [--seed N] [--seconds S] [--vehicles N]
        [--width 1280 --height 720] [--fps 25] [--night] [--name demo] [--hotlist]

Writes OUT_DIR/NAME.mp4 and OUT_DIR/NAME.truth.json (the footage set format of
benchmarks.footageset), and with --hotlist a hotlist.csv naming some of the clip's VRMs.
Everything is drawn from the seed: the same options give the same frames and truth.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.footageset import ClipTruth, VehiclePass, truth_path, write_truth
from benchmarks.synthetic.render import random_uk_vrm, render_plate
from benchmarks.synthetic.scene import (
    CHAR_HEIGHT_M,
    LANE_CENTRES_M,
    PLATE_HEIGHT_M,
    PLATE_WIDTH_M,
    Camera,
    FaceSprite,
    VehicleBody,
    draw_face,
    draw_vehicle,
    render_background,
)

logger = logging.getLogger(__name__)

FOURCC = "mp4v"
"""The codec OpenCV's bundled FFmpeg writes here ('avc1' needs an encoder it does not ship)."""
MPH = 0.44704
SPEEDS_MPH = (20, 30, 40, 50, 60)
TOWARDS_START_Z_M = 90.0
AWAY_START_Z_M = 3.0
PLATE_MARGIN_PX = 2
"""A plate counts as in view when its box is this far inside the frame edges."""
MIN_PLATE_HEIGHT_PX = 8
"""Smaller plates are not counted as in view: no reader could be expected to read them."""

_BODIES = (  # width, height, length in metres; weight
    ((1.78, 1.45, 4.3), 0.55),
    ((1.85, 1.70, 4.6), 0.25),
    ((2.00, 2.30, 5.4), 0.20),
)
_PAINTS = (  # BGR
    (190, 190, 190), (235, 235, 235), (30, 30, 30), (90, 90, 90), (140, 60, 20),
    (40, 40, 170), (60, 90, 40), (120, 150, 190),
)  # fmt: skip


_UNISSUED_CURRENT = re.compile(r"^[A-Z]{2}0[01][A-Z]{3}$")
"""Current-style VRMs with age identifier 00 or 01: never issued (the series began at 51 in
September 2001, and 00 is not due until 2050), so a hotlist naming them names no real vehicle."""


def fictitious_vrm(rng: np.random.Generator) -> str:
    """A registration in a UK format that names no real vehicle when it is hotlisted: 80% are
    current style with an unissued age identifier, the rest any other UK style."""
    if rng.random() < 0.8:
        vrm = random_uk_vrm(rng, "current")
        return f"{vrm[:2]}0{int(rng.integers(0, 2))}{vrm[4:]}"
    return random_uk_vrm(rng, str(rng.choice(["prefix", "suffix", "dateless", "northern_ireland"])))


def is_unissued(vrm: str) -> bool:
    return _UNISSUED_CURRENT.match(vrm) is not None


@dataclass(frozen=True, slots=True)
class PlannedPass:
    vrm: str
    direction: str
    """"towards" (front plate, far lane) or "away" (rear plate, near lane)."""
    speed_mph: float
    enters_at_s: float
    body: VehicleBody

    @property
    def rear(self) -> bool:
        return self.direction == "away"

    @property
    def lane(self) -> int:
        return 0 if self.direction == "away" else 1

    def face_z(self, t: float) -> float:
        """Distance of the camera-facing end at time t (seconds into the clip)."""
        travelled = self.speed_mph * MPH * (t - self.enters_at_s)
        if self.direction == "towards":
            return TOWARDS_START_Z_M - travelled
        return AWAY_START_Z_M + travelled


@dataclass(frozen=True, slots=True)
class FootageOptions:
    seconds: float = 10.0
    vehicles: int = 5
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    night: bool = False
    zoom: float = 1.0
    directions: tuple[str, ...] = ("towards", "away")
    """Directions taken in turn by successive vehicles."""
    seed: int = 0

    def describe(self) -> str:
        night = " --night" if self.night else ""
        return (
            f"benchmarks.synthetic.footage --seed {self.seed} --seconds {self.seconds:g} "
            f"--vehicles {self.vehicles} --width {self.width} --height {self.height} "
            f"--fps {self.fps:g} --zoom {self.zoom:g} --directions {','.join(self.directions)}"
            f"{night}"
        )


def plan_passes(rng: np.random.Generator, options: FootageOptions) -> list[PlannedPass]:
    """Vehicles entering one after another, taking the directions in turn, mostly one in view."""
    passes = []
    spacing = options.seconds / (options.vehicles + 0.6)
    first_direction = int(rng.integers(0, len(options.directions)))
    for index in range(options.vehicles):
        direction = options.directions[(index + first_direction) % len(options.directions)]
        speed = float(rng.choice(SPEEDS_MPH))
        ((w, h, length),) = [
            _BODIES[i][0] for i in [rng.choice(len(_BODIES), p=[b[1] for b in _BODIES])]
        ]
        colour = _PAINTS[int(rng.integers(0, len(_PAINTS)))]
        travel_s = (TOWARDS_START_Z_M - 8.0) / (speed * MPH) if direction == "towards" else 0.0
        enters_at = index * spacing + 0.2 * spacing * float(rng.random()) - travel_s * 0.75
        passes.append(
            PlannedPass(
                vrm=fictitious_vrm(rng),
                direction=direction,
                speed_mph=speed,
                enters_at_s=enters_at,
                body=VehicleBody(w, h, length, colour),
            )
        )
    return passes


def _plate_corners(camera: Camera, planned: PlannedPass, face: FaceSprite, z: float) -> np.ndarray:
    left = LANE_CENTRES_M[planned.lane] - planned.body.width_m / 2
    cx, cy = face.plate_centre_m
    xs = (left + cx - PLATE_WIDTH_M / 2, left + cx + PLATE_WIDTH_M / 2)
    ys = (cy - PLATE_HEIGHT_M / 2, cy + PLATE_HEIGHT_M / 2)
    points, depth = camera.project(np.array([(x, y, z) for x in xs for y in ys]))
    return points if np.all(depth > 0.5) else np.empty((0, 2))


@dataclass
class _Sighting:
    first_frame: int | None = None
    last_frame: int | None = None
    plate_height_px: float = 0.0


class SyntheticClip:
    """The frames of one clip, rendered on demand, and the ground truth gathered while rendering."""

    def __init__(self, options: FootageOptions):
        self.options = options
        rng = np.random.default_rng(options.seed)
        self.camera = Camera.roadside(options.width, options.height, options.zoom)
        background = render_background(self.camera, rng)
        if options.night:
            background = background * np.array([0.22, 0.17, 0.15], np.float32)
        self.background = background
        self.passes = plan_passes(rng, options)
        self.faces = [
            draw_face(
                p.body,
                render_plate(p.vrm, rear=p.rear, char_height_px=64, rng=rng),
                rear=p.rear,
                night=options.night,
            )
            for p in self.passes
        ]
        self._noise_seed = int(rng.integers(0, 2**31))
        self.frame_count = round(options.seconds * options.fps)
        self._sightings = [_Sighting() for _ in self.passes]

    def frames(self) -> Iterator[np.ndarray]:
        noise_rng = np.random.default_rng(self._noise_seed)
        exposure_s = 1 / 250 if self.options.night else 1 / 1000
        noise_sigma = 6.0 if self.options.night else 2.0
        for index in range(self.frame_count):
            t = index / self.options.fps
            frame = self.background.copy()
            in_view = [
                (planned, face, sighting, planned.face_z(t))
                for planned, face, sighting in zip(
                    self.passes, self.faces, self._sightings, strict=True
                )
                if 1.0 < planned.face_z(t) < TOWARDS_START_Z_M + 1
            ]
            for planned, face, sighting, z in sorted(in_view, key=lambda item: -item[3]):
                corners = _plate_corners(self.camera, planned, face, z)
                later = _plate_corners(self.camera, planned, face, planned.face_z(t + exposure_s))
                blur = (0.0, 0.0)
                if len(corners) and len(later):
                    blur = tuple((later.mean(axis=0) - corners.mean(axis=0)).tolist())
                draw_vehicle(
                    frame,
                    self.camera,
                    planned.body,
                    face,
                    lane_x=LANE_CENTRES_M[planned.lane],
                    face_z=z,
                    blur=blur,
                    night=self.options.night,
                )
                self._record(sighting, corners, index)
            frame = cv2.GaussianBlur(frame, (0, 0), 0.5)
            frame += noise_rng.normal(0.0, noise_sigma, frame.shape).astype(np.float32)
            yield np.clip(frame, 0, 255).astype(np.uint8)

    def _record(self, sighting: _Sighting, corners: np.ndarray, index: int) -> None:
        if not len(corners):
            return
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        inside = (
            x0 >= PLATE_MARGIN_PX
            and y0 >= PLATE_MARGIN_PX
            and x1 <= self.options.width - PLATE_MARGIN_PX
            and y1 <= self.options.height - PLATE_MARGIN_PX
        )
        if not inside or y1 - y0 < MIN_PLATE_HEIGHT_PX:
            return
        if sighting.first_frame is None:
            sighting.first_frame = index
        sighting.last_frame = index
        sighting.plate_height_px = max(sighting.plate_height_px, float(y1 - y0))

    def truth(self, video_name: str) -> ClipTruth:
        """Ground truth of the frames rendered so far (call after iterating `frames`)."""
        fps = self.options.fps
        passes = []
        for planned, sighting in zip(self.passes, self._sightings, strict=True):
            if sighting.first_frame is None or sighting.last_frame is None:
                continue
            passes.append(
                VehiclePass(
                    vrm=planned.vrm,
                    first_frame=sighting.first_frame,
                    last_frame=sighting.last_frame,
                    start_s=round(sighting.first_frame / fps, 3),
                    end_s=round(sighting.last_frame / fps, 3),
                    plate_height_px=round(sighting.plate_height_px, 1),
                    char_height_px=round(
                        sighting.plate_height_px * CHAR_HEIGHT_M / PLATE_HEIGHT_M, 1
                    ),
                    plate="rear" if planned.rear else "front",
                    direction=planned.direction,
                    lighting="night" if self.options.night else "day",
                    speed_mph=planned.speed_mph,
                    lane=planned.lane,
                )
            )
        passes.sort(key=lambda p: p.first_frame)
        return ClipTruth(
            video=video_name,
            fps=fps,
            frames=self.frame_count,
            width=self.options.width,
            height=self.options.height,
            generator=self.options.describe(),
            passes=passes,
        )


def write_clip(
    out_dir: Path, name: str, options: FootageOptions, *, progress: bool = True
) -> ClipTruth:
    """Render the clip to OUT_DIR/NAME.mp4 and its truth to NAME.truth.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"{name}.mp4"
    clip = SyntheticClip(options)
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*FOURCC), options.fps, (options.width, options.height)
    )
    if not writer.isOpened():
        raise RuntimeError(f"{video}: OpenCV cannot write {FOURCC!r} video here")
    try:
        for frame in tqdm(
            clip.frames(), total=clip.frame_count, desc=name, disable=not progress, mininterval=1.0
        ):
            writer.write(frame)
    finally:
        writer.release()
    truth = clip.truth(video.name)
    write_truth(truth_path(video), truth)
    return truth


HOTLIST_HEADER = (
    "entry_id",
    "vrm",
    "markers",
    "action",
    "information",
    "source",
    "added",
    "expires",
)
_HOTLIST_ROLES = (  # markers, action, information
    ("firearms", "stop - armed support", "Occupant believed to carry a handgun (synthetic)"),
    ("drugs", "stop and search", "Class A supply (synthetic)"),
    ("firearms;gangs", "do not stop - armed support, follow", "Gang nominal, firearms (synthetic)"),
    ("burglary", "stop - investigate", "Used in burglaries (synthetic)"),
    ("gangs", "intelligence report", "Associated with gang (synthetic)"),
)


def write_hotlist(path: Path, truths: Sequence[ClipTruth], *, unlisted: int = 1) -> None:
    """A hotlist naming the clips' unissued VRMs in pass order, with markers taken in turn from
    _HOTLIST_ROLES, leaving each clip's last `unlisted` passes off the list."""
    listed = [
        vehicle.vrm
        for truth in truths
        for vehicle in truth.passes[: max(0, len(truth.passes) - unlisted)]
        if is_unissued(vehicle.vrm)
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HOTLIST_HEADER)
        roles = itertools.cycle(_HOTLIST_ROLES)
        for index, (vrm, (markers, action, info)) in enumerate(zip(listed, roles)):
            writer.writerow(
                [f"SYN-{index + 1:04d}", vrm, markers, action, info, "synthetic footage",
                 "2026-01-01", "2030-01-01"]
            )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.synthetic.footage",
        description="Render synthetic roadside footage with ground truth (footage set format).",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--name", default="synthetic", help="Clip name (NAME.mp4, NAME.truth.json)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--vehicles", type=int, default=5, help="Vehicle passes in the clip.")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument(
        "--night", action="store_true", help="Night: dark scene, lamps, more noise."
    )
    parser.add_argument(
        "--zoom", type=float, default=1.0, help="Lens zoom: 1 gives 20-35 px characters at 1280 px."
    )
    parser.add_argument(
        "--directions",
        default="towards,away",
        help="Directions taken in turn, comma-separated: towards (front plate), away (rear plate).",
    )
    parser.add_argument(
        "--hotlist", action="store_true", help="Also write hotlist.csv naming all but the last VRM."
    )
    args = parser.parse_args(argv)
    if min(args.seconds, args.fps, args.zoom) <= 0 or args.vehicles < 1:
        parser.error("--seconds, --fps and --zoom must be positive, --vehicles at least 1")
    directions = tuple(args.directions.split(","))
    if not directions or not set(directions) <= {"towards", "away"}:
        parser.error("--directions takes towards and/or away, comma-separated")
    if min(args.width, args.height) < 64:
        parser.error("--width and --height must be at least 64")
    options = FootageOptions(
        seconds=args.seconds,
        vehicles=args.vehicles,
        width=args.width,
        height=args.height,
        fps=args.fps,
        night=args.night,
        zoom=args.zoom,
        directions=directions,
        seed=args.seed,
    )
    truth = write_clip(args.out_dir, args.name, options)
    if args.hotlist:
        write_hotlist(args.out_dir / "hotlist.csv", [truth])
    for vehicle in truth.passes:
        print(
            f"{vehicle.vrm:8} {vehicle.direction:7} "
            f"frames {vehicle.first_frame}-{vehicle.last_frame}"
            f" plate {vehicle.plate_height_px:.0f}px chars {vehicle.char_height_px:.0f}px"
            f" {vehicle.speed_mph:.0f}mph"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

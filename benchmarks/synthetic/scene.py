"""A procedural roadside scene seen by a pinhole camera, and vehicles drawn into it in perspective.

World coordinates, metres: X across the road (0 at the near kerb, increasing away from the
camera's side), Y up from the road surface, Z along the road away from the camera. The camera
sits on a parked vehicle on the near verge, pitched down and turned towards the road, as a
roof-mounted ANPR camera is. Traffic keeps left: the near lane goes away, the far lane comes
towards the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LANE_WIDTH_M = 3.25
ROAD_WIDTH_M = 2 * LANE_WIDTH_M
LANE_CENTRES_M = (LANE_WIDTH_M / 2, LANE_WIDTH_M * 1.5)
"""Near lane (traffic going away), far lane (traffic coming towards the camera)."""
PLATE_WIDTH_M = 0.520
PLATE_HEIGHT_M = 0.111
CHAR_HEIGHT_M = 0.079


@dataclass(frozen=True, slots=True)
class Camera:
    width: int
    height: int
    focal_px: float
    position: tuple[float, float, float]
    pitch_deg: float
    yaw_deg: float

    @classmethod
    def roadside(cls, width: int, height: int, zoom: float = 1.0) -> Camera:
        """At zoom 1, a lens giving plate characters of 25-35 px near the camera at 1280 x 720;
        more zoom narrows the view and enlarges plates.

        The camera is turned towards the road just far enough that the near lane vanishes at
        the left edge of the picture: the far lane's vehicles then stay in view as close as
        they can."""
        focal_px = 2.1 * width * zoom
        half_view_deg = float(np.degrees(np.arctan(width / 2 / focal_px)))
        return cls(
            width=width,
            height=height,
            focal_px=focal_px,
            position=(0.3, 2.3, 0.0),
            pitch_deg=7.0,
            yaw_deg=half_view_deg + 1.6,
        )

    @property
    def rotation(self) -> np.ndarray:
        """World-to-camera rotation: yaw about Y (towards +X), then pitch down about X."""
        yaw, pitch = np.radians(self.yaw_deg), np.radians(self.pitch_deg)
        turn = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
        tilt = np.array(
            [[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]]
        )
        return tilt @ turn

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N x 2, x right, y down) and depth (N) of world points (N x 3)."""
        relative = np.asarray(points, dtype=np.float64) - np.array(self.position)
        cam = relative @ self.rotation.T
        depth = cam[:, 2]
        safe = np.maximum(depth, 1e-6)
        x = self.width / 2 + self.focal_px * cam[:, 0] / safe
        y = self.height / 2 - self.focal_px * cam[:, 1] / safe
        return np.stack([x, y], axis=1), depth

    def ground_rays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World X and Z where each pixel's ray meets the road, and a mask of those that do."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        rays = np.stack(
            [
                (xs - self.width / 2) / self.focal_px,
                -(ys - self.height / 2) / self.focal_px,
                np.ones_like(xs),
            ],
            axis=-1,
        )
        world = rays @ self.rotation
        down = world[..., 1] < -1e-4
        t = np.where(down, self.position[1] / np.maximum(-world[..., 1], 1e-4), 0.0)
        return self.position[0] + t * world[..., 0], self.position[2] + t * world[..., 2], down


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid scaled up with cubic interpolation."""
    coarse = rng.random((max(2, shape[0] // cells), max(2, shape[1] // cells))).astype(np.float32)
    return np.clip(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1)


def render_background(camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """The empty scene in daylight: sky, treeline, verges, road surface and markings (BGR float)."""
    h, w = camera.height, camera.width
    world_x, world_z, on_ground = camera.ground_rays()
    image = np.zeros((h, w, 3), np.float32)

    rows = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = (1 - rows) * np.array([235, 200, 160], np.float32) + rows * np.array(
        [250, 235, 215], np.float32
    )
    image[:] = sky

    texture = rng.random((1024, 1024)).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
    grain = cv2.remap(
        texture,
        np.mod(world_x * 40, 1023).astype(np.float32),
        np.mod(world_z * 40, 1023).astype(np.float32),
        cv2.INTER_LINEAR,
    )
    patches = cv2.remap(
        _value_noise(rng, (256, 256), 8),
        np.mod(world_x * 4 + 64, 255).astype(np.float32),
        np.mod(world_z * 2, 255).astype(np.float32),
        cv2.INTER_LINEAR,
    )
    far_fade = np.clip(world_z / 150.0, 0, 1)[..., None]
    road = (world_x >= 0) & (world_x <= ROAD_WIDTH_M)
    asphalt = (
        np.array([92, 94, 98], np.float32)
        * (0.85 + 0.25 * grain[..., None])
        * (0.92 + 0.16 * patches[..., None])
    )
    grass = (
        np.array([60, 120, 85], np.float32)
        * (0.7 + 0.5 * grain[..., None])
        * (0.8 + 0.4 * patches[..., None])
    )
    kerb = (np.abs(world_x) < 0.15) | (np.abs(world_x - ROAD_WIDTH_M) < 0.15)
    dash = np.mod(world_z, 9.0) < 2.0
    centre_line = (np.abs(world_x - LANE_WIDTH_M) < 0.06) & dash
    edge_lines = (np.abs(world_x - 0.3) < 0.05) | (np.abs(world_x - ROAD_WIDTH_M + 0.3) < 0.05)
    ground = np.where(road[..., None], asphalt, grass)
    ground = np.where(kerb[..., None], np.float32(150) * (0.8 + 0.3 * grain[..., None]), ground)
    paint = np.array([225, 228, 230], np.float32) * (0.85 + 0.15 * grain[..., None])
    ground = np.where((centre_line | edge_lines)[..., None], paint, ground)
    haze = np.array([215, 205, 195], np.float32)
    ground = ground * (1 - 0.6 * far_fade) + haze * 0.6 * far_fade
    image = np.where(on_ground[..., None], ground, image)

    horizon = camera.project(np.array([[0.0, 0.0, 5000.0]]))[0][0, 1]
    treeline = horizon - (8 + 30 * _value_noise(rng, (1, w), 24)[0]) * (w / 1280)
    trees_mask = (np.arange(h)[:, None] >= treeline[None, :]) & ~on_ground
    leaves = (
        np.array([50, 85, 55], np.float32) * (0.6 + 0.6 * _value_noise(rng, (h, w), 6))[..., None]
    )
    image = np.where(trees_mask[..., None], leaves, image)
    return cv2.GaussianBlur(image, (0, 0), 0.6)


@dataclass(frozen=True, slots=True)
class VehicleBody:
    width_m: float
    height_m: float
    length_m: float
    colour: tuple[int, int, int]
    """BGR paint colour."""


@dataclass(frozen=True, slots=True)
class FaceSprite:
    """The camera-facing end of a vehicle (front or rear), drawn flat at a fixed scale."""

    image: np.ndarray
    """BGR float32."""
    alpha: np.ndarray
    """float32 in [0, 1]."""
    lights: tuple[tuple[float, float], ...]
    """Lamp centres in metres from the face's bottom-left corner (x right, y up)."""
    plate_centre_m: tuple[float, float]
    rear: bool


SPRITE_PX_PER_M = 400


def draw_face(body: VehicleBody, plate: np.ndarray, *, rear: bool, night: bool) -> FaceSprite:
    """Bumper, grille or boot, lamps, glass and the plate of one end of a vehicle."""
    scale = SPRITE_PX_PER_M
    w, h = int(body.width_m * scale), int(body.height_m * scale)
    image = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)

    def px(x_m: float, y_m: float) -> tuple[int, int]:
        return round(x_m * scale), round(h - y_m * scale)

    paint = np.array(body.colour, np.float32)
    glass = np.array([70, 55, 45], np.float32)
    lower_top = 0.55 * body.height_m
    cv2.rectangle(image, px(0, lower_top), px(body.width_m, 0.18), paint.tolist(), -1)
    cv2.rectangle(alpha, px(0, lower_top), px(body.width_m, 0.18), 1.0, -1)
    inset = 0.12 * body.width_m
    roof = body.height_m - 0.02
    pillars = np.array(
        [
            px(0.03, lower_top),
            px(inset, roof),
            px(body.width_m - inset, roof),
            px(body.width_m - 0.03, lower_top),
        ],
        np.int32,
    )
    cv2.fillConvexPoly(image, pillars, (paint * 0.9).tolist())
    cv2.fillConvexPoly(alpha, pillars, 1.0)
    window = np.array(
        [
            px(0.12, lower_top + 0.04),
            px(inset + 0.06, roof - 0.06),
            px(body.width_m - inset - 0.06, roof - 0.06),
            px(body.width_m - 0.12, lower_top + 0.04),
        ],
        np.int32,
    )
    cv2.fillConvexPoly(image, window, glass.tolist())
    sheen = np.linspace(1.25, 0.8, h, dtype=np.float32)[:, None, None]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, window, 1)
    image = np.where(mask[..., None] > 0, image * sheen, image)

    bumper = (paint * 0.55).tolist()
    cv2.rectangle(image, px(0, 0.32), px(body.width_m, 0.18), bumper, -1)
    for x_m in (0.18, body.width_m - 0.48):
        cv2.rectangle(image, px(x_m, 0.18), px(x_m + 0.3, 0.0), (25, 25, 25), -1)
        cv2.rectangle(alpha, px(x_m, 0.18), px(x_m + 0.3, 0.0), 1.0, -1)

    lamp_y = lower_top - 0.1
    lamp_w = 0.24
    lights = ((0.08 + lamp_w / 2, lamp_y), (body.width_m - 0.08 - lamp_w / 2, lamp_y))
    lamp = (40, 40, 210) if rear else (235, 240, 245)
    if night:
        lamp = (80, 80, 255) if rear else (255, 255, 255)
    for cx, cy in lights:
        cv2.rectangle(
            image, px(cx - lamp_w / 2, cy + 0.06), px(cx + lamp_w / 2, cy - 0.06), lamp, -1
        )
    if not rear:
        grille_top = min(lower_top - 0.16, 0.78)
        cv2.rectangle(image, px(0.5, grille_top), px(body.width_m - 0.5, 0.5), (30, 30, 30), -1)

    plate_centre = (body.width_m / 2, 0.5 if rear else 0.4)
    x0, y0 = px(plate_centre[0] - PLATE_WIDTH_M / 2, plate_centre[1] + PLATE_HEIGHT_M / 2)
    x1, y1 = px(plate_centre[0] + PLATE_WIDTH_M / 2, plate_centre[1] - PLATE_HEIGHT_M / 2)
    image[y0:y1, x0:x1] = cv2.resize(
        plate, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    if night:
        lit = np.zeros((h, w), np.float32)
        for cx, cy in lights:
            cv2.rectangle(
                lit, px(cx - lamp_w / 2, cy + 0.06), px(cx + lamp_w / 2, cy - 0.06), 1.0, -1
            )
        cv2.rectangle(lit, (x0, y0), (x1, y1), 0.85, -1)
        image *= np.maximum(lit, 0.25)[..., None]
    return FaceSprite(
        image=image, alpha=alpha, lights=lights, plate_centre_m=plate_centre, rear=rear
    )


def _paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend `patch` into `frame` with its top-left at (x, y), clipped to the frame."""
    h, w = frame.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + patch.shape[1], w), min(y + patch.shape[0], h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    region = frame[y0:y1, x0:x1]
    region[:] = region * (1 - a) + patch[y0 - y : y1 - y, x0 - x : x1 - x] * a


def motion_kernel(dx: float, dy: float) -> np.ndarray | None:
    """A normalised line kernel for a blur of (dx, dy) pixels, or None when under a pixel."""
    length = float(np.hypot(dx, dy))
    if length < 1.0:
        return None
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    cv2.line(
        kernel,
        (round(c - dx / 2), round(c - dy / 2)),
        (round(c + dx / 2), round(c + dy / 2)),
        1.0,
        1,
        cv2.LINE_AA,
    )
    return kernel / kernel.sum()


def draw_vehicle(
    frame: np.ndarray,
    camera: Camera,
    body: VehicleBody,
    face: FaceSprite,
    *,
    lane_x: float,
    face_z: float,
    blur: tuple[float, float],
    night: bool,
) -> None:
    """Shadow, side, roof and face of a vehicle whose camera-facing end is at distance `face_z`.

    Drawn in place into `frame` (BGR float32), within the vehicle's bounding box only."""
    left, right = lane_x - body.width_m / 2, lane_x + body.width_m / 2
    back = face_z + body.length_m
    h = body.height_m
    corners = [(x, y, z) for x in (left - 0.2, right + 0.3) for y in (0.0, h)
               for z in (face_z - 0.3, back + 0.2)]  # fmt: skip
    points, depth = camera.project(np.array(corners))
    if np.any(depth < 0.5):
        return
    pad = int(np.ceil(np.hypot(*blur))) + 4
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + pad
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = frame[y0:y1, x0:x1]
    offset = np.array([x0, y0], np.float64)

    def quad(world: list[tuple[float, float, float]]) -> np.ndarray:
        return camera.project(np.array(world))[0] - offset

    def fill(target: np.ndarray, polygon: np.ndarray, value: object) -> None:
        cv2.fillConvexPoly(target, np.round(polygon * 4).astype(np.int32), value, cv2.LINE_AA, 2)

    shade = np.zeros(region.shape[:2], np.float32)
    fill(
        shade,
        quad(
            [
                (left - 0.2, 0, face_z - 0.3),
                (right + 0.3, 0, face_z - 0.3),
                (right + 0.3, 0, back + 0.2),
                (left - 0.2, 0, back + 0.2),
            ]
        ),
        1.0,
    )
    shade = cv2.GaussianBlur(shade, (0, 0), max(1.0, 0.02 * camera.width / max(face_z, 1)))
    region *= 1 - (0.25 if night else 0.5) * shade[..., None]

    layer = np.zeros_like(region)
    cover = np.zeros(region.shape[:2], np.float32)
    paint = np.array(body.colour, np.float32) * (0.3 if night else 1.0)
    glass = np.array([40, 35, 30], np.float32) * (0.4 if night else 1.0)
    panels = (
        ([(left, 0.18, face_z), (left, h * 0.55, face_z), (left, h * 0.55, back),
          (left, 0.18, back)], paint * 0.7),
        ([(left, h * 0.55, face_z), (left + 0.2, h, face_z + 0.4), (left + 0.2, h, back - 0.4),
          (left, h * 0.55, back)], paint * 0.6),
        ([(left, h * 0.6, face_z + 0.6), (left + 0.05, h * 0.95, face_z + 1.2),
          (left + 0.05, h * 0.95, back - 0.8), (left, h * 0.6, back - 0.3)], glass),
        ([(left + 0.2, h, face_z + 0.4), (right - 0.2, h, face_z + 0.4),
          (right - 0.2, h, back - 0.4),
          (left + 0.2, h, back - 0.4)], np.minimum(paint * 1.1, 255)),
    )  # fmt: skip
    for world, colour in panels:
        polygon = quad(world)
        fill(layer, polygon, colour.tolist())
        fill(cover, polygon, 1.0)

    target = quad([(left, 0, face_z), (right, 0, face_z), (right, h, face_z), (left, h, face_z)])
    sh, sw = face.alpha.shape
    source = np.float32([[0, sh], [sw, sh], [sw, 0], [0, 0]])
    homography = cv2.getPerspectiveTransform(source, target.astype(np.float32))
    size = (region.shape[1], region.shape[0])
    warped = cv2.warpPerspective(face.image, homography, size, flags=cv2.INTER_AREA)
    warped_alpha = cv2.warpPerspective(face.alpha, homography, size, flags=cv2.INTER_LINEAR)
    layer = layer * (1 - warped_alpha[..., None]) + warped * warped_alpha[..., None]
    cover = np.maximum(cover, warped_alpha)

    kernel = motion_kernel(*blur)
    if kernel is not None:
        layer = cv2.filter2D(layer, -1, kernel)
        cover = cv2.filter2D(cover, -1, kernel)
    region *= 1 - cover[..., None]
    region += layer
    if night:
        _draw_lamp_glare(frame, camera, face, left, face_z)


def _draw_lamp_glare(
    frame: np.ndarray, camera: Camera, face: FaceSprite, left: float, face_z: float
) -> None:
    """Bloom around lit lamps at night: white headlamps, red tail lamps."""
    colour = np.array((60, 60, 255) if face.rear else (255, 250, 240), np.float32)
    for lx, ly in face.lights:
        centre, depth = camera.project(np.array([[left + lx, ly, face_z]]))
        radius = camera.focal_px * 0.12 / depth[0]
        reach = int(radius * 5) + 2
        cx, cy = (int(v) for v in centre[0])
        x0, y0 = max(cx - reach, 0), max(cy - reach, 0)
        x1, y1 = min(cx + reach, frame.shape[1]), min(cy + reach, frame.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        # A Gaussian bloom, as a lens and sensor spread a lamp far brighter than the scene.
        sigma = 1.6 * radius + 1
        dy, dx = np.ogrid[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
        glow = np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)).astype(np.float32)
        frame[y0:y1, x0:x1] += glow[..., None] * colour * 0.45

"""Train `models/plate_detector.onnx`: a small text detector distilled from the PP-OCRv4 DBNet.

The student learns to give, from a frame at half the scale, the probability map that the
DBNet (`models/text_detector.onnx`, the teacher) gives at full scale (a 1280 px frame), so that
`edge.detect.TextLineDetector` uses either model unchanged: same input (BGR, ImageNet
normalisation, sides multiples of 32), same output (1x1xHxW text-kernel probability at the
input's size). Training images, none of them held out from the reader (`reader_data`):

- the training-split shared photos, long side 1280;
- the same photos with rendered UK plates pasted on (1-3 each, 40-220 px wide);
- frames of rendered footage (`benchmarks/synthetic`), when given with `--footage`.

The teacher's maps are computed once and cached in `build/plate_detector_data.npz`. Crops are
trained at random scales (0.3-0.8 of the 1280 px frame) with camera effects on the image only,
normalised as the detector normalises its input. The command that built the committed model is
in models/README.md.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.nn import functional

from edge.detect import _IMAGENET_MEAN, DEFAULT_TEXT_MODEL, _mean_canvas, _padded_side, _place
from models.build.reader_data import (
    camera_effects,
    load_real_plates,
    render_uk_plate,
)

logger = logging.getLogger("train_plate_detector")

ROOT = Path(__file__).resolve().parents[2]
DATA_CACHE = ROOT / "build" / "plate_detector_data.npz"
CHECKPOINT = ROOT / "build" / "plate_detector_checkpoint.pt"
OUTPUT = ROOT / "models" / "plate_detector.onnx"

TEACHER_LONG_SIDE = 1280
CROP = 256
MEAN_COLOUR = (_IMAGENET_MEAN * 255).astype(np.uint8)


def teacher_map(session: ort.InferenceSession, image: np.ndarray) -> np.ndarray:
    """The teacher's probability map (uint8, 0-255) at the size of `image` (long side 1280)."""
    height, width = image.shape[:2]
    canvas = _mean_canvas(_padded_side(height, 0), _padded_side(width, 0))
    _place(canvas, image, 1.0, 0, 0)
    probability = session.run(None, {session.get_inputs()[0].name: canvas})[0][0, 0]
    return np.round(probability[:height, :width] * 255).astype(np.uint8)


def at_frame_scale(image: np.ndarray) -> np.ndarray:
    scale = TEACHER_LONG_SIDE / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interpolation)


def with_pasted_plates(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo with 1-3 rendered UK plates pasted where they fit, slightly turned."""
    out = image.copy()
    height, width = out.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        plate = render_uk_plate(rng).image
        plate_width = int(rng.uniform(40, 220))
        plate_height = max(8, round(plate.shape[0] * plate_width / plate.shape[1]))
        if plate_width >= width - 4 or plate_height >= height - 4:
            continue
        x = int(rng.integers(0, width - plate_width))
        y = int(rng.integers(height // 5, height - plate_height))
        corners = np.float32(
            [[0, 0], [plate.shape[1], 0], [plate.shape[1], plate.shape[0]], [0, plate.shape[0]]]
        )
        jitter = rng.uniform(-0.06, 0.06, (4, 2)) * [plate_width, plate_height]
        target = (
            np.float32(
                [
                    [x, y],
                    [x + plate_width, y],
                    [x + plate_width, y + plate_height],
                    [x, y + plate_height],
                ]
            )
            + jitter
        ).astype(np.float32)
        warp = cv2.getPerspectiveTransform(corners, target)
        warped = cv2.warpPerspective(plate, warp, (width, height))
        mask = cv2.warpPerspective(np.full(plate.shape[:2], 255, np.uint8), warp, (width, height))
        shade = rng.uniform(0.5, 1.1)
        warped = np.clip(warped.astype(np.float32) * shade, 0, 255).astype(np.uint8)
        out[mask > 127] = warped[mask > 127]
    return out


def footage_frames(paths: list[Path], every: int) -> list[np.ndarray]:
    frames = []
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                frames.append(at_frame_scale(frame))
            index += 1
        capture.release()
    return frames


def build_data(footage: list[Path], footage_every: int, seed: int) -> tuple[list, list]:
    if DATA_CACHE.is_file():
        cached = np.load(DATA_CACHE, allow_pickle=True)
        return list(cached["images"]), list(cached["maps"])
    rng = np.random.default_rng(seed)
    photos = [at_frame_scale(plate.image) for plate in load_real_plates(held_out=False)]
    images = photos + [with_pasted_plates(photo, rng) for photo in photos for _ in range(2)]
    images += footage_frames(footage, footage_every)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(DEFAULT_TEXT_MODEL), options, providers=["CPUExecutionProvider"]
    )
    started = time.monotonic()
    maps = [teacher_map(session, image) for image in images]
    logger.info("teacher maps for %d images in %.0f s", len(images), time.monotonic() - started)
    DATA_CACHE.parent.mkdir(exist_ok=True)
    np.savez(DATA_CACHE, images=np.array(images, dtype=object), maps=np.array(maps, dtype=object))
    return images, maps


def sample(
    images: list, maps: list, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """One CROP x CROP training pair: normalised CHW image, target map (0-1)."""
    index = int(rng.integers(len(images)))
    image, target = images[index], maps[index]
    scale = rng.uniform(0.3, 0.8)
    size = (max(8, round(image.shape[1] * scale)), max(8, round(image.shape[0] * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    target = cv2.resize(target, size, interpolation=cv2.INTER_AREA)
    height, width = target.shape
    ys, xs = np.nonzero(target > 128)
    if len(xs) and rng.random() < 0.7:
        pick = int(rng.integers(len(xs)))
        cx, cy = (
            xs[pick] + rng.integers(-CROP // 3, CROP // 3),
            ys[pick] + rng.integers(-CROP // 3, CROP // 3),
        )
    else:
        cx, cy = rng.integers(0, width), rng.integers(0, height)
    left = int(np.clip(cx - CROP // 2, 0, max(0, width - CROP)))
    top = int(np.clip(cy - CROP // 2, 0, max(0, height - CROP)))
    image_crop = np.empty((CROP, CROP, 3), np.uint8)
    image_crop[:] = MEAN_COLOUR
    target_crop = np.zeros((CROP, CROP), np.uint8)
    cut = image[top : top + CROP, left : left + CROP]
    image_crop[: cut.shape[0], : cut.shape[1]] = cut
    target_crop[: cut.shape[0], : cut.shape[1]] = target[top : top + CROP, left : left + CROP]
    if rng.random() < 0.8:
        image_crop = camera_effects(image_crop, rng, strength * 0.6)
    normalised = _mean_canvas(CROP, CROP)
    _place(normalised, image_crop, 1.0, 0, 0)
    return normalised[0], target_crop.astype(np.float32) / 255


def separable(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, inputs, 3, stride, 1, groups=inputs, bias=False),
        nn.BatchNorm2d(inputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(inputs, outputs, 1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class PlateDetectorNet(nn.Module):
    """A stride-16 encoder with a light feature pyramid back to stride 2, and a probability
    map upsampled to the input's size."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)
        )  # 1/2
        self.stage4 = nn.Sequential(separable(16, 32, 2), separable(32, 32))  # 1/4
        self.stage8 = nn.Sequential(
            separable(32, 64, 2), separable(64, 64), separable(64, 64)
        )  # 1/8
        self.stage16 = nn.Sequential(
            separable(64, 96, 2), separable(96, 96), separable(96, 96)
        )  # 1/16
        self.lateral16 = nn.Conv2d(96, 48, 1)
        self.lateral8 = nn.Conv2d(64, 48, 1)
        self.lateral4 = nn.Conv2d(32, 48, 1)
        self.smooth4 = separable(48, 32)
        self.lateral2 = nn.Conv2d(16, 32, 1)
        self.head = nn.Sequential(separable(32, 16), nn.Conv2d(16, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        half = self.stem(image)
        quarter = self.stage4(half)
        eighth = self.stage8(quarter)
        sixteenth = self.stage16(eighth)
        top = self.lateral16(sixteenth)
        merged8 = self.lateral8(eighth) + functional.interpolate(top, size=eighth.shape[2:])
        merged4 = self.lateral4(quarter) + functional.interpolate(merged8, size=quarter.shape[2:])
        merged2 = self.lateral2(half) + functional.interpolate(
            self.smooth4(merged4), size=half.shape[2:], mode="bilinear", align_corners=False
        )
        logits = self.head(merged2)
        return functional.interpolate(
            logits, size=image.shape[2:], mode="bilinear", align_corners=False
        )


def loss_of(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the teacher's soft map, text pixels weighted up, plus dice."""
    weight = 1.0 + 4.0 * (target > 0.3).float()
    bce = functional.binary_cross_entropy_with_logits(logits, target, weight=weight)
    probability = torch.sigmoid(logits)
    overlap = (probability * target).sum()
    dice = 1 - (2 * overlap + 1) / (probability.sum() + target.sum() + 1)
    return bce + dice


def export(model: PlateDetectorNet, path: Path) -> None:
    class WithSigmoid(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.inner(image))

    wrapped = WithSigmoid(model).eval()
    example = torch.zeros(1, 3, 352, 640)
    torch.onnx.export(
        wrapped,
        example,
        str(path),
        input_names=["x"],
        output_names=["probability"],
        dynamic_axes={"x": {2: "height", 3: "width"}, "probability": {2: "height", 3: "width"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        expected = wrapped.eval()(check).numpy()  # export restores the training mode
    got = session.run(None, {"x": check.numpy()})[0]
    difference = float(np.abs(expected - got).max())
    if difference > 1e-4:
        raise RuntimeError(f"exported model differs from torch by {difference}")
    logger.info("exported %s (largest difference from torch %.1e)", path, difference)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = PlateDetectorNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step = 0

    def save_checkpoint() -> None:
        state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step}
        torch.save(state, CHECKPOINT)

    if args.resume and CHECKPOINT.is_file():
        state = torch.load(CHECKPOINT, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step = state["step"]
    if not args.export_only:
        images, maps = build_data(args.footage, args.footage_every, args.seed)
        logger.info("%d training images", len(images))
        started = time.monotonic()
        budget = args.minutes * 60
        last_save = started
        running = None
        model.train()
        while (elapsed := time.monotonic() - started) < budget:
            progress = elapsed / budget
            for group in optimiser.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * progress))
            batch = [
                sample(images, maps, rng, min(1.0, 0.3 + progress * 1.4)) for _ in range(args.batch)
            ]
            inputs = torch.from_numpy(np.stack([b[0] for b in batch]))
            targets = torch.from_numpy(np.stack([b[1] for b in batch]))[:, None]
            loss = loss_of(model(inputs), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % 50 == 0:
                logger.info("step %d  loss %.4f  %.0f s", step, running, elapsed)
            if time.monotonic() - last_save > 180:
                save_checkpoint()
                last_save = time.monotonic()
        save_checkpoint()
    export(model, args.output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=50)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--footage", type=Path, nargs="*", default=[])
    parser.add_argument("--footage-every", type=int, default=25)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export-only", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    train(args)


if __name__ == "__main__":
    main()

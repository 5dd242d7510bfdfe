"""Train the plate reader (a small CRNN with CTC) and export it to models/reader.onnx.

Needs the training virtualenv (torch, CPU build); run from the repository root:

    python3 -m venv .venv-train
    .venv-train/bin/pip install torch==2.13.0 numpy opencv-python pillow onnx onnxruntime
    PYTHONPATH=. nice .venv-train/bin/python models/build/train_reader.py --minutes 30

Data: synthetic UK plates (benchmarks/synthetic/render.py), synthetic plates of other styles,
and the training split of the shared openalpr photos (never the held-out split; half of those
draws recomposed into new texts from their own character strips), all cut and degraded at random
every time they are drawn (models/build/reader_data.py).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.plates import ALPHABET
from edge.read import preprocess
from models.build.reader_data import (
    INPUT_H,
    INPUT_W,
    augmented_crop,
    background_patches,
    character_cells,
    detector_box_plates,
    load_real_plates,
    on_background,
    recomposed_plate,
    render_other_plate,
    render_uk_plate,
)

logger = logging.getLogger("train_reader")
MODELS = Path(__file__).resolve().parents[1]
CHECKPOINT = MODELS.parent / "build" / "reader_checkpoint.pt"
"""Saved every few minutes so an interrupted run still yields a model (git-ignored)."""


class Crnn(nn.Module):
    """Conv features -> one column per 4 input pixels -> 1-D convs along the plate -> classes.

    Convolutions only (no recurrent layer): about 2x faster to train on a CPU, and the 1-D
    convolutions still see several characters either side of each column.
    """

    def __init__(self, classes: int = len(ALPHABET) + 1) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 16),
            nn.MaxPool2d(2),  # 16 x 64
            *block(16, 32),
            nn.MaxPool2d(2),  # 8 x 32
            *block(32, 64),
            *block(64, 64),
            nn.MaxPool2d((2, 1)),  # 4 x 32
            *block(64, 96),
            nn.MaxPool2d((2, 1)),  # 2 x 32
        )
        self.sequence = nn.Sequential(
            nn.Conv1d(96 * 2, 128, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(128, 128, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(128, classes, 1),
        )
        self.register_buffer("norms_frozen", torch.tensor(False))
        """True once started from an export (`load_onnx_weights`): the batch norms then keep
        their stored statistics in training too. A buffer, so that checkpoints carry it."""
        self.register_buffer("learned_held_out", torch.tensor(False))
        """True once any of its weights learned from the held-out photos (`--real-photos all`, or
        started from a model that did): it follows the weights through checkpoints and exports,
        so no model descended from one is taken for a measure of unseen photos."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        loaded = super().load_state_dict(state_dict, strict, assign)
        self.train(self.training)  # a loaded `norms_frozen` takes effect now
        return loaded

    def train(self, mode: bool = True) -> Crnn:
        super().train(mode)
        if bool(self.norms_frozen):
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 32, 128) in -1..1 -> (N, 32, classes) logits; class 0 is the CTC blank."""
        f = self.features(x)
        n, c, h, w = f.shape
        return self.sequence(f.reshape(n, c * h, w)).transpose(1, 2)


class Probabilities(nn.Module):
    def __init__(self, model: Crnn) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(-1)


def load_onnx_weights(model: Crnn, path: Path) -> None:
    """Start from an exported reader (the committed models/reader.onnx) when no checkpoint is at
    hand: the export folded each batch norm into the convolution before it, so the convolutions
    take the folded weights and the batch norms become identities with the folded biases, whose
    statistics then stay frozen (`Crnn.norms_frozen`)."""
    import onnx
    from onnx import numpy_helper

    exported = onnx.load(str(path))
    graph = exported.graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    conv2d = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for node, conv, norm in zip(convs, conv2d, norms, strict=False):
            conv.weight.copy_(weights[node.input[1]])
            norm.weight.fill_(1.0)
            norm.bias.copy_(weights[node.input[2]])
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
    sequence = {k.removeprefix("model.sequence."): v for k, v in weights.items() if "sequence" in k}
    model.sequence.load_state_dict(sequence)
    model.norms_frozen.fill_(True)
    real_photos = {p.key: p.value for p in exported.metadata_props}.get("real_photos")
    model.learned_held_out.fill_(real_photos == "all")
    model.train(model.training)


def encode(text: str) -> list[int]:
    return [ALPHABET.index(c) + 1 for c in text]


class Sampler:
    """Draws training batches: a mix of synthetic UK, synthetic other-style and real plates."""

    def __init__(
        self,
        seed: int,
        uk_bases: int,
        other_bases: int,
        recomposed_share: float = 0.0,
        real_share: float = 0.25,
        with_held_out: bool = False,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.real_share = real_share
        labelled = load_real_plates(held_out=False)
        if with_held_out:
            labelled += load_real_plates(held_out=True)
        self.real = labelled + detector_box_plates(labelled)
        self.cells = character_cells(self.real) if recomposed_share else []
        self.recomposed_share = recomposed_share
        self.backgrounds = background_patches(labelled, self.rng)
        logger.info(
            "real training plates: %d (%d with their characters apart), background patches: %d",
            len(self.real),
            len(self.cells),
            len(self.backgrounds),
        )
        started = time.monotonic()
        self.uk = [
            on_background(render_uk_plate(self.rng), self.rng, self.backgrounds)
            for _ in range(uk_bases)
        ]
        self.other = [
            on_background(
                render_other_plate(self.rng, self.backgrounds), self.rng, self.backgrounds
            )
            for _ in range(other_bases)
        ]
        logger.info(
            "rendered %d base plates in %.0f s", uk_bases + other_bases, time.monotonic() - started
        )

    def batch(self, size: int, strength: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, targets, lengths = [], [], []
        synthetic = 1.0 - self.real_share
        for _ in range(size):
            draw = self.rng.random()
            if draw < synthetic * 2 / 3 or not self.real:
                pool = self.uk
            elif draw < synthetic:
                pool = self.other
            else:
                pool = self.real
            plate = pool[int(self.rng.integers(len(pool)))]
            if pool is self.real and self.cells and self.rng.random() < self.recomposed_share:
                plate = recomposed_plate(
                    self.cells[int(self.rng.integers(len(self.cells)))], self.rng
                )
            images.append(preprocess(augmented_crop(plate, self.rng, strength)))
            targets.extend(encode(plate.text))
            lengths.append(len(plate.text))
        return (
            torch.from_numpy(np.stack(images)),
            torch.tensor(targets, dtype=torch.long),
            torch.tensor(lengths, dtype=torch.long),
        )


def greedy(probs: np.ndarray) -> list[str]:
    texts = []
    for best in probs.argmax(-1):
        chars = [ALPHABET[k - 1] for i, k in enumerate(best) if k and (i == 0 or k != best[i - 1])]
        texts.append("".join(chars))
    return texts


def evaluate_synthetic(model: Crnn, seed: int = 12345, count: int = 512) -> float:
    rng = np.random.default_rng(seed)
    plates = [on_background(render_uk_plate(rng), rng, []) for _ in range(count)]
    images = torch.from_numpy(np.stack([preprocess(augmented_crop(p, rng)) for p in plates]))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        texts = greedy(model(images).softmax(-1).numpy())
    model.train(was_training)
    return float(np.mean([t == p.text for t, p in zip(texts, plates, strict=True)]))


def export(model: Crnn, path: Path) -> None:
    """Writes the ONNX model, with the shared photos it learned from as metadata `real_photos`
    ('training-split' or 'all'; read_eval warns when the held-out split measures a model that
    learned from it), and checks it against torch."""
    import onnx
    import onnxruntime

    wrapped = Probabilities(model).eval()
    example = torch.rand(3, 1, INPUT_H, INPUT_W) * 2 - 1
    torch.onnx.export(
        wrapped,
        example,
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
    )
    exported = onnx.load(str(path))
    real_photos = "all" if bool(model.learned_held_out) else "training-split"
    onnx.helper.set_model_props(exported, {"real_photos": real_photos})
    onnx.save(exported, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    difference = 0.0
    for batch in (example[:1], example, torch.rand(5, 1, INPUT_H, INPUT_W) * 2 - 1):
        onnx_probs = session.run(None, {"image": batch.numpy()})[0]
        with torch.no_grad():
            torch_probs = wrapped(batch).numpy()
        difference = max(difference, float(np.abs(onnx_probs - torch_probs).max()))
    if difference > 1e-4:
        raise RuntimeError(f"ONNX export differs from torch by {difference}")
    logger.info(
        "exported %s (%.1f kB), max difference to torch %.2e",
        path,
        path.stat().st_size / 1024,
        difference,
    )


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    sampler = Sampler(
        args.seed,
        args.uk_bases,
        args.other_bases,
        args.recomposed_share,
        args.real_share,
        with_held_out=args.real_photos == "all",
    )
    model = Crnn()
    checkpoint = CHECKPOINT
    checkpoint.parent.mkdir(exist_ok=True)
    if args.resume and checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint))
        logger.info("resumed from %s", checkpoint)
    elif args.init_from_onnx:
        load_onnx_weights(model, args.init_from_onnx)
        logger.info("started from %s (batch norms folded and frozen)", args.init_from_onnx)
    if args.real_photos == "all":
        model.learned_held_out.fill_(True)
    elif bool(model.learned_held_out):
        logger.warning(
            "the starting model learned from the held-out photos: this one will too, whatever "
            "--real-photos says, and its export records real_photos 'all'"
        )
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    budget_s = args.minutes * 60
    started = last_save = time.monotonic()
    step, running = 0, None
    while (elapsed := time.monotonic() - started) < budget_s:
        # Cosine decay over the time budget, after a short warm-up.
        progress = elapsed / budget_s
        lr = args.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimiser.param_groups:
            group["lr"] = lr
        images, targets, lengths = sampler.batch(
            args.batch, min(1.0, args.start_strength + (1 - args.start_strength) * 2 * progress)
        )
        log_probs = model(images).log_softmax(-1).permute(1, 0, 2)
        input_lengths = torch.full((images.shape[0],), log_probs.shape[0], dtype=torch.long)
        loss = ctc(log_probs, targets, input_lengths, lengths)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0:
            logger.info("step %d  %.0f s  lr %.2e  loss %.3f", step, elapsed, lr, running)
        if time.monotonic() - last_save > args.save_every_s:
            torch.save(model.state_dict(), checkpoint)
            last_save = time.monotonic()
            logger.info("checkpoint; synthetic UK exact %.3f", evaluate_synthetic(model))
    torch.save(model.state_dict(), checkpoint)
    logger.info("done: %d steps; synthetic UK exact %.3f", step, evaluate_synthetic(model))
    export(model, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="Training time budget.")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--uk-bases", type=int, default=8000, help="Rendered UK plates.")
    parser.add_argument("--other-bases", type=int, default=4000, help="Rendered other plates.")
    parser.add_argument(
        "--recomposed-share",
        type=float,
        default=0.5,
        help="Of the real plates drawn, the share with their characters redrawn into a new text "
        "(reader_data.recomposed_plate); 0 before run 10.",
    )
    parser.add_argument(
        "--real-share",
        type=float,
        default=0.25,
        help="Share of each batch drawn from real plates; the rest is rendered, UK and other "
        "styles 2:1.",
    )
    parser.add_argument(
        "--real-photos",
        choices=("training-split", "all"),
        default="training-split",
        help="Which shared photos the real plates come from: the training split, so that the "
        "held-out split measures unseen photos, or all of them, held-out split included, for a "
        "model to ship once a recipe is chosen. The export records it (ONNX metadata "
        "real_photos), as 'all' too for a model started from one that learned them.",
    )
    parser.add_argument("--save-every-s", type=float, default=180.0)
    parser.add_argument(
        "--start-strength", type=float, default=0.15, help="Augmentation strength at the start."
    )
    parser.add_argument("--resume", action="store_true", help="Start from the last checkpoint.")
    parser.add_argument(
        "--init-from-onnx",
        type=Path,
        default=None,
        help="Start from an exported reader (e.g. models/reader.onnx) instead of a checkpoint; "
        "with --resume, only when no checkpoint exists. Batch norms stay frozen.",
    )
    parser.add_argument("--export-only", action="store_true", help="Export the last checkpoint.")
    parser.add_argument("--out", type=Path, default=MODELS / "reader.onnx")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parser.parse_args()
    if args.export_only:
        model = Crnn()
        model.load_state_dict(torch.load(CHECKPOINT))
        export(model, args.out)
    else:
        train(args)


if __name__ == "__main__":
    main()

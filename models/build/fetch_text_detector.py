"""Fetch the PP-OCRv4 text detection model and write models/text_detector.onnx.

The model ships inside the registry wheel rapidocr-onnxruntime 1.4.4 (Apache-2.0). pip downloads
the wheel (no dependencies, nothing installed); the model is taken out of it and checked against
the recorded SHA-256.

The exported graph spells out what could be single operations: every convolution is followed by
a scalar multiply and add (PP-LCNetV3's learnable affine blocks) and every hard-swish is written
as add, clip, multiply, divide. On CPU those element-wise passes cost about as much as the
convolutions, so they are rewritten: affines folded into the neighbouring convolution weights
(only where that is exact: after a convolution, or before one without padding) and hard-swish
as the HardSwish operator (opset 14). The rewritten model is checked against the original on
test inputs before it is written. Needs the `onnx` package (build time only).

    .venv/bin/python -m models.build.fetch_text_detector
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL_REQUIREMENT = "rapidocr-onnxruntime==1.4.4"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
MODEL_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
BUILT_SHA256 = "35d03efd506bc576d1d69f5a46a3ca988e42218dce2ee89268d9e777d99d2934"
"""The rewritten model as committed (built with onnx 1.23.2); other onnx versions may serialise
it differently, which the output check makes harmless."""
DESTINATION = Path(__file__).resolve().parents[1] / "text_detector.onnx"
MAX_OUTPUT_DIFFERENCE = 1e-3
"""Largest probability difference allowed between the original and the rewritten model."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_original() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--dest", folder, WHEEL_REQUIREMENT],
            check=True,
        )  # fmt: skip
        wheel = next(Path(folder).glob("*.whl"))
        if sha256(wheel.read_bytes()) != WHEEL_SHA256:
            raise SystemExit(f"{wheel.name}: SHA-256 differs from the recorded wheel; not using it")
        with zipfile.ZipFile(wheel) as archive:
            model = archive.read(MEMBER)
    if sha256(model) != MODEL_SHA256:
        raise SystemExit(f"{MEMBER}: SHA-256 differs from the recorded model; not using it")
    return model


class _Graph:
    """The graph's constants and each tensor's consumers, for pattern matching."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.outputs = {o.name for o in graph.output}
        self.new_initializers = []
        self.index(list(graph.node))

    def index(self, nodes) -> None:
        self.nodes = nodes
        self.users: dict[str, list] = {}
        for node in nodes:
            for name in node.input:
                self.users.setdefault(name, []).append(node)

    def only_user(self, tensor: str, op_type: str):
        users = self.users.get(tensor, [])
        if tensor in self.outputs or len(users) != 1 or users[0].op_type != op_type:
            return None
        return users[0]

    def scalar(self, node, tensor: str) -> float | None:
        """The scalar constant that `node` combines with `tensor`, if that is what it does."""
        other = node.input[1] if node.input[0] == tensor else node.input[0]
        value = self.constants.get(other)
        return None if value is None or value.size != 1 else float(value.ravel()[0])

    def variable_input(self, node) -> str:
        return node.input[1] if node.input[0] in self.constants else node.input[0]

    def affine_after(self, tensor: str):
        """A scalar multiply (and optional add) applied to `tensor`: (a, b, last node) or None."""
        mul = self.only_user(tensor, "Mul")
        if mul is None or (a := self.scalar(mul, tensor)) is None:
            return None
        add = self.only_user(mul.output[0], "Add")
        if add is not None and (b := self.scalar(add, mul.output[0])) is not None:
            return a, b, [mul, add]
        return a, 0.0, [mul]

    def set_conv_parameters(self, conv, data: str, weights: np.ndarray, bias: np.ndarray) -> None:
        from onnx import numpy_helper

        version = len(self.new_initializers)
        names = (f"{conv.name}_weights_{version}", f"{conv.name}_bias_{version}")
        for name, value in zip(names, (weights, bias), strict=True):
            self.constants[name] = value.astype(np.float32)
            self.new_initializers.append(numpy_helper.from_array(self.constants[name], name))
        del conv.input[:]
        conv.input.extend([data, *names])

    def conv_parameters(self, conv) -> tuple[np.ndarray, np.ndarray]:
        weights = self.constants[conv.input[1]]
        has_bias = len(conv.input) > 2
        return weights, self.constants[conv.input[2]] if has_bias else np.zeros(weights.shape[0])


def _fold_affine_after_convs(g: _Graph) -> int:
    """conv -> *a -> +b becomes one conv with weights a*W and bias a*B + b."""
    removed, folded = set(), 0
    for conv in g.nodes:
        affine = g.affine_after(conv.output[0]) if conv.op_type == "Conv" else None
        if affine is None:
            continue
        a, b, nodes = affine
        weights, bias = g.conv_parameters(conv)
        g.set_conv_parameters(conv, conv.input[0], weights * a, bias * a + b)
        conv.output[0] = nodes[-1].output[0]
        removed.update(id(n) for n in nodes)
        folded += 1
    g.index([n for n in g.nodes if id(n) not in removed])
    return folded


def _fuse_hard_swish(g: _Graph) -> int:
    """x * clip(x + 3, 0, 6) / 6 becomes HardSwish(x)."""
    from onnx import helper

    replaced, removed = {}, set()
    for add in g.nodes:
        if add.op_type != "Add":
            continue
        x = g.variable_input(add)
        clip = g.only_user(add.output[0], "Clip")
        if g.scalar(add, x) != 3.0 or clip is None:
            continue
        bounds = [g.constants.get(name) for name in clip.input[1:3]]
        if any(b is None for b in bounds) or [float(b) for b in bounds] != [0.0, 6.0]:
            continue
        mul = g.only_user(clip.output[0], "Mul")
        if mul is None or set(mul.input) != {x, clip.output[0]}:
            continue
        div = g.only_user(mul.output[0], "Div")
        if div is None or div.input[0] != mul.output[0] or g.scalar(div, mul.output[0]) != 6.0:
            continue
        replaced[id(add)] = helper.make_node(
            "HardSwish", [x], [div.output[0]], name=f"{add.name}_hs"
        )
        removed.update({id(clip), id(mul), id(div)})
    g.index([replaced.get(id(n), n) for n in g.nodes if id(n) not in removed])
    return len(replaced)


def _attribute(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _takes_exactly(conv, tensor: str, offset: float) -> bool:
    """Whether an affine with this offset feeding `conv` folds into it exactly."""
    if conv.op_type != "Conv" or conv.input[0] != tensor:
        return False
    auto_pad = _attribute(conv, "auto_pad", b"NOTSET")
    unpadded = not any(_attribute(conv, "pads", [])) and auto_pad in (b"NOTSET", "NOTSET")
    return offset == 0.0 or unpadded


def _fold_affine_into_next_convs(g: _Graph) -> int:
    """*a -> +b feeding only convolutions becomes part of them: W -> a*W, B -> B + b*sum(W).

    Exact only when the convolutions pad nothing (zero padding of a*x + b is not b), so an
    affine with b != 0 before a padded convolution stays.
    """
    removed, folded = set(), 0
    for mul in g.nodes:
        x = g.variable_input(mul) if mul.op_type == "Mul" else None
        affine = g.affine_after(x) if x is not None else None
        if affine is None or affine[2][0] is not mul:
            continue
        a, b, nodes = affine
        out = nodes[-1].output[0]
        convs = g.users.get(out, [])

        if out in g.outputs or not convs or not all(_takes_exactly(c, out, b) for c in convs):
            continue
        for conv in convs:
            weights, bias = g.conv_parameters(conv)
            g.set_conv_parameters(conv, x, weights * a, bias + b * weights.sum(axis=(1, 2, 3)))
        removed.update(id(n) for n in nodes)
        folded += 1
    g.index([n for n in g.nodes if id(n) not in removed])
    return folded


def optimise(original: bytes) -> tuple[bytes, dict[str, int]]:
    import onnx
    from onnx import version_converter

    model = version_converter.convert_version(onnx.load_from_string(original), 14)
    g = _Graph(model.graph)
    counts = {
        "affines folded into the convolution before": _fold_affine_after_convs(g),
        "hard-swish fused": _fuse_hard_swish(g),
        "affines folded into the convolution after": _fold_affine_into_next_convs(g),
    }
    used = {name for node in g.nodes for name in node.input} | g.outputs
    nodes = [n for n in g.nodes if n.op_type != "Constant" or n.output[0] in used]
    initializers = [i for i in [*model.graph.initializer, *g.new_initializers] if i.name in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(), counts


def largest_difference(original: bytes, optimised: bytes) -> float:
    """Largest output difference of the two models over a few image-like inputs."""
    import onnxruntime as ort

    sessions = [
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        for model in (original, optimised)
    ]
    rng = np.random.default_rng(0)
    worst = 0.0
    for height, width in ((64, 256), (384, 640), (544, 960)):
        image = rng.normal(0, 1.2, size=(1, 3, height, width)).astype(np.float32)
        image[..., height // 4 : height // 2, width // 4 : width // 2] = 2.0  # a flat bright patch
        outputs = [s.run(None, {s.get_inputs()[0].name: image})[0] for s in sessions]
        worst = max(worst, float(np.abs(outputs[0] - outputs[1]).max()))
    return worst


def build(destination: Path = DESTINATION) -> Path:
    original = download_original()
    optimised, counts = optimise(original)
    difference = largest_difference(original, optimised)
    for what, count in counts.items():
        print(f"{what}: {count}")
    print(f"largest output difference from the original: {difference:.2e}")
    if difference > MAX_OUTPUT_DIFFERENCE:
        raise SystemExit("the rewritten model differs from the original; not writing it")
    if sha256(optimised) != BUILT_SHA256:
        print("note: the rewritten model's bytes differ from the committed one (onnx version?)")
    destination.write_bytes(optimised)
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DESTINATION, help="Where to write the model.")
    print(f"wrote {build(parser.parse_args().out)}")


if __name__ == "__main__":
    main()

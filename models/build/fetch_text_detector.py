"""Fetch the PP-OCRv4 text detection model into models/text_detector.onnx.

The model ships inside the registry wheel rapidocr-onnxruntime 1.4.4 (Apache-2.0). pip downloads
the wheel (no dependencies, nothing installed); the model file is taken out of it and checked
against the recorded SHA-256 so a rebuild gives the same bytes.

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

WHEEL_REQUIREMENT = "rapidocr-onnxruntime==1.4.4"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
MODEL_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
DESTINATION = Path(__file__).resolve().parents[1] / "text_detector.onnx"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(destination: Path = DESTINATION) -> Path:
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
    destination.write_bytes(model)
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DESTINATION, help="Where to write the model.")
    print(f"wrote {fetch(parser.parse_args().out)}")


if __name__ == "__main__":
    main()

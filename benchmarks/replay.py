"""Replay a footage set through the real daemon and report its numbers against ground truth.

    python -m benchmarks.replay FOOTAGE_DIR --report OUT_DIR [--config A.yaml] [--label-a A]
        [--compare B.yaml --label-b B] [--pacing fast|realtime]

Each clip runs through `edge.pipeline.Pipeline` (sources, motion gate, detector, reader,
tracker, hotlist matching, journalled alert publishing on a 127.0.0.1 socket) as one camera.
With --compare, the whole set runs again under the second config and the report puts the two
side by side. Writes OUT_DIR/report.json, OUT_DIR/report.md and PNG plots (benchmarks.report).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Self

import psutil
from tqdm import tqdm

from benchmarks.footageset import Clip, FootageError, FootageSet, load_footage_set
from benchmarks.report import RunResult, update_readme, write_report
from benchmarks.scoring import HotlistLookup, ObservedAlert, ObservedHit, ObservedRead, score_run
from benchmarks.throughput import FAST_REPLAY_QUEUE, merge_config, read_overlay
from edge.config import ConfigError, EdgeConfig, parse_config
from edge.hotlist import HotlistError, load_hotlists
from edge.pipeline import Pipeline
from edge.read import DEFAULT_MODEL as DEFAULT_READER_MODEL
from edge.sources import FrameQueue
from edge.types import Activation, Frame, Marker, VehicleRead

logger = logging.getLogger(__name__)

RSS_SAMPLE_S = 0.2
CLIP_TIMEOUT_FACTOR = 20.0
"""A clip taking longer than this many times its own duration (plus a minute) is stopped."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FrameLog:
    """Stands in for a camera worker's frame queue and notes each frame's index by capture time.

    The daemon's reads carry wall-clock capture times; scoring needs frame numbers, so the
    harness records, for every frame the worker takes, which file frame it was.
    """

    def __init__(self, queue: FrameQueue, on_frame: Callable[[], None]):
        self._queue = queue
        self._on_frame = on_frame
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._indexes: list[int] = []

    def get(self, timeout: float | None = None) -> Frame | None:
        frame = self._queue.get(timeout=timeout)
        if frame is not None:
            with self._lock:
                self._times.append(frame.captured_at)
                self._indexes.append(frame.index)
            self._on_frame()
        return frame

    def index_at(self, captured_at: float) -> int:
        """The index of the frame captured at (or nearest after) `captured_at`."""
        with self._lock:
            position = min(bisect_left(self._times, captured_at), len(self._times) - 1)
            return self._indexes[position]

    def __len__(self) -> int:
        return len(self._queue)

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


class ResourceMonitor:
    """CPU time and peak resident memory of this process (the daemon runs in it) over a run,
    and how busy the whole machine was meanwhile."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak_rss = 0
        self.wall_s = self.cpu_s = self.machine_cpu_percent = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._cpu_start = sum(self.process.cpu_times()[:2])
        self._wall_start = time.monotonic()
        psutil.cpu_percent(interval=None)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            self._stop.wait(RSS_SAMPLE_S)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = time.monotonic() - self._wall_start
        self.cpu_s = sum(self.process.cpu_times()[:2]) - self._cpu_start
        self.machine_cpu_percent = psutil.cpu_percent(interval=None)


def clip_config(
    base: dict, footage: FootageSet, clip: Clip, state_dir: Path, pacing: str, source: Path
) -> EdgeConfig:
    """The daemon config for one clip: `base` (paths already resolved) with the set's overlay,
    the clip as its only camera, the set's hotlist and a private journal and socket."""
    raw = copy.deepcopy(base)
    if footage.config_overlay is not None:
        raw = merge_config(raw, read_overlay(footage.config_overlay))
    template = (raw.get("cameras") or [{}])[0]
    camera = {
        **template,
        "id": clip.name,
        "source": str(clip.video),
        "pacing": pacing,
        "loop": False,
    }
    if pacing == "fast":
        camera["queue_size"] = FAST_REPLAY_QUEUE
    raw["cameras"] = [camera]
    hotlists = raw.setdefault("hotlists", {})
    hotlists["paths"] = [str(footage.hotlist)] if footage.hotlist is not None else []
    raw["alerts"] = {
        **{k: v for k, v in raw.get("alerts", {}).items() if k in ("journal_sync", "heartbeat_s")},
        "insecure": True,
        "bind": f"tcp://127.0.0.1:{_free_port()}",
        "journal": str(state_dir / f"{clip.name}-journal.sqlite"),
        "evidence_dir": str(state_dir / "evidence"),
    }
    return parse_config(raw, source)


def describe_models(config: EdgeConfig) -> dict[str, str]:
    """Which detector and reader ran, with a short hash of each model file, so a report says
    which model produced its figures."""

    def model(path: Path) -> str:
        if not path.is_file():
            return f"{path} (missing)"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return f"{path.name} sha256:{digest}"

    reader = config.reader.backend
    if config.reader.backend == "onnx":
        reader += f", {model(config.reader.model or DEFAULT_READER_MODEL)}"
    detector = config.detector.backend
    if config.detector.model is not None:
        detector += f", {model(config.detector.model)}"
    return {"detector": detector, "reader": reader}


def hotlist_lookup(footage: FootageSet) -> HotlistLookup:
    if footage.hotlist is None:
        return lambda _vrm: frozenset()
    hotlist = load_hotlists([footage.hotlist])

    def markers(vrm: str) -> frozenset[Marker]:
        entries = [hotlist.entry(number) for number in hotlist.exact_matches(vrm)]
        return frozenset().union(*(entry.markers for entry in entries))

    return markers


def replay(
    footage: FootageSet,
    base: dict,
    *,
    label: str,
    config_source: Path,
    pacing: str = "fast",
    progress: bool = True,
) -> RunResult:
    """Run every clip of the set through the daemon under one config, and score the run."""
    reads: list[ObservedRead] = []
    alerts: list[ObservedAlert] = []
    stats: list[dict] = []
    total_frames = sum(clip.truth.frames for clip in footage.clips)
    bar = tqdm(total=total_frames, desc=label, unit="frame", disable=not progress, mininterval=0.5)
    models: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="anpr-replay-") as state, ResourceMonitor() as usage:
        for clip in footage.clips:
            config = clip_config(base, footage, clip, Path(state), pacing, config_source)
            models = describe_models(config)
            stats.append(_replay_clip(clip, config, reads, alerts, bar))
    bar.close()
    frames = sum(s["frames_processed"] for s in stats)
    running_s = sum(s["running_s"] for s in stats)
    resources = {
        "wall_s": usage.wall_s,
        "running_s": running_s,
        "frames_processed": frames,
        "fps": frames / running_s if running_s > 0 else None,
        "cpu_percent_of_one_core": 100 * usage.cpu_s / usage.wall_s if usage.wall_s > 0 else None,
        "cpu_ms_per_frame": 1000 * usage.cpu_s / frames if frames else None,
        "peak_rss_mb": usage.peak_rss / 2**20,
        "machine_cpu_percent": usage.machine_cpu_percent,
        "machine_cores": psutil.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "frames_dropped": sum(s["dropped"] for s in stats),
        "frames_skipped_still": sum(s["frames_skipped_still"] for s in stats),
    }
    score = score_run(
        {clip.name: clip.truth for clip in footage.clips}, reads, alerts, hotlist_lookup(footage)
    )
    return RunResult(
        label=label,
        config=str(config_source),
        models=models,
        pacing=pacing,
        score=score,
        resources=resources,
        reads=reads,
    )


def _replay_clip(
    clip: Clip,
    config: EdgeConfig,
    reads: list[ObservedRead],
    alerts: list[ObservedAlert],
    bar: tqdm,
) -> dict:
    logs: dict[str, FrameLog] = {}

    def on_read(vehicle: VehicleRead) -> None:
        log = logs[vehicle.camera_id]
        reads.append(
            ObservedRead(
                clip=vehicle.camera_id,
                track_id=vehicle.track_id,
                text=vehicle.read.text,
                confidence=vehicle.read.confidence,
                first_frame=log.index_at(vehicle.first_seen),
                last_frame=log.index_at(vehicle.last_seen),
                best_frame=log.index_at(vehicle.captured_at),
                plate_height_px=vehicle.box[3],
                latency_s=time.time() - vehicle.captured_at,
            )
        )

    def on_alert(activation: Activation, alert_id: str, published_at: float) -> None:
        vehicle = activation.vehicle
        alerts.append(
            ObservedAlert(
                clip=vehicle.camera_id,
                track_id=vehicle.track_id,
                alert_id=alert_id,
                read_text=vehicle.read.text,
                role=activation.role,
                hits=tuple(
                    ObservedHit(
                        vrm=hit.entry.vrm,
                        markers=hit.entry.markers,
                        kind=hit.kind,
                        distance=hit.distance,
                    )
                    for hit in activation.hits
                ),
                captured_at=vehicle.captured_at,
                last_seen=vehicle.last_seen,
                published_at=published_at,
            )
        )

    pipeline = Pipeline(config, on_read=on_read, on_alert=on_alert)
    for worker in pipeline.workers:
        logs[worker.camera.id] = worker.queue = FrameLog(worker.queue, lambda: bar.update(1))
    started = time.monotonic()
    pipeline.run(max_seconds=60 + CLIP_TIMEOUT_FACTOR * clip.truth.frames / clip.truth.fps)
    stats = {**pipeline.stats(), "running_s": time.monotonic() - started}
    if any(not camera.get("finished", True) for camera in stats["cameras"]):
        logger.warning("%s: stopped before the end of the clip (time limit)", clip.video)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.replay",
        description="Replay a footage set through the daemon and report capture, accuracy, "
        "hotlist hits, latency and resources against its ground truth.",
    )
    parser.add_argument("footage", type=Path, metavar="FOOTAGE_DIR")
    parser.add_argument("--report", type=Path, required=True, metavar="OUT_DIR")
    parser.add_argument("--config", type=Path, help="Daemon config (detector, reader, tracking).")
    parser.add_argument("--compare", type=Path, help="A second config, reported side by side.")
    parser.add_argument("--label-a", default=None, help="Name of the first config in the report.")
    parser.add_argument("--label-b", default=None, help="Name of the second config.")
    parser.add_argument(
        "--pacing",
        choices=["fast", "realtime"],
        default="fast",
        help="fast: frames as fast as the daemon takes them (none dropped); realtime: at the "
        "clip's frame rate, dropping frames the daemon cannot keep up with, as on a camera.",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        action="append",
        default=[],
        help="Also put the headline table and timeline plot in this README's REPLAY-HEADLINE "
        "block (may be given more than once).",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress bar.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        footage = load_footage_set(args.footage)
        runs = []
        configs = [(args.config, args.label_a)]
        if args.compare is not None:
            configs.append((args.compare, args.label_b))
        for index, (path, label) in enumerate(configs):
            base = read_overlay(path) if path is not None else {}
            source = path if path is not None else args.footage / "replay.yaml"
            name = label or (path.stem if path is not None else "default")
            if index and name == runs[0].label:
                name += " (b)"
            runs.append(
                replay(
                    footage,
                    base,
                    label=name,
                    config_source=source,
                    pacing=args.pacing,
                    progress=not args.quiet,
                )
            )
    except (FootageError, ConfigError, HotlistError, FileNotFoundError) as error:
        print(f"benchmarks.replay: {error}", file=sys.stderr)
        return 2
    write_report(args.report, footage, runs)
    for readme in args.readme:
        update_readme(readme, args.report, footage, runs)
    print(f"report: {args.report / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Daemon throughput benchmark: replay a clip through the real pipeline and measure it.

    python -m benchmarks.throughput --json FOOTAGE [--config FILE] [--realtime]

The clip runs through `edge.pipeline.Pipeline` exactly as `anpr-edge run` would run it (capture
thread, drop-oldest queue, motion gate, detector, reader, tracker, hotlist, CURVE alert publisher
with its journal), as fast as possible, or paced at the clip's frame rate with `--realtime`.
Printed (one JSON object with `--json`):

- frames: frames processed; fps: frames processed per second of replay (fast replay reads the
  next frame from the file only when the queue has room for it, and the queue holds one frame:
  a frame's capture time is when it was read, not when it was read ahead of a busy pipeline);
- latency_ms_p50 / _p99: capture-to-alert, from the capture of the alert's best frame (the one
  its evidence shows) to the alert being published (journalled and queued for consoles);
- latency_from_last_seen_ms_p50 / _p99: from the last sighting of the plate before the alert.
  Reads whose tracker agreed early are published while the vehicle is in view; the others wait
  `tracking.max_gap_s` after the last sighting, and this figure shows which happened;
- cpu_percent: process CPU time over wall time (200 = both cores of this machine busy);
- rss_mb: peak resident memory, sampled every 100 ms;
- dropped: frames dropped by full queues; skipped_late: frames a real-time replay skipped to
  keep up with the clock; frames_detected: frames the detector ran on, of which
  frames_tracked_only were searched only around plates already tracked (`full_search_every`),
  and in frames_searched_again a plate just tracked was not found and its window was searched
  again, padded (`detector.retry_input_side`);
  frames_skipped_still: frames the motion gate spared the detector; frames_skipped_busy: frames a
  real-time replay left undetected because a newer frame was already waiting;
- slowest_alerts: the three alerts slowest from their evidence frame, each with its VRM and both
  latencies (with a few alerts a run, the p99 is the slowest of them);
- reads, alerts, and with ground truth beside the clip (NAME.truth.json): passes and
  reads_matching_truth (reads whose text is a VRM of the clip) and reads_not_in_truth (the texts
  of the others: misreads, part reads, ghosts).

Without `--config` the camera, the hotlist (`hotlist.csv` beside the clip, if any) and a
throw-away CURVE key set and journal are made up here; with it, its cameras are replaced by the
clip and its other sections kept. A footage set's `config.yaml` beside the clip is applied on top.
"""

from __future__ import annotations

import argparse
import copy
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import numpy as np
import psutil
import yaml

from edge.config import ConfigError, EdgeConfig, load_config, parse_config, resolve_paths
from edge.keys import write_keypair
from edge.pipeline import Pipeline
from edge.types import Activation, VehicleRead

FAST_REPLAY_QUEUE = 1
"""Frames read ahead in fast replay: one being processed, the next one ready. Each waits for
the whole of the frame before it, so two ahead put 150-230 ms of queueing into the latency of a
saturated replay (measured 2026-12-02: p50 300 -> 90 ms on the 1080p clip)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def merge_config(base: dict, overlay: dict) -> dict:
    """`base` with `overlay`'s sections merged in, key by key (neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_overlay(path: Path) -> dict:
    """A YAML file of config sections (a benchmark config, a footage set's config.yaml), its
    relative paths resolved against its folder."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return resolve_paths(raw, path.parent)


def build_config(
    footage: Path,
    config_path: Path | None,
    realtime: bool,
    state: Path,
    overlay: Path | None = None,
) -> EdgeConfig:
    """The daemon config replaying `footage` as its one camera: `config_path`'s (a whole daemon
    config), or the defaults with the clip's hotlist.csv and a throwaway key set; then the
    footage folder's config.yaml and `overlay` (config sections, as benchmarks/configs/)
    merged in."""
    camera = {
        "id": "bench",
        "source": str(footage),
        "pacing": "realtime" if realtime else "fast",
    }
    if not realtime:
        # Fast replay waits for room instead of dropping: reading far ahead would only add the
        # wait of the frames queued ahead to every capture-to-alert latency.
        camera["queue_size"] = FAST_REPLAY_QUEUE
    if config_path is not None:
        base = load_config(config_path).model_dump(mode="json")
        first = base["cameras"][0]
        camera = {**first, **camera, "id": first["id"], "loop": False}
    else:
        for name in ("daemon", "tfc-bench", "tsg-bench"):
            write_keypair(name, state)
        hotlist = footage.with_name("hotlist.csv")
        base = {
            "hotlists": {"paths": [str(hotlist)] if hotlist.exists() else []},
            "alerts": {
                "server_secret_key": str(state / "daemon.key_secret"),
                "consoles": [
                    {
                        "name": "tfc-bench",
                        "role": "tfc",
                        "public_key": str(state / "tfc-bench.key"),
                    },
                    {
                        "name": "tsg-bench",
                        "role": "tsg",
                        "public_key": str(state / "tsg-bench.key"),
                    },
                ],
            },
        }
    base["cameras"] = [camera]
    base["alerts"] = {
        **base.get("alerts", {}),
        "bind": f"tcp://127.0.0.1:{_free_port()}",
        "journal": str(state / "journal.sqlite"),
        "evidence_dir": str(state / "evidence"),
    }
    source = footage.with_name("config.yaml")
    if source.exists():
        base = merge_config(base, read_overlay(source))
    if overlay is not None:  # named by the user: a missing file is an error
        base = merge_config(base, read_overlay(overlay))
        source = overlay
    return parse_config(base, source)


class _PeakMemory:
    """Samples the process's resident memory every 100 ms and keeps the peak."""

    def __init__(self, process: psutil.Process):
        self.process = process
        self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.process.memory_info().rss)


def _percentile_ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 1) if seconds else None


def _slowest_alerts(
    vrms: list[str], best_frame: list[float], last_seen: list[float], count: int = 3
) -> list[dict]:
    slowest = sorted(zip(best_frame, last_seen, vrms, strict=True), reverse=True)[:count]
    return [
        {
            "vrm": vrm,
            "latency_ms": round(latency * 1000, 1),
            "latency_from_last_seen_ms": round(from_last_seen * 1000, 1),
        }
        for latency, from_last_seen, vrm in slowest
    ]


def _truth_vrms(footage: Path) -> list[str] | None:
    from benchmarks.footageset import read_truth, truth_path

    path = truth_path(footage)
    return [p.vrm for p in read_truth(path).passes] if path.exists() else None


def run_benchmark(
    footage: Path, config_path: Path | None, realtime: bool, max_seconds: float | None
) -> dict:
    if not footage.is_file():
        raise FileNotFoundError(f"{footage}: no such clip")
    footage = footage.resolve()
    with tempfile.TemporaryDirectory(prefix="anpr-throughput-") as state_dir:
        config = build_config(footage, config_path, realtime, Path(state_dir))
        reads: list[VehicleRead] = []
        best_frame_latency: list[float] = []
        last_seen_latency: list[float] = []
        alerted_vrms: list[str] = []

        def on_alert(activation: Activation, alert_id: str, published_at: float) -> None:
            best_frame_latency.append(published_at - activation.vehicle.captured_at)
            last_seen_latency.append(published_at - activation.vehicle.last_seen)
            alerted_vrms.append(activation.vehicle.read.text)

        pipeline = Pipeline(config, on_read=reads.append, on_alert=on_alert)
        process = psutil.Process()
        cpu_before = process.cpu_times()
        started = time.monotonic()
        with _PeakMemory(process) as memory:
            pipeline.run(max_seconds=max_seconds)
        wall = time.monotonic() - started
        cpu_after = process.cpu_times()
        stats = pipeline.stats()

    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    result = {
        "frames": stats["frames_processed"],
        "fps": round(stats["frames_processed"] / wall, 2),
        "latency_ms_p50": _percentile_ms(best_frame_latency, 50),
        "latency_ms_p99": _percentile_ms(best_frame_latency, 99),
        "latency_from_last_seen_ms_p50": _percentile_ms(last_seen_latency, 50),
        "latency_from_last_seen_ms_p99": _percentile_ms(last_seen_latency, 99),
        "cpu_percent": round(100 * cpu / wall, 1),
        "rss_mb": round(memory.peak / 2**20, 1),
        "dropped": stats["dropped"],
        "skipped_late": sum(c.get("frames_skipped_late", 0) for c in stats["cameras"]),
        "frames_detected": stats["frames_processed"]
        - stats["frames_skipped_still"]
        - stats["frames_skipped_busy"],
        "frames_tracked_only": stats["frames_tracked_only"],
        "frames_searched_again": stats["frames_searched_again"],
        "frames_skipped_still": stats["frames_skipped_still"],
        "frames_skipped_busy": stats["frames_skipped_busy"],
        "reads": len(reads),
        "alerts": len(best_frame_latency),
        "slowest_alerts": _slowest_alerts(alerted_vrms, best_frame_latency, last_seen_latency),
        "pacing": "realtime" if realtime else "fast",
        "wall_s": round(wall, 2),
    }
    vrms = _truth_vrms(footage)
    if vrms is not None:
        truth = set(vrms)
        result["passes"] = len(vrms)
        result["reads_matching_truth"] = sum(read.read.text in truth for read in reads)
        result["reads_not_in_truth"] = [r.read.text for r in reads if r.read.text not in truth]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("footage", type=Path, help="Video clip to replay.")
    parser.add_argument("--config", type=Path, default=None, help="Daemon config to take over.")
    parser.add_argument("--realtime", action="store_true", help="Pace at the clip's frame rate.")
    parser.add_argument("--max-seconds", type=float, default=None, help="Stop after this long.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args(argv)
    try:
        result = run_benchmark(args.footage, args.config, args.realtime, args.max_seconds)
    except (FileNotFoundError, ConfigError) as error:
        print(f"benchmarks.throughput: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

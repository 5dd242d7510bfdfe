"""Alert path benchmark: the real publisher and a real console process over 127.0.0.1, CURVE on.

    python -m benchmarks.alerts --json

Three phases against one daemon (this process) and one console (a child process using
edge.console.ConsoleClient: de-duplication, acks, its own state folder):
1. latency: alerts at `--rate` per second for `--seconds`; publish-to-console latency is the
   console's receive time minus the alert's `created_at`, stamped when `publish()` starts, so it
   includes the journal commit (made before any send) and the console's parsing. As the pipeline
   does on its camera worker thread, each alert's evidence JPEGs are encoded just before its
   `publish()`; that time is reported on its own (evidence_encode_ms_*), not in the latency.
2. throughput: `--burst` alerts published back to back; alerts_per_s = burst / (time the console
   received the last one - time the first was published). The evidence is encoded beforehand (a
   camera encodes each vehicle's images once, at the pace vehicles pass, not 5,000 a second); every
   alert still carries, journals and sends its own copy of the JPEG bytes. The CPU time each part
   used in this phase is reported per alert (burst_cpu_us_per_alert), and with it the most alerts
   a second this machine's CPUs could carry at that cost if nothing else ran
   (cpu_bound_alerts_per_s).
3. disconnect: `--burst` alerts more; a third of the way through the console is killed (SIGKILL),
   and at two thirds it is started again on the same state folder, so a third of the burst is
   published while no console is connected; `lost` counts alerts published in the whole run that
   no console incarnation ever received, `duplicates` those received twice.

Before the latency and the throughput phases the benchmark calls os.sync(): every alert's images
go into the journal (about 140 MB for a 5,000-alert burst), and the disk flushing an earlier phase's
or run's writes would otherwise slow the next one by up to a third on this VM.

Each alert carries a 160x40 plate crop and an overview frame downscaled from `--frame` (default
1280x720, synthetic texture) to 640 px wide, both JPEG, as the pipeline sends them; `--frame none`
leaves the overview out, to measure the delivery machinery without most of the image work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil

from edge.alerts import AlertPublisher, Evidence, alert_frames, alert_record, encode_evidence
from edge.config import AlertsConfig
from edge.console import ConsoleClient
from edge.keys import write_keypair
from edge.types import Activation, Hit, HotlistEntry, Marker, MatchKind, PlateRead, VehicleRead

RESULTS = Path(__file__).resolve().parent / "results" / "alerts.json"


def _frame(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A frame with road-scene-like texture (smooth gradients plus noise), not a flat colour."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = (x * 0.5 + y * 0.5)[..., None] + rng.normal(0, 12, (height, width, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def make_activations(count: int, frame_size: tuple[int, int] | None) -> list[Activation]:
    """Alerts alternating firearms / drugs, over 4 distinct images; `frame_size` None sends no
    overview frame."""
    rng = np.random.default_rng(1)
    no_frame = np.zeros((0, 0, 3), np.uint8)
    frames = [_frame(*frame_size, rng) if frame_size else no_frame for _ in range(4)]
    crops = [rng.integers(0, 255, (40, 160, 3), dtype=np.uint8) for _ in range(4)]
    activations = []
    for i in range(count):
        text = f"BN{i % 100:02d}XYZ"
        markers = {Marker.FIREARMS} if i % 2 else {Marker.DRUGS}
        entry = HotlistEntry(
            f"E{i}", text, frozenset(markers), "Stop if safe", "Benchmark entry", "PNC",
            dt.date(2026, 1, 1), dt.date(2027, 1, 1),
        )  # fmt: skip
        now = time.time()
        vehicle = VehicleRead(
            "bench-cam", i, PlateRead(text, 0.93, (0.95,) * 7, (("BN00XYY", 0.04),), "current"),
            now, now - 1, now, (400, 500, 160, 40), crops[i % 4], frames[i % 4], "towards", 8,
        )  # fmt: skip
        activations.append(Activation(vehicle, (Hit(entry, MatchKind.EXACT, 0, text),)))
    return activations


def console_worker(endpoint: str, keys: Path, state: Path, record: Path) -> None:
    """The console process: receive, record (id, receive time, created_at), ack."""
    client = ConsoleClient(
        endpoint,
        "tfc",
        secret_key=keys / "bench-tfc.key_secret",
        server_public_key=keys / "daemon.key",
        state_dir=state,
    )
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while True:
        event = client.receive(1.0)
        if event is None:
            continue
        if event["type"] == "link" and event["up"]:
            print("ready", flush=True)
        elif event["type"] == "alert":
            received = time.time()
            os.write(fd, f"{event['alert_id']} {received:.6f} {event['created_at']:.6f}\n".encode())
            client.ack(event["alert_id"])


class Record:
    """The console's record file, read incrementally: the benchmark process is also the daemon,
    so re-reading the whole file every 50 ms would take CPU from the publisher under test."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[tuple[str, float, float]] = []
        self._offset = 0

    def read(self) -> list[tuple[str, float, float]]:
        with self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            alert_id, received, created = line.split()
            self.rows.append((alert_id, float(received), float(created)))
        return self.rows

    def wait_for(self, ids: set[str], timeout_s: float) -> list[tuple[str, float, float]]:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.read()
            if ids <= {row[0] for row in rows} or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


_THREAD_PARTS = {
    "MainThread": "publish_caller",
    "alerts-io": "alert_io_thread",
    "journal-checkpoint": "journal_checkpoint",
}
"""This process's threads by name; the others are ZeroMQ's (CURVE, TCP) and the key checker's."""


def cpu_seconds(console_pid: int) -> Counter[str]:
    """CPU time used so far by each part of the daemon (this process) and by the console."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    used: Counter[str] = Counter()
    for thread in psutil.Process().threads():
        part = _THREAD_PARTS.get(names.get(thread.id, ""), "daemon_other_threads")
        used[part] += thread.user_time + thread.system_time
    console = psutil.Process(console_pid).cpu_times()
    used["console"] = console.user + console.system
    return used


class Console:
    def __init__(self, endpoint: str, keys: Path, state: Path, record: Path):
        command = [sys.executable, "-m", "benchmarks.alerts", "--console-worker"]
        self.process = subprocess.Popen(
            [*command, endpoint, str(keys), str(state), str(record)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark console did not connect")

    def kill(self) -> None:
        """SIGKILL, as a crash or power cut would end it: no clean-up runs."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def run(rate: float, seconds: float, burst: int, frame_size: tuple[int, int] | None) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="anpr-alerts-bench-") as tmp:
        root = Path(tmp)
        for name in ("daemon", "bench-tfc"):
            write_keypair(name, root / "keys")
        config = AlertsConfig(
            bind="tcp://127.0.0.1:*",
            server_secret_key=root / "keys/daemon.key_secret",
            consoles=[
                {"name": "bench-tfc", "role": "tfc", "public_key": root / "keys/bench-tfc.key"}
            ],
            journal=root / "journal.sqlite",
        )
        publisher = AlertPublisher(config)
        publisher.start()
        record_path = root / "received.txt"
        record = Record(record_path)
        console = Console(publisher.endpoint, root / "keys", root / "console", record_path)
        activations = make_activations(max(int(rate * seconds), burst), frame_size)
        encoded = [encode_evidence(activation.vehicle) for activation in activations[:4]]

        def evidence(i: int) -> Evidence:
            return encoded[i % 4]  # alert i shows image i % 4 (make_activations)

        published: list[str] = []
        try:
            # 1. latency at a steady rate, each alert's evidence encoded just before publish()
            os.sync()
            start = time.monotonic()
            latency_ids = set()
            encode_ms = []
            for i in range(int(rate * seconds)):
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
                encode_started = time.perf_counter()
                fresh = encode_evidence(activations[i].vehicle)
                encode_ms.append((time.perf_counter() - encode_started) * 1000)
                latency_ids.add(publisher.publish(activations[i], fresh))
            published += latency_ids
            rows = record.wait_for(latency_ids, 10)
            latencies = [(r - c) * 1000 for alert_id, r, c in rows if alert_id in latency_ids]

            # 2. sustained throughput
            os.sync()
            cpu_before = cpu_seconds(console.process.pid)
            first = time.time()
            burst_ids = {publisher.publish(activations[i], evidence(i)) for i in range(burst)}
            published += burst_ids
            rows = record.wait_for(burst_ids, 60)
            last = max(r for alert_id, r, _ in rows if alert_id in burst_ids)
            alerts_per_s = burst / (last - first)
            cpu_used = cpu_seconds(console.process.pid) - cpu_before
            cpu_us = {part: round(cpu_used[part] / burst * 1e6) for part in sorted(cpu_used)}
            cpu_us["total"] = round(cpu_used.total() / burst * 1e6)
            frames = alert_frames(alert_record(activations[0], evidence(0)))
            alert_bytes = sum(len(frame) for frame in frames)

            # 3. console killed a third of the way through a burst, restarted at two thirds
            for i in range(burst):
                if i == burst // 3:
                    console.kill()
                if i == 2 * burst // 3:
                    console = Console(
                        publisher.endpoint, root / "keys", root / "console", record_path
                    )
                published.append(publisher.publish(activations[i], evidence(i)))
            rows = record.wait_for(set(published), 60)
        finally:
            console.kill()
            publisher.close()
        received = [row[0] for row in rows]
        return {
            "curve": True,
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 3),
            "latency_ms_p99": round(float(np.percentile(latencies, 99)), 3),
            "alerts_per_s": round(alerts_per_s, 1),
            "burst_cpu_us_per_alert": cpu_us,
            "cpu_bound_alerts_per_s": round(os.cpu_count() * 1e6 / cpu_us["total"]),
            "lost": len(set(published) - set(received)),
            "duplicates": len(received) - len(set(received)),
            "latency_rate_per_s": rate,
            "latency_samples": len(latencies),
            "burst": burst,
            "alert_bytes": alert_bytes,
            "evidence_encode_ms_p50": round(float(np.percentile(encode_ms, 50)), 3),
            "evidence_encode_ms_p99": round(float(np.percentile(encode_ms, 99)), 3),
            "evidence": "plate 160x40"
            + (f" + overview {frame_size[0]}x{frame_size[1]} -> 640 wide" if frame_size else ""),
            "cpus": os.cpu_count(),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--rate", type=float, default=100.0, help="Alerts/s in the latency phase.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Length of the latency phase.")
    parser.add_argument("--burst", type=int, default=5000, help="Alerts per burst phase.")
    parser.add_argument(
        "--frame", default="1280x720", help="Camera frame size WxH; 'none': no overview image."
    )
    parser.add_argument("--save", action="store_true", help=f"Also write {RESULTS}.")
    parser.add_argument(
        "--console-worker", nargs=4, metavar=("ENDPOINT", "KEYS", "STATE", "RECORD")
    )
    args = parser.parse_args(argv)
    if args.console_worker:
        endpoint, keys, state, record = args.console_worker
        console_worker(endpoint, Path(keys), Path(state), Path(record))
        return 0
    frame_size = None if args.frame == "none" else tuple(int(v) for v in args.frame.split("x"))
    result = run(args.rate, args.seconds, args.burst, frame_size)
    text = json.dumps(result)
    if args.save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

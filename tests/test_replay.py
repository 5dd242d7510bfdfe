"""Replay harness: scoring on constructed reads and alerts, the written report, a real replay."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.footageset import ClipTruth, VehiclePass, load_footage_set
from benchmarks.replay import FrameLog, clip_config, replay
from benchmarks.report import (
    ACCURACY_PLOT,
    LATENCY_PLOT,
    TIMELINE_PLOT,
    RunResult,
    update_readme,
    write_report,
)
from benchmarks.scoring import ObservedAlert, ObservedHit, ObservedRead, score_run
from benchmarks.throughput import FAST_REPLAY_QUEUE
from edge.read import DEFAULT_MODEL
from edge.sources import FrameQueue
from edge.types import Frame, Marker, MatchKind, Role

REPO = Path(__file__).resolve().parents[1]
SHORT = REPO / "tests" / "fixtures" / "short"
FPS = 25.0
T0 = 1_700_000_000.0

HOTLIST = {
    "GUN01AA": frozenset({Marker.FIREARMS}),
    "DRG01BB": frozenset({Marker.DRUGS}),
    "GNG01CC": frozenset({Marker.FIREARMS, Marker.GANGS}),
    "BUR01DD": frozenset({Marker.BURGLARY}),
}


def hotlisted(vrm: str) -> frozenset[Marker]:
    return HOTLIST.get(vrm, frozenset())


def vehicle_pass(vrm: str, first: int, last: int, height: float) -> VehiclePass:
    return VehiclePass(
        vrm=vrm, first_frame=first, last_frame=last, start_s=first / FPS, end_s=last / FPS,
        plate_height_px=height, char_height_px=height * 79 / 111, plate="front",
        direction="towards", lighting="day",
    )  # fmt: skip


TRUTH = ClipTruth(
    video="clip.mp4",
    fps=FPS,
    frames=400,
    width=1280,
    height=720,
    passes=[
        vehicle_pass("GUN01AA", 10, 50, 42),  # read exactly, exact alert
        vehicle_pass("DRG01BB", 60, 100, 33),  # misread by one, possible-misread alert
        vehicle_pass("AB12CDE", 110, 150, 28),  # not listed, read as a listed firearms VRM
        vehicle_pass("GNG01CC", 160, 200, 18),  # missed altogether
        vehicle_pass("XY51ZZZ", 210, 250, 36),  # read twice (track broke), not listed
        vehicle_pass("BUR01DD", 260, 300, 12),  # listed, read exactly, alerted twice
    ],
)


def read(
    track: int, text: str, first: int, last: int, confidence: float = 0.9, best: int | None = None
) -> ObservedRead:
    return ObservedRead(
        clip="clip", track_id=track, text=text, confidence=confidence, first_frame=first,
        last_frame=last, best_frame=(first + last) // 2 if best is None else best,
        plate_height_px=30, latency_s=0.05 + 0.01 * track,
    )  # fmt: skip


def alert(track: int, text: str, kind: MatchKind, entry_vrm: str, delay: float) -> ObservedAlert:
    markers = HOTLIST[entry_vrm]
    return ObservedAlert(
        clip="clip",
        track_id=track,
        alert_id=f"alert-{track}-{delay}",
        read_text=text,
        role=Role.TFC if Marker.FIREARMS in markers else Role.TSG,
        hits=(
            ObservedHit(vrm=entry_vrm, markers=markers, kind=kind, distance=int(kind != "exact")),
        ),
        captured_at=T0 + track,
        last_seen=T0 + track + 0.5,
        published_at=T0 + track + delay,
    )


READS = [
    read(1, "GUN01AA", 8, 52),
    read(2, "DRG01B8", 62, 98),
    read(3, "GUN01AA", 112, 148, confidence=0.6),  # a wrong read that happens to be listed
    read(4, "XY51ZZZ", 210, 228),
    read(5, "XY51ZZ2", 229, 250, confidence=0.5),
    read(6, "BUR01DD", 262, 299),
    read(7, "QQ99QQQ", 350, 380),  # nothing passes then: a ghost read
]
ALERTS = [
    alert(1, "GUN01AA", MatchKind.EXACT, "GUN01AA", 0.2),
    alert(2, "DRG01B8", MatchKind.POSSIBLE_MISREAD, "DRG01BB", 0.3),
    alert(3, "GUN01AA", MatchKind.EXACT, "GUN01AA", 0.4),  # false: the vehicle is AB12CDE
    alert(6, "BUR01DD", MatchKind.EXACT, "BUR01DD", 0.1),
    alert(6, "BUR01DD", MatchKind.EXACT, "BUR01DD", 0.9),  # the same pass alerted again
]


def test_capture_and_read_accuracy_per_pass():
    figures = score_run({"clip": TRUTH}, READS, [], hotlisted).figures()
    assert (figures["passes"], figures["passes_captured"]) == (6, 5)
    assert figures["capture_rate"] == pytest.approx(5 / 6)
    # Exact: GUN01AA, XY51ZZZ (its more confident read), BUR01DD. Wrong: DRG01B8, GUN01AA.
    assert figures["exact_reads"] == 3
    assert figures["read_accuracy_of_captured"] == pytest.approx(3 / 5)
    assert figures["read_accuracy_of_all"] == pytest.approx(3 / 6)
    assert figures["within_one_edit_of_captured"] == pytest.approx(4 / 5)
    assert (figures["ghost_reads"], figures["duplicate_reads"]) == (1, 1)


def test_reads_of_vehicles_in_view_together_go_to_the_pass_with_the_nearest_text():
    together = TRUTH.model_copy(
        update={
            "passes": [vehicle_pass("AB12CDE", 10, 60, 30), vehicle_pass("XY51ZZZ", 20, 70, 30)]
        }
    )
    reads = [read(1, "XY51ZZ2", 15, 65), read(2, "AB12CDF", 12, 62)]
    score = score_run({"clip": together}, reads, [], hotlisted)
    assert [p.read_text for p in score.passes] == ["AB12CDF", "XY51ZZ2"]
    assert score.figures()["duplicate_reads"] == 0


def test_a_read_goes_to_the_pass_in_view_at_its_best_crop_not_to_the_pass_its_track_overlaps_most():
    """A far plate tracked long before its pass began, its read emitted early: the track's span
    overlaps the pass of the vehicle in view before it most."""
    passes = [vehicle_pass("AN01YEM", 185, 226, 50), vehicle_pass("RL01AAX", 220, 276, 34)]
    early = TRUTH.model_copy(update={"passes": passes})
    reads = [read(1, "AN01YEM", 185, 186), read(2, "RL01AAX", 165, 231, best=229)]
    score = score_run({"clip": early}, reads, [], hotlisted)
    assert [p.read_text for p in score.passes] == ["AN01YEM", "RL01AAX"]
    misread = [read(1, "AN01YEM", 185, 186), read(2, "AN01YEN", 165, 231, best=260)]
    score = score_run({"clip": early}, misread, [], hotlisted)
    assert [p.read_text for p in score.passes] == ["AN01YEM", "AN01YEN"]


def test_hit_recall_and_precision_split_by_kind_and_false_alerts_by_marker():
    score = score_run({"clip": TRUTH}, READS, ALERTS, hotlisted)
    figures = score.figures()
    assert figures["hotlisted_passes"] == 4  # GUN01AA, DRG01BB, GNG01CC, BUR01DD
    assert figures["hit_recall"] == pytest.approx(3 / 4)
    assert figures["hit_recall_exact"] == pytest.approx(2 / 4)
    assert figures["hit_recall_possible_misread"] == pytest.approx(1 / 4)
    assert (figures["hits_exact"], figures["hits_possible_misread"]) == (4, 1)
    assert figures["hit_precision_exact"] == pytest.approx(3 / 4)
    assert figures["hit_precision_possible_misread"] == 1.0
    assert (figures["alerts"], figures["false_alerts"], figures["duplicate_alerts"]) == (5, 1, 1)
    assert figures["false_hits_by_marker"] == {"firearms": 1, "gangs": 0, "burglary": 0, "drugs": 0}
    assert figures["false_alerts_by_role"] == {"tfc": 1, "tsg": 0}
    assert figures["latency_s"]["count"] == 5
    assert figures["latency_s"]["p50"] == pytest.approx(0.3)
    assert figures["latency_s"]["max"] == pytest.approx(0.9)
    by_vrm = {p.vrm: p for p in score.passes}
    assert by_vrm["GNG01CC"].alerted is None and not by_vrm["GNG01CC"].captured
    assert by_vrm["DRG01BB"].alerted == MatchKind.POSSIBLE_MISREAD
    assert by_vrm["AB12CDE"].alerted is None


def test_accuracy_by_plate_height_bins_passes_by_their_largest_plate():
    rows = score_run({"clip": TRUTH}, READS, [], hotlisted).accuracy_by_plate_height()
    by_bin = {tuple(row["plate_height_px"]): row for row in rows}
    assert by_bin[(0, 15)]["passes"] == 1 and by_bin[(0, 15)]["read_accuracy"] == 1.0
    assert by_bin[(15, 20)]["capture_rate"] == 0.0
    assert by_bin[(40, 50)]["read_accuracy"] == 1.0
    assert sum(row["passes"] for row in rows) == len(TRUTH.passes)


def test_breakdown_groups_passes_by_lighting_and_direction():
    truth = TRUTH.model_copy(
        update={
            "passes": [*TRUTH.passes[:2], TRUTH.passes[2].model_copy(update={"lighting": "night"})]
        }
    )
    score = score_run({"clip": truth}, READS[:3], [], hotlisted)
    assert score.breakdown("lighting") == {
        "day": {"passes": 2, "capture_rate": 1.0, "read_accuracy": 0.5},
        "night": {"passes": 1, "capture_rate": 1.0, "read_accuracy": 0.0},
    }
    assert score.breakdown("direction")["towards"]["passes"] == 3


def _run(label: str, alerts: list[ObservedAlert]) -> RunResult:
    return RunResult(
        label=label,
        config=f"{label}.yaml",
        models={"detector": "text", "reader": "onnx, reader.onnx sha256:0123456789ab"},
        pacing="fast",
        score=score_run({"clip": TRUTH}, READS, alerts, hotlisted),
        resources={
            "wall_s": 5.0, "running_s": 4.0, "frames_processed": 400, "fps": 100.0,
            "cpu_percent_of_one_core": 150.0, "cpu_ms_per_frame": 15.0,
            "peak_rss_mb": 321.0, "machine_cpu_percent": 80.0, "machine_cores": 2,
            "load_average_1m": 1.5, "frames_dropped": 0, "frames_skipped_still": 20,
        },
        reads=READS,
    )  # fmt: skip


def test_report_has_json_markdown_and_plots_side_by_side(tmp_path):
    footage_dir = tmp_path / "footage"
    footage_dir.mkdir()
    (footage_dir / "clip.mp4").write_bytes(b"")
    (footage_dir / "clip.truth.json").write_text(TRUTH.model_dump_json())
    footage = load_footage_set(footage_dir)
    runs = [_run("onnx", ALERTS), _run("easyocr", ALERTS[:2])]
    write_report(tmp_path / "out", footage, runs)

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [run["label"] for run in report["runs"]] == ["onnx", "easyocr"]
    assert report["runs"][0]["figures"]["false_hits_by_marker"]["firearms"] == 1
    assert report["runs"][1]["figures"]["false_alerts"] == 0
    assert report["runs"][0]["resources"]["fps"] == 100.0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| Figure | onnx | easyocr |" in markdown
    assert "| Vehicle passes captured (seen / in truth) | 5/6 (83.3%) | 5/6 (83.3%) |" in markdown
    assert "| **False firearms alerts (to TFC)** | **1** | **0** |" in markdown
    assert "| Capture-to-alert latency p50 / p95 / p99 | 300 ms /" in markdown
    assert "| CPU time per frame (all stages) | 15 ms | 15 ms |" in markdown
    assert "reader onnx, reader.onnx sha256:0123456789ab" in markdown
    assert "**FALSE**" in markdown
    assert "| lighting: day | 6 | 83.3% / 50.0% | 83.3% / 50.0% |" in markdown
    for name in (LATENCY_PLOT, ACCURACY_PLOT, TIMELINE_PLOT):
        assert f"]({name})" in markdown
        image = cv2.imread(str(tmp_path / "out" / name))
        assert image is not None and image.shape[0] > 100 and image.std() > 10

    readme = tmp_path / "README.md"
    readme.write_text("# B\n\n<!-- REPLAY-HEADLINE -->\nold\n<!-- /REPLAY-HEADLINE -->\n\nRest.\n")
    update_readme(readme, tmp_path / "out", footage, runs)
    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- /REPLAY-HEADLINE -->\n\nRest.\n")
    assert "| **False firearms alerts (to TFC)** | **1** | **0** |" in text
    assert f"![Alerts timeline](out/{TIMELINE_PLOT})" in text


def test_frame_log_maps_capture_times_to_frame_indexes():
    queue = FrameQueue(8)
    seen = []
    log = FrameLog(queue, lambda: seen.append(1))
    image = np.zeros((4, 4, 3), np.uint8)
    for index in (0, 1, 3, 4):  # frame 2 was skipped by the source
        queue.put(Frame("cam", index, T0 + index / FPS, T0 + index / FPS, image))
    assert [log.get(timeout=0.1).index for _ in range(4)] == [0, 1, 3, 4]
    assert log.index_at(T0 + 3 / FPS) == 3
    assert log.index_at(T0 + 2.5 / FPS) == 3
    assert len(seen) == 4 and log.dropped == 0 and len(log) == 0


def test_clip_config_runs_each_clip_as_its_own_camera_with_the_sets_hotlist(tmp_path):
    footage = load_footage_set(SHORT)
    base = {"cameras": [{"id": "x", "source": "y", "queue_size": 4, "loop": True}],
            "reader": {"min_confidence": 0.4}}  # fmt: skip
    config = clip_config(base, footage, footage.clips[0], tmp_path, "fast", tmp_path / "a.yaml")
    (camera,) = config.cameras
    assert (camera.id, camera.source, camera.pacing, camera.loop) == (
        "short", str(SHORT / "short.mp4"), "fast", False)  # fmt: skip
    assert camera.queue_size == FAST_REPLAY_QUEUE and config.reader.min_confidence == 0.4
    realtime = clip_config(
        base, footage, footage.clips[0], tmp_path, "realtime", tmp_path / "a.yaml"
    )
    assert realtime.cameras[0].queue_size == 4  # a camera's own queue when paced as a camera
    assert config.hotlists.paths == [SHORT / "hotlist.csv"]
    assert config.alerts.insecure and config.alerts.bind.startswith("tcp://127.0.0.1:")
    assert config.alerts.journal.parent == tmp_path


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=f"reader model {DEFAULT_MODEL} not built")
def test_replay_of_the_short_clip_through_the_daemon(tmp_path):
    footage = load_footage_set(SHORT)
    run = replay(footage, {}, label="onnx", config_source=tmp_path / "a.yaml", progress=False)
    figures = run.score.figures()
    assert figures["passes"] == 2
    assert run.resources["frames_processed"] == footage.clips[0].truth.frames
    assert run.resources["fps"] > 0 and run.resources["peak_rss_mb"] > 50
    assert figures["passes_captured"] >= 1
    assert figures["alerts"] == len(run.score.alert_rows)
    write_report(tmp_path / "out", footage, [run])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["runs"][0]["figures"]["passes"] == 2
    assert report["runs"][0]["models"]["reader"].startswith("onnx, reader.onnx sha256:")

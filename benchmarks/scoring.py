"""Scoring a replay against ground truth: capture, read accuracy, hotlist hits, latency.

The daemon's reads and alerts are first reduced to plain records (`ObservedRead`,
`ObservedAlert`) that carry frame numbers, so scoring needs no video, model or socket and is
tested on constructed inputs. Definitions (also in benchmarks/README.md):

- A read is matched to a ground-truth pass of the same clip whose frame window (widened by
  `WINDOW_SLACK_FRAMES`) overlaps the read's frames. The candidates are the passes in view in
  the frame of the read's best crop (a track can begin long before its pass, on a far plate,
  and end early when its read is emitted, so its span can overlap another vehicle's pass most),
  or, when none is, the passes overlapping it at least half as much as the best. Among them,
  the one whose VRM is the fewest edits from the read, then the one overlapping most. A read
  overlapping no pass is a ghost read.
- A pass is captured when at least one read is matched to it; its read is the most confident
  of those, and it is read exactly when that text equals the VRM.
- Every hit of every alert is a claim that the vehicle is the hit entry's VRM: it is correct
  when the alert's read is matched to a pass with that VRM. Precision is split by the hit's
  kind (exact / possible misread); recall counts hotlisted passes with a correct hit, split by
  whether an exact hit was among them. A false hit counts once under each marker its entry has.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from benchmarks.footageset import ClipTruth, VehiclePass
from edge.hotlist.matching import edit_distance
from edge.types import Marker, MatchKind, Role

WINDOW_SLACK_FRAMES = 12
"""Reads may start or end a little outside the truth window: the truth counts only frames with
the whole plate in view and at least 8 px tall, a tracker may follow a plate that is less."""

PLATE_HEIGHT_BINS_PX = (0, 15, 20, 25, 30, 40, 50, 1000)


@dataclass(frozen=True, slots=True)
class ObservedRead:
    clip: str
    track_id: int
    text: str
    confidence: float
    first_frame: int
    last_frame: int
    best_frame: int
    """The frame of the read's best crop (its evidence image)."""
    plate_height_px: int
    """Height of the plate box in the read's best frame."""
    latency_s: float
    """From the capture of the read's best frame to the read leaving the tracker."""


@dataclass(frozen=True, slots=True)
class ObservedHit:
    vrm: str
    markers: frozenset[Marker]
    kind: MatchKind
    distance: int


@dataclass(frozen=True, slots=True)
class ObservedAlert:
    clip: str
    track_id: int
    alert_id: str
    read_text: str
    role: Role
    hits: tuple[ObservedHit, ...]
    captured_at: float
    """Wall-clock capture of the read's best frame."""
    last_seen: float
    """Wall-clock capture of the last frame of the pass before the read was emitted."""
    published_at: float


@dataclass(frozen=True, slots=True)
class PassResult:
    clip: str
    vrm: str
    first_frame: int
    last_frame: int
    plate_height_px: float
    lighting: str
    direction: str
    hotlisted: frozenset[Marker]
    """Markers of the active hotlist entries naming this VRM (empty: not on the list)."""
    read_text: str | None
    reads: int
    alerted: str | None
    """"exact" or "possible_misread" for a correct alert, None for none."""

    @property
    def captured(self) -> bool:
        return self.read_text is not None

    @property
    def exact(self) -> bool:
        return self.read_text == self.vrm


@dataclass
class Score:
    passes: list[PassResult] = field(default_factory=list)
    ghost_reads: list[ObservedRead] = field(default_factory=list)
    duplicate_reads: int = 0
    hits_by_kind: Counter = field(default_factory=Counter)
    correct_hits_by_kind: Counter = field(default_factory=Counter)
    false_hits_by_marker: Counter = field(default_factory=Counter)
    false_alerts_by_role: Counter = field(default_factory=Counter)
    alerts: int = 0
    false_alerts: int = 0
    duplicate_alerts: int = 0
    latencies_s: list[float] = field(default_factory=list)
    last_sight_latencies_s: list[float] = field(default_factory=list)
    alert_rows: list[dict] = field(default_factory=list)

    def figures(self) -> dict:
        """The headline numbers, JSON-ready; None where a figure has nothing to count."""
        total = len(self.passes)
        captured = [p for p in self.passes if p.captured]
        exact = [p for p in captured if p.exact]
        near = [p for p in captured if edit_distance(p.read_text or "", p.vrm) <= 1]
        listed = [p for p in self.passes if p.hotlisted]
        alerted_exact = [p for p in listed if p.alerted == MatchKind.EXACT]
        alerted_misread = [p for p in listed if p.alerted == MatchKind.POSSIBLE_MISREAD]
        hits = sum(self.hits_by_kind.values())
        return {
            "passes": total,
            "passes_captured": len(captured),
            "capture_rate": _ratio(len(captured), total),
            "exact_reads": len(exact),
            "read_accuracy_of_captured": _ratio(len(exact), len(captured)),
            "read_accuracy_of_all": _ratio(len(exact), total),
            "within_one_edit_of_captured": _ratio(len(near), len(captured)),
            "ghost_reads": len(self.ghost_reads),
            "duplicate_reads": self.duplicate_reads,
            "hotlisted_passes": len(listed),
            "hit_recall": _ratio(len(alerted_exact) + len(alerted_misread), len(listed)),
            "hit_recall_exact": _ratio(len(alerted_exact), len(listed)),
            "hit_recall_possible_misread": _ratio(len(alerted_misread), len(listed)),
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "duplicate_alerts": self.duplicate_alerts,
            "alert_precision": _ratio(self.alerts - self.false_alerts, self.alerts),
            "hits": hits,
            "hit_precision": _ratio(sum(self.correct_hits_by_kind.values()), hits),
            "hit_precision_exact": _ratio(
                self.correct_hits_by_kind[MatchKind.EXACT], self.hits_by_kind[MatchKind.EXACT]
            ),
            "hit_precision_possible_misread": _ratio(
                self.correct_hits_by_kind[MatchKind.POSSIBLE_MISREAD],
                self.hits_by_kind[MatchKind.POSSIBLE_MISREAD],
            ),
            "hits_exact": self.hits_by_kind[MatchKind.EXACT],
            "hits_possible_misread": self.hits_by_kind[MatchKind.POSSIBLE_MISREAD],
            "false_hits_by_marker": {m.value: self.false_hits_by_marker[m] for m in Marker},
            "false_alerts_by_role": {r.value: self.false_alerts_by_role[r] for r in Role},
            "latency_s": percentiles(self.latencies_s),
            "last_sight_to_alert_s": percentiles(self.last_sight_latencies_s),
        }

    def breakdown(self, attribute: str) -> dict[str, dict]:
        """Capture and exact-read rates of the passes grouped by a pass attribute, e.g.
        'lighting' or 'direction'."""
        groups: dict[str, list[PassResult]] = defaultdict(list)
        for result in self.passes:
            groups[getattr(result, attribute)].append(result)
        return {
            value: {
                "passes": len(group),
                "capture_rate": _ratio(sum(p.captured for p in group), len(group)),
                "read_accuracy": _ratio(sum(p.exact for p in group), len(group)),
            }
            for value, group in sorted(groups.items())
        }

    def accuracy_by_plate_height(self) -> list[dict]:
        """Capture and exact-read rates of the passes in each plate-height bin (largest height)."""
        rows = []
        for low, high in itertools.pairwise(PLATE_HEIGHT_BINS_PX):
            inside = [p for p in self.passes if low <= p.plate_height_px < high]
            if not inside:
                continue
            rows.append(
                {
                    "plate_height_px": [low, high],
                    "passes": len(inside),
                    "capture_rate": _ratio(sum(p.captured for p in inside), len(inside)),
                    "read_accuracy": _ratio(sum(p.exact for p in inside), len(inside)),
                }
            )
        return rows


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    array = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(array.max()),
        "count": len(values),
    }


def _window(vehicle: VehiclePass) -> tuple[int, int]:
    """The pass's first and last frame, widened by `WINDOW_SLACK_FRAMES`."""
    return vehicle.first_frame - WINDOW_SLACK_FRAMES, vehicle.last_frame + WINDOW_SLACK_FRAMES


def _overlap(read: ObservedRead, vehicle: VehiclePass) -> int:
    first, last = _window(vehicle)
    return min(read.last_frame, last) - max(read.first_frame, first) + 1


def _in_window(frame: int, vehicle: VehiclePass) -> bool:
    first, last = _window(vehicle)
    return first <= frame <= last


def match_reads(
    passes: Sequence[VehiclePass], reads: Sequence[ObservedRead]
) -> tuple[dict[int, list[ObservedRead]], list[ObservedRead]]:
    """Reads per pass index, and the ghost reads that overlap no pass."""
    matched: dict[int, list[ObservedRead]] = defaultdict(list)
    ghosts = []
    for read in reads:
        overlaps = {index: _overlap(read, vehicle) for index, vehicle in enumerate(passes)}
        best = max(overlaps.values(), default=0)
        if best <= 0:
            ghosts.append(read)
            continue
        in_view = {i for i, vehicle in enumerate(passes) if _in_window(read.best_frame, vehicle)}
        considered = in_view or {i for i, overlap in overlaps.items() if overlap >= best / 2}
        candidates = [
            (edit_distance(read.text, passes[i].vrm), -overlaps[i], i) for i in considered
        ]
        matched[min(candidates)[2]].append(read)
    return matched, ghosts


HotlistLookup = Callable[[str], frozenset[Marker]]
"""Markers of the active hotlist entries naming a VRM exactly (empty when none)."""


def score_run(
    truths: dict[str, ClipTruth],
    reads: Sequence[ObservedRead],
    alerts: Sequence[ObservedAlert],
    hotlisted: HotlistLookup,
) -> Score:
    """Score one replay of every clip in `truths` (keyed by clip name)."""
    score = Score()
    pass_of_track: dict[tuple[str, int], VehiclePass] = {}
    clip_results: dict[str, list[PassResult]] = {}
    for clip, truth in truths.items():
        clip_reads = [r for r in reads if r.clip == clip]
        matched, ghosts = match_reads(truth.passes, clip_reads)
        score.ghost_reads.extend(ghosts)
        results = []
        for index, vehicle in enumerate(truth.passes):
            own = matched.get(index, [])
            score.duplicate_reads += max(0, len(own) - 1)
            for read in own:
                pass_of_track[(clip, read.track_id)] = vehicle
            best = max(own, key=lambda r: r.confidence, default=None)
            results.append(
                PassResult(
                    clip=clip,
                    vrm=vehicle.vrm,
                    first_frame=vehicle.first_frame,
                    last_frame=vehicle.last_frame,
                    plate_height_px=vehicle.plate_height_px,
                    lighting=vehicle.lighting,
                    direction=vehicle.direction,
                    hotlisted=hotlisted(vehicle.vrm),
                    read_text=None if best is None else best.text,
                    reads=len(own),
                    alerted=None,
                )
            )
        clip_results[clip] = results

    read_end = {(read.clip, read.track_id): read.last_frame for read in reads}
    alerted: dict[tuple[str, str, int], str] = {}
    for alert in sorted(alerts, key=lambda a: a.published_at):
        score.alerts += 1
        vehicle = pass_of_track.get((alert.clip, alert.track_id))
        correct_kinds = []
        for hit in alert.hits:
            score.hits_by_kind[hit.kind] += 1
            if vehicle is not None and hit.vrm == vehicle.vrm:
                score.correct_hits_by_kind[hit.kind] += 1
                correct_kinds.append(hit.kind)
            else:
                for marker in hit.markers:
                    score.false_hits_by_marker[marker] += 1
        if not correct_kinds:
            score.false_alerts += 1
            score.false_alerts_by_role[alert.role] += 1
        else:
            key = (alert.clip, vehicle.vrm, vehicle.first_frame)
            kind = MatchKind.EXACT if MatchKind.EXACT in correct_kinds else correct_kinds[0]
            if key in alerted:
                score.duplicate_alerts += 1
            if alerted.get(key) != MatchKind.EXACT:
                alerted[key] = kind
        latency = alert.published_at - alert.captured_at
        score.latencies_s.append(latency)
        score.last_sight_latencies_s.append(alert.published_at - alert.last_seen)
        score.alert_rows.append(
            {
                "clip": alert.clip,
                "track_id": alert.track_id,
                "frame": read_end.get((alert.clip, alert.track_id)),
                "alert_id": alert.alert_id,
                "read": alert.read_text,
                "true_vrm": None if vehicle is None else vehicle.vrm,
                "role": alert.role.value,
                "hits": [
                    {
                        "vrm": h.vrm,
                        "kind": h.kind.value,
                        "markers": sorted(m.value for m in h.markers),
                    }
                    for h in alert.hits
                ],
                "correct": bool(correct_kinds),
                "latency_s": round(latency, 4),
                "truth_frame": None if vehicle is None else vehicle.first_frame,
            }
        )

    for clip, results in clip_results.items():
        for result in results:
            kind = alerted.get((clip, result.vrm, result.first_frame))
            score.passes.append(result if kind is None else replace(result, alerted=kind))
    return score


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"

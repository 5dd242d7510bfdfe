"""Writing a replay's report: report.json, report.md and PNG plots, one column per config."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from benchmarks.footageset import FootageSet
from benchmarks.scoring import ObservedRead, Score, format_ratio
from edge.types import Marker

matplotlib.use("Agg")

LATENCY_PLOT = "latency_histogram.png"
ACCURACY_PLOT = "accuracy_by_plate_height.png"
TIMELINE_PLOT = "alerts_timeline.png"
COLOURS = ("tab:blue", "tab:orange")


@dataclass(frozen=True, slots=True)
class RunResult:
    label: str
    config: str
    models: dict[str, str]
    """"detector" and "reader": backend and model file (with a short hash) that ran."""
    pacing: str
    score: Score
    resources: dict
    reads: Sequence[ObservedRead]


def _shown(path: Path) -> str:
    """A path relative to the working directory when it lies inside it (reports get committed)."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:.0f} ms"


def _count(part: int, whole: int, ratio: float | None) -> str:
    return f"{part}/{whole} ({format_ratio(ratio)})"


def headline_rows(run: RunResult) -> list[tuple[str, str]]:
    """(figure, value) pairs of the headline table, in reading order."""
    f = run.score.figures()
    r = run.resources
    latency, last_sight = f["latency_s"], f["last_sight_to_alert_s"]
    false_by_marker = f["false_hits_by_marker"]
    return [
        ("Vehicle passes captured (seen / in truth)",
         _count(f["passes_captured"], f["passes"], f["capture_rate"])),
        ("Exact read accuracy per captured pass",
         _count(f["exact_reads"], f["passes_captured"], f["read_accuracy_of_captured"])),
        ("Exact read accuracy over all passes",
         _count(f["exact_reads"], f["passes"], f["read_accuracy_of_all"])),
        ("Reads within one character (of captured)",
         format_ratio(f["within_one_edit_of_captured"])),
        ("Hotlist hit recall (any / exact / possible misread)",
         (f"{format_ratio(f['hit_recall'])} / {format_ratio(f['hit_recall_exact'])} / "
          f"{format_ratio(f['hit_recall_possible_misread'])} of {f['hotlisted_passes']}")),
        ("Hit precision, exact hits",
         f"{format_ratio(f['hit_precision_exact'])} of {f['hits_exact']}"),
        ("Hit precision, possible-misread hits",
         f"{format_ratio(f['hit_precision_possible_misread'])} of {f['hits_possible_misread']}"),
        ("Alerts (false / duplicate)",
         f"{f['alerts']} ({f['false_alerts']} / {f['duplicate_alerts']})"),
        ("**False firearms alerts (to TFC)**", f"**{false_by_marker[Marker.FIREARMS]}**"),
        ("False hits by marker: gangs / burglary / drugs",
         " / ".join(str(false_by_marker[m])
                    for m in (Marker.GANGS, Marker.BURGLARY, Marker.DRUGS))),
        ("Ghost reads / duplicate reads", f"{f['ghost_reads']} / {f['duplicate_reads']}"),
        ("Frames per second (processed / wall)", f"{r['fps']:.1f}" if r["fps"] else "n/a"),
        ("CPU time per frame (all stages)",
         f"{r['cpu_ms_per_frame']:.0f} ms" if r["cpu_ms_per_frame"] else "n/a"),
        ("Capture-to-alert latency p50 / p95 / p99",
         f"{_ms(latency['p50'])} / {_ms(latency['p95'])} / {_ms(latency['p99'])}"),
        ("Last sighting to alert p50 / p95 / p99",
         f"{_ms(last_sight['p50'])} / {_ms(last_sight['p95'])} / {_ms(last_sight['p99'])}"),
        ("CPU (% of one core) / peak memory",
         f"{r['cpu_percent_of_one_core']:.0f}% / {r['peak_rss_mb']:.0f} MB"),
    ]  # fmt: skip


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def headline_table(runs: Sequence[RunResult]) -> str:
    columns = [headline_rows(run) for run in runs]
    rows = [[name, *(column[i][1] for column in columns)] for i, (name, _) in enumerate(columns[0])]
    return _markdown_table(["Figure", *(run.label for run in runs)], rows)


def _passes_table(runs: Sequence[RunResult]) -> str:
    header = ["Clip", "Frames", "VRM", "Plate px", "Light", "Direction", "Hotlist"]
    for run in runs:
        header += [f"{run.label} read", f"{run.label} alert"]
    rows = []
    for index, vehicle in enumerate(runs[0].score.passes):
        row = [
            vehicle.clip,
            f"{vehicle.first_frame}-{vehicle.last_frame}",
            vehicle.vrm,
            f"{vehicle.plate_height_px:.0f}",
            vehicle.lighting,
            vehicle.direction,
            "+".join(sorted(m.value for m in vehicle.hotlisted)) or "-",
        ]
        for run in runs:
            result = run.score.passes[index]
            text = result.read_text or "(missed)"
            mark = "" if result.read_text is None else (" ✓" if result.exact else " ✗")
            row += [f"{text}{mark}", result.alerted or "-"]
        rows.append(row)
    return _markdown_table(header, rows)


def _breakdown_table(runs: Sequence[RunResult]) -> str:
    rows = []
    for attribute in ("lighting", "direction"):
        groups = [run.score.breakdown(attribute) for run in runs]
        for value, first in groups[0].items():
            row = [f"{attribute}: {value}", str(first["passes"])]
            for group in groups:
                row.append(
                    f"{format_ratio(group[value]['capture_rate'])} / "
                    f"{format_ratio(group[value]['read_accuracy'])}"
                )
            rows.append(row)
    header = ["Passes by", "Passes", *(f"{run.label} captured / exact" for run in runs)]
    return _markdown_table(header, rows)


def _alerts_table(runs: Sequence[RunResult]) -> str:
    rows = [
        [
            run.label,
            alert["clip"],
            alert["read"],
            alert["true_vrm"] or "(no pass)",
            alert["role"],
            ", ".join(f"{h['vrm']} {h['kind']} {'+'.join(h['markers'])}" for h in alert["hits"]),
            "yes" if alert["correct"] else "**FALSE**",
            _ms(alert["latency_s"]),
        ]
        for run in runs
        for alert in run.score.alert_rows
    ]
    header = ["Config", "Clip", "Read", "True VRM", "Role", "Hits", "Correct", "Latency"]
    return _markdown_table(header, rows) if rows else "No alerts."


def plot_latency(runs: Sequence[RunResult], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3.6), dpi=100)
    every = [x for run in runs for x in run.score.latencies_s] + [
        read.latency_s for run in runs for read in run.reads
    ]
    bins = np.linspace(0, max(every, default=1.0) * 1.05 * 1000, 30)
    for run, colour in zip(runs, COLOURS, strict=False):
        reads_ms = [1000 * read.latency_s for read in run.reads]
        alerts_ms = [1000 * x for x in run.score.latencies_s]
        axis.hist(reads_ms, bins=bins, alpha=0.35, color=colour, label=f"{run.label}: reads")
        axis.hist(alerts_ms, bins=bins, histtype="step", linewidth=2, color=colour,
                  label=f"{run.label}: alerts")  # fmt: skip
    axis.set_xlabel("capture of best frame → read / alert published (ms)")
    axis.set_ylabel("count")
    axis.set_title("Capture-to-read and capture-to-alert latency")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_accuracy_by_height(runs: Sequence[RunResult], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3.6), dpi=100)
    for run, colour in zip(runs, COLOURS, strict=False):
        rows = run.score.accuracy_by_plate_height()
        centres = [sum(r["plate_height_px"]) / 2 if r["plate_height_px"][1] < 1000
                   else r["plate_height_px"][0] + 5 for r in rows]  # fmt: skip
        axis.plot(centres, [100 * r["read_accuracy"] for r in rows], "o-", color=colour,
                  label=f"{run.label}: exact read")  # fmt: skip
        axis.plot(centres, [100 * r["capture_rate"] for r in rows], "s--", color=colour,
                  alpha=0.6, label=f"{run.label}: captured")  # fmt: skip
        for centre, row in zip(centres, rows, strict=True):
            axis.annotate(
                f"n={row['passes']}",
                (centre, 100 * row["read_accuracy"]),
                textcoords="offset points",
                xytext=(0, -12),
                fontsize=7,
                ha="center",
            )
    axis.set_xlabel("plate height at its largest (px)")
    axis.set_ylabel("% of passes")
    axis.set_ylim(-5, 105)
    axis.set_title("Accuracy against plate height")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_alert_timeline(footage: FootageSet, runs: Sequence[RunResult], path: Path) -> None:
    """Hotlisted passes as spans on the footage's time axis, each run's alerts as points."""
    offsets, start = {}, 0.0
    for clip in footage.clips:
        offsets[clip.name] = start
        start += clip.truth.frames / clip.truth.fps
    fps = {clip.name: clip.truth.fps for clip in footage.clips}
    figure, axis = plt.subplots(figsize=(9, 1.7 + 0.6 * len(runs)), dpi=100)
    for vehicle in runs[0].score.passes:
        t0 = offsets[vehicle.clip] + vehicle.first_frame / fps[vehicle.clip]
        t1 = offsets[vehicle.clip] + vehicle.last_frame / fps[vehicle.clip]
        if not vehicle.hotlisted:
            colour, shade, label_y = "grey", 0.08, -0.55
        else:
            colour = "tab:red" if Marker.FIREARMS in vehicle.hotlisted else "tab:purple"
            shade, label_y = 0.15, len(runs) - 0.45
        axis.axvspan(t0, t1, color=colour, alpha=shade)
        axis.text(t0, label_y, vehicle.vrm, fontsize=7, color=colour)
    for row, run in enumerate(runs):
        for alert in run.score.alert_rows:
            t = offsets[alert["clip"]] + (alert["frame"] or 0) / fps[alert["clip"]]
            colour = "tab:green" if alert["correct"] else "black"
            shape = "o" if any(h["kind"] == "exact" for h in alert["hits"]) else "^"
            edge = "tab:red" if alert["role"] == "tfc" else colour
            axis.scatter(
                [t], [row], marker=shape, s=70, color=colour, edgecolors=edge, linewidths=2
            )
    axis.set_yticks(range(len(runs)), [run.label for run in runs])
    axis.set_ylim(-0.7, len(runs) - 0.3)
    axis.set_xlim(0, start)
    axis.set_xlabel(
        "footage time (s); shaded = vehicle pass (red: firearms, purple: other markers, grey: "
        "not listed)\n● exact / ▲ possible-misread alert; green: correct, black: false; "
        "red rim: sent to the TFC",
        fontsize=7,
    )
    axis.set_title("Alerts timeline")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


README_START, README_END = "<!-- REPLAY-HEADLINE -->", "<!-- /REPLAY-HEADLINE -->"


def update_readme(
    readme: Path, out_dir: Path, footage: FootageSet, runs: Sequence[RunResult]
) -> None:
    """Put the headline table and the timeline plot of this report between the README's
    REPLAY-HEADLINE markers."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block to update")
    relative = Path(os.path.relpath(out_dir, readme.parent)).as_posix()
    passes = sum(len(c.truth.passes) for c in footage.clips)
    load = runs[0].resources["load_average_1m"]
    summary = (
        f"`{footage.root.name}`: {len(footage.clips)} clip(s), {passes} vehicle passes; "
        f"pacing {runs[0].pacing}; 1-minute load average {load:.1f} on "
        f"{runs[0].resources['machine_cores']} cores when measured "
        f"([full report]({relative}/report.md))."
    )
    plot = f"![Alerts timeline]({relative}/{TIMELINE_PLOT})"
    block = "\n\n".join([summary, headline_table(runs), plot])
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{block}\n{README_END}{tail}", encoding="utf-8")


def write_report(out_dir: Path, footage: FootageSet, runs: Sequence[RunResult]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_latency(runs, out_dir / LATENCY_PLOT)
    plot_accuracy_by_height(runs, out_dir / ACCURACY_PLOT)
    plot_alert_timeline(footage, runs, out_dir / TIMELINE_PLOT)
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    machine = f"{platform.machine()}, {runs[0].resources['machine_cores']} cores"
    report = {
        "generated_at": generated,
        "footage": _shown(footage.root),
        "clips": [
            {
                "name": c.name,
                "frames": c.truth.frames,
                "fps": c.truth.fps,
                "size": [c.truth.width, c.truth.height],
                "passes": len(c.truth.passes),
                "generator": c.truth.generator,
            }
            for c in footage.clips
        ],
        "hotlist": None if footage.hotlist is None else _shown(footage.hotlist),
        "machine": machine,
        "runs": [
            {
                "label": run.label,
                "config": run.config,
                "models": run.models,
                "pacing": run.pacing,
                "figures": run.score.figures(),
                "accuracy_by_plate_height": run.score.accuracy_by_plate_height(),
                "by_lighting": run.score.breakdown("lighting"),
                "by_direction": run.score.breakdown("direction"),
                "resources": run.resources,
                "passes": [
                    {
                        "clip": p.clip,
                        "vrm": p.vrm,
                        "frames": [p.first_frame, p.last_frame],
                        "plate_height_px": p.plate_height_px,
                        "lighting": p.lighting,
                        "direction": p.direction,
                        "hotlisted": sorted(m.value for m in p.hotlisted),
                        "read": p.read_text,
                        "reads": p.reads,
                        "exact": p.exact,
                        "alerted": p.alerted,
                    }
                    for p in run.score.passes
                ],
                "alerts": run.score.alert_rows,
                "ghost_reads": [
                    {"clip": r.clip, "text": r.text, "frames": [r.first_frame, r.last_frame]}
                    for r in run.score.ghost_reads
                ],
            }
            for run in runs
        ],
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(_markdown(footage, runs, generated, machine), "utf-8")


def _summary_line(
    footage: FootageSet,
    frames: int,
    passes: int,
    configs: str,
    generated: str,
    machine: str,
    load: str,
) -> str:
    hotlist = f"`{_shown(footage.hotlist)}`" if footage.hotlist else "none"
    return (
        f"Footage `{_shown(footage.root)}`: {len(footage.clips)} clip(s), {frames} frames, {passes} "
        f"vehicle passes; hotlist {hotlist}.  \nConfigs: {configs}.  \n"
        f"Generated {generated} on {machine} ({load})."
    )


def _markdown(footage: FootageSet, runs: Sequence[RunResult], generated: str, machine: str) -> str:
    passes = sum(len(c.truth.passes) for c in footage.clips)
    frames = sum(c.truth.frames for c in footage.clips)
    load = ", ".join(
        f"{run.label}: load average {run.resources['load_average_1m']:.1f}, machine CPU "
        f"{run.resources['machine_cpu_percent']:.0f}%"
        for run in runs
    )
    configs = "; ".join(
        f"{run.label} = `{run.config}` (pacing {run.pacing}; detector {run.models['detector']}; "
        f"reader {run.models['reader']})"
        for run in runs
    )
    return (
        "\n\n".join(
            [
                "# Replay report",
                _summary_line(footage, frames, passes, configs, generated, machine, load),
                "## Headline",
                headline_table(runs),
                f"![Alerts timeline]({TIMELINE_PLOT})",
                f"![Latency histogram]({LATENCY_PLOT})",
                f"![Accuracy against plate height]({ACCURACY_PLOT})",
                "## Vehicle passes",
                _breakdown_table(runs),
                _passes_table(runs),
                "## Alerts",
                _alerts_table(runs),
                'Definitions: benchmarks/README.md ("What the figures mean").',
            ]
        )
        + "\n"
    )

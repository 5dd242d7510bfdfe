"""The per-track trace: the tracker's own debug records, collected from a real replay."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from benchmarks.trace import main, trace
from edge.config import ConfigError

SHORT = Path(__file__).resolve().parent / "fixtures" / "short"
FEWER_READS = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "onnx-fewer-reads.yaml"
)


def test_trace_follows_each_track_from_its_start_to_its_emitted_read():
    events = trace(SHORT / "short.mp4", None, realtime=False).events
    emitted = {
        event.split("emitted ", 1)[1].split()[0]
        for track in events.values()
        for event in track
        if " emitted " in event
    }
    assert {"WA00LRE", "ND01TRR"} <= emitted
    for track in events.values():
        assert track[0].endswith(": started")
        if any(" emitted " in event for event in track):
            assert any(": read requested, box " in event for event in track)
            assert any(": read " in event and "confidence" in event for event in track)
    assert logging.getLogger("edge.track").level == logging.NOTSET  # put back as it was


def test_trace_prints_only_the_tracks_that_mention_a_text_and_merges_a_config_overlay(capsys):
    assert main([str(SHORT / "short.mp4"), "--config", str(FEWER_READS), "nd01trr"]) == 0
    printed = capsys.readouterr().out
    assert "ND01TRR" in printed and "WA00LRE" not in printed
    assert printed.startswith("camera bench track ")
    fused = [
        int(line.split(" from ")[1].split()[0])
        for line in printed.splitlines()
        if "emitted" in line
    ]
    assert fused and all(1 <= reads <= 2 for reads in fused)  # the overlay's reads_per_track: 2


def test_a_missing_config_overlay_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        trace(SHORT / "short.mp4", missing, realtime=False)
    assert main([str(SHORT / "short.mp4"), "--config", str(missing)]) == 2
    assert "nowhere.yaml: cannot read YAML" in capsys.readouterr().err

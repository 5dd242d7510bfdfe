"""Hotlist stage: the CSV format, validation, matching, expiry, hot reload and the check command."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.hotlist import misread, run, write_fictitious_list
from edge.cli import main as cli_main
from edge.hotlist import (
    HotlistError,
    HotlistWatcher,
    RepeatAlerts,
    alerting_hits,
    check_files,
    csvfile,
    load_hotlists,
    plausible_misreads,
)
from edge.hotlist.csvfile import from_days, parse_file
from edge.hotlist.index import CLASS_TRANSLATION, CONFUSION_GROUPS
from edge.hotlist.matching import edit_distance, loading_threads
from edge.hotlist.watcher import RELOAD_NICENESS
from edge.plates import normalise
from edge.types import Activation, Marker, MatchKind, PlateRead, Role

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "hotlists" / "sample.csv"
HEADER = "entry_id,vrm,markers,action,information,source,added,expires"
TODAY = dt.date.today()
ADDED = (TODAY - dt.timedelta(days=30)).isoformat()
EXPIRES = (TODAY + dt.timedelta(days=365)).isoformat()


def row(entry_id: str, vrm: str, markers: str = "gangs", **fields: str) -> str:
    values = {
        "action": "follow and stop",
        "information": "Fictitious test entry",
        "source": "Test suite",
        "added": ADDED,
        "expires": EXPIRES,
        **fields,
    }
    return ",".join(
        [
            entry_id,
            vrm,
            markers,
            values["action"],
            values["information"],
            values["source"],
            values["added"],
            values["expires"],
        ]
    )


def write(path: Path, *rows: str, header: str = HEADER, ending: str = "\n") -> Path:
    path.write_bytes((ending.join([header, *rows]) + ending).encode())
    return path


def problems_of(*paths: Path) -> str:
    with pytest.raises(HotlistError) as caught:
        load_hotlists(list(paths))
    assert caught.value.problems, "a HotlistError always lists its problems"
    return str(caught.value)


# -- the format ------------------------------------------------------------------------------


def test_sample_list_loads_with_every_marker_and_multi_marker_entries():
    hotlist = load_hotlists([SAMPLE])
    counts = hotlist.marker_counts()
    assert len(hotlist) == 8
    assert all(counts[marker] > 0 for marker in Marker)
    entries = [hotlist.entry(n) for n in range(len(hotlist))]
    assert any(len(entry.markers) > 1 for entry in entries)
    assert all(entry.list_name == "sample.csv" for entry in entries)


def test_entry_fields_are_decoded_from_quoted_csv(tmp_path):
    path = write(
        tmp_path / "list.csv",
        row(
            "Q-1",
            "zz99 fak",
            " Firearms ; GANGS",
            action='"stop - armed support"',
            information='"Seen at services, M6; driver known as ""Tiny"""',
        ),
    )
    (hit,) = load_hotlists([path]).match("ZZ99FAK")
    entry = hit.entry
    assert entry.entry_id == "Q-1"
    assert entry.vrm == "ZZ99FAK"
    assert entry.markers == {Marker.FIREARMS, Marker.GANGS}
    assert entry.action == "stop - armed support"
    assert entry.information == 'Seen at services, M6; driver known as "Tiny"'
    assert entry.source == "Test suite"
    assert entry.added == dt.date.fromisoformat(ADDED)
    assert entry.expires == dt.date.fromisoformat(EXPIRES)


def test_crlf_bom_blank_lines_and_missing_final_newline_are_accepted(tmp_path):
    text = "\ufeff" + "\r\n".join([HEADER, row("A", "ZZ99FAK"), "", "  ", row("B", "QQ11ABC")])
    path = tmp_path / "windows.csv"
    path.write_bytes(text.encode())
    hotlist = load_hotlists([path])
    assert len(hotlist) == 2
    assert hotlist.match("QQ11ABC")[0].entry.entry_id == "B"


def test_line_numbers_count_blank_lines_and_multi_line_quoted_fields(tmp_path):
    path = write(
        tmp_path / "list.csv",
        row("A", "ZZ99FAK", information='"two\nlines"'),
        "",
        row("B", "ZZ99 FA!"),
    )
    assert f"{path}:5: vrm: bad character '!'" in problems_of(path)


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "field", "reason"),
    [
        (row("A", "ZZ-99-FAK"), "vrm", "bad character '-'"),
        (row("A", "ZZ99FÄK"), "vrm", "bad character 'Ä'"),
        (row("A", "Z"), "vrm", "must have 2 to 10 letters or digits"),
        (row("A", "ABCDEFGHIJK"), "vrm", "must have 2 to 10 letters or digits"),
        (row("A", ""), "vrm", "missing VRM"),
        (row("A", "ZZ99FAK", "firearms;arson"), "markers", "unknown marker 'arson'"),
        (row("A", "ZZ99FAK", "firearms;"), "markers", "empty marker"),
        (row("A", "ZZ99FAK", ""), "markers", "missing markers"),
        (row("A", "ZZ99FAK", action=""), "action", "missing action"),
        (row("A", "ZZ99FAK", action='""'), "action", "missing action"),
        (row("A", "ZZ99FAK", source=" "), "source", "missing source"),
        (row("", "ZZ99FAK"), "entry_id", "missing entry id"),
        (row("A" * 65, "ZZ99FAK"), "entry_id", "longer than 64"),
        (row("A", "ZZ99FAK", added="2026-02-30"), "added", "bad date '2026-02-30'"),
        (row("A", "ZZ99FAK", added="1/2/2026"), "added", "bad date '1/2/2026'"),
        (row("A", "ZZ99FAK", expires=""), "expires", "missing date"),
        (row("A", "ZZ99FAK", added=(TODAY + dt.timedelta(days=2)).isoformat()), "added", "future"),
        (row("A", "ZZ99FAK", expires=ADDED), "expires", "must be after the date added"),
        ("A,ZZ99FAK,gangs,follow", "line", "expected 8 comma-separated fields, found 4"),
        (row("A", "ZZ99FAK", information='said "hello"'), "line", "stray quote"),
    ],
)
def test_each_bad_field_is_reported_with_file_line_field_and_reason(
    tmp_path, bad_row, field, reason
):
    path = write(tmp_path / "list.csv", row("OK-1", "QQ11ABC"), bad_row)
    message = problems_of(path)
    assert f"{path}:3: {field}: " in message
    assert reason in message


def test_wrong_header_unclosed_quote_bad_utf8_and_missing_file(tmp_path):
    header = write(tmp_path / "header.csv", row("A", "ZZ99FAK"), header="id,vrm,markers")
    assert f"{header}:1: header: expected" in problems_of(header)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert f"{empty}:1: header: the file is empty" in problems_of(empty)
    unclosed = write(
        tmp_path / "quote.csv", row("A", "ZZ99FAK"), row("B", "QQ11ABC", information='"open')
    )
    assert f"{unclosed}:3: line: a quoted field is never closed" in problems_of(unclosed)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(
        (HEADER + "\n" + row("A", "ZZ99FAK", information="caf\xe9")).encode("latin-1")
    )
    assert f"{latin1}:2: file: not valid UTF-8" in problems_of(latin1)
    missing = tmp_path / "missing.csv"
    assert f"{missing}:0: file: cannot read" in problems_of(missing)


def test_duplicate_ids_within_and_across_files(tmp_path):
    first = write(tmp_path / "a.csv", row("DUP-1", "ZZ99FAK"), row("DUP-1", "QQ11ABC"))
    assert f"{first}:3: entry_id: duplicate id 'DUP-1' (first on line 2)" in problems_of(first)
    one = write(tmp_path / "one.csv", row("X-1", "ZZ99FAK"))
    two = write(tmp_path / "two.csv", row("X-2", "QQ11ABC"), row("X-1", "QZ22DEF"))
    assert f"{two}:3: entry_id: duplicate id 'X-1' (first on {one} line 2)" in problems_of(one, two)


def test_every_problem_is_kept_and_the_message_is_bounded(tmp_path):
    rows = [row(f"A{i}", "ZZ-99") for i in range(200)]
    with pytest.raises(HotlistError) as caught:
        load_hotlists([write(tmp_path / "bad.csv", *rows)])
    assert caught.value.total == 200
    assert "more problems" in str(caught.value)
    assert len(str(caught.value).splitlines()) <= 21


def test_one_bad_file_rejects_the_whole_set(tmp_path):
    good = write(tmp_path / "good.csv", row("G-1", "ZZ99FAK"))
    bad = write(tmp_path / "bad.csv", row("B-1", "QQ11ABC", "arson"))
    with pytest.raises(HotlistError) as caught:
        load_hotlists([good, bad])
    assert all(problem.path == bad for problem in caught.value.problems)


# -- matching --------------------------------------------------------------------------------


@pytest.fixture
def hotlist(tmp_path):
    return load_hotlists(
        [
            write(
                tmp_path / "list.csv",
                row("F-1", "ZZ99 FAK", "firearms"),
                row("B-1", "QQ11 ABC", "burglary"),
                row("D-1", "QZ22 DEF", "drugs;burglary"),
            )
        ]
    )


def kinds(hits):
    return [(hit.entry.entry_id, hit.kind, hit.distance, hit.matched_text) for hit in hits]


def test_exact_match_ignores_case_and_spacing(hotlist):
    assert kinds(hotlist.match("zz99 fak")) == [("F-1", MatchKind.EXACT, 0, "ZZ99FAK")]


@pytest.mark.parametrize(
    ("read", "distance"),
    [
        ("2Z99FAK", 1),  # confusable swap Z -> 2
        ("ZZ99FAX", 1),  # one wrong character
        ("ZZ99FA", 1),  # one missing
        ("ZZ99FAKK", 1),  # one extra
        ("2299FAK", 2),  # two confusable swaps: still a possible misread, distance 2
        ("2299FA", 3),  # two swaps and one missing character
    ],
)
def test_misreads_are_possible_misreads_with_their_distance(hotlist, read, distance):
    assert kinds(hotlist.match(read)) == [("F-1", MatchKind.POSSIBLE_MISREAD, distance, read)]


@pytest.mark.parametrize("read", ["ZZ99FXX", "ZZ9FA", "AB12CDE", "", "Z"])
def test_reads_two_real_edits_away_or_unrelated_do_not_match(hotlist, read):
    assert hotlist.match(read) == []


def test_max_distance_zero_keeps_only_confusable_misreads(hotlist):
    assert kinds(hotlist.match("2Z99FAK", max_distance=0))[0][1] is MatchKind.POSSIBLE_MISREAD
    assert hotlist.match("ZZ99FAX", max_distance=0) == []
    with pytest.raises(ValueError, match="max_distance"):
        hotlist.match("ZZ99FAK", max_distance=2)


def test_alternatives_give_possible_misreads_never_a_second_hit_for_an_exact_entry(hotlist):
    hits = hotlist.match("ZZ99FAK", ["ZZ99FAX", "QQ11ABC"])
    assert kinds(hits) == [
        ("F-1", MatchKind.EXACT, 0, "ZZ99FAK"),
        ("B-1", MatchKind.POSSIBLE_MISREAD, 1, "QQ11ABC"),
    ]


def test_misread_keeps_the_smallest_distance_over_text_and_alternatives(hotlist):
    hits = hotlist.match("2299FAK", ["2Z99FAK"])
    assert kinds(hits) == [("F-1", MatchKind.POSSIBLE_MISREAD, 1, "2Z99FAK")]


def test_same_vrm_in_two_files_returns_both_entries_and_merges_markers(tmp_path):
    one = write(
        tmp_path / "force.csv", row("F-1", "ZZ99FAK", "firearms", action="stop - armed support")
    )
    two = write(
        tmp_path / "regional.csv", row("R-7", "zz99 fak", "drugs", action="intelligence only")
    )
    hits = load_hotlists([one, two]).match("ZZ99FAK")
    assert {(h.entry.entry_id, h.entry.list_name, h.entry.action) for h in hits} == {
        ("F-1", "force.csv", "stop - armed support"),
        ("R-7", "regional.csv", "intelligence only"),
    }
    activation = Activation(vehicle=None, hits=tuple(hits))  # type: ignore[arg-type]
    assert activation.markers == {Marker.FIREARMS, Marker.DRUGS}
    assert activation.role is Role.TFC


def test_expired_entries_never_match_even_while_loaded(tmp_path):
    tomorrow = TODAY + dt.timedelta(days=1)
    path = write(
        tmp_path / "list.csv",
        row("SOON", "ZZ99FAK", expires=tomorrow.isoformat()),
        row("GONE", "QQ11ABC", added="2020-01-01", expires="2021-01-01"),
    )
    hotlist = load_hotlists([path])
    assert len(hotlist) == 1, "an entry already expired is skipped by the daemon's loader"
    assert [h.entry.entry_id for h in hotlist.match("ZZ99FAK", at=tomorrow)] == ["SOON"]
    later = tomorrow + dt.timedelta(days=1)
    assert hotlist.match("ZZ99FAK", at=later) == []
    assert hotlist.match("2Z99FAK", at=later) == []
    assert hotlist.match("QQ11ABC", at=dt.date(2020, 6, 1)) == []


def test_alerting_hits_applies_fuzzy_alert_per_marker(hotlist):
    config = {
        Marker.FIREARMS: True,
        Marker.GANGS: True,
        Marker.BURGLARY: False,
        Marker.DRUGS: False,
    }
    assert [h.entry.entry_id for h in alerting_hits(hotlist.match("QQ11ABC"), config)] == ["B-1"]
    assert alerting_hits(hotlist.match("QQ11A8C"), config) == []
    assert alerting_hits(hotlist.match("QZ22DEX"), config) == []
    assert len(alerting_hits(hotlist.match("QZ22DEX"), {**config, Marker.DRUGS: True})) == 1
    assert len(alerting_hits(hotlist.match("2Z99FAK"), config)) == 1
    assert len(alerting_hits(hotlist.match("QQ11A8C"), {})) == 1, "unconfigured markers alert"


def _read(text: str, *unsure: int, alternatives: tuple[str, ...] = ()) -> PlateRead:
    """`text` read at 0.999 but for the positions `unsure`, read at 0.6."""
    confidences = tuple(0.6 if i in unsure else 0.999 for i in range(len(text)))
    return PlateRead(text, min(confidences), confidences, tuple((a, 0.5) for a in alternatives))


@pytest.mark.parametrize(
    ("read", "kept"),
    [
        (_read("QQ11ABC"), True),  # exact hits always count
        (_read("QQ11ABD"), False),  # the D read sure: no misread of QQ11ABC
        (_read("QQ11ABD", 6), True),  # ... the D in doubt: possibly one
        (_read("QQ11A8C"), True),  # a look-alike (B/8), however sure
        (_read("Q11ABC"), True),  # a character missing
        (_read("QQ11ABCX"), False),  # one extra, read sure
        (_read("QQ11ABCX", 7), True),  # ... in doubt
        (_read("QQQ11ABC"), False),  # an extra in a run of Qs, each read sure
        (_read("QQQ11ABC", 0), True),  # ... one of them in doubt: it may be the extra one
        (_read("XQ11ABD", 0, alternatives=("QQ11ABD",)), False),  # via an alternative: D sure
        (_read("QQ11ABDX", alternatives=("QQ11ABD",)), True),  # an alternative of another length
    ],
)
def test_a_misread_needs_the_reader_in_doubt_of_the_character_it_differs_by(hotlist, read, kept):
    alternatives = [text for text, _ in read.alternatives]
    hits = [h for h in hotlist.match(read.text, alternatives) if h.entry.entry_id == "B-1"]
    assert hits, "the read is within one edit of B-1 (QQ11ABC)"
    assert plausible_misreads(hits, read, doubt_below=0.999) == (hits if kept else [])
    assert plausible_misreads(hits, read, doubt_below=None) == hits, "None counts every hit"


def test_a_possible_misread_of_an_entry_the_camera_just_alerted_on_does_not_alert_again(hotlist):
    repeats = RepeatAlerts(window_s=10.0)
    first = hotlist.match("QQ11ABC")
    assert repeats.new_hits("cam1", first, first_seen=100.0) == first
    repeats.alerted("cam1", first, last_seen=103.0)

    part = hotlist.match("Q11ABC")  # the same vehicle, its track broken, read in part
    assert [(h.entry.entry_id, h.kind) for h in part] == [("B-1", MatchKind.POSSIBLE_MISREAD)]
    assert repeats.new_hits("cam1", part, first_seen=105.0) == []
    assert repeats.new_hits("cam2", part, first_seen=105.0) == part, "another camera alerts"
    assert repeats.new_hits("cam1", part, first_seen=113.5) == part, "a pass after the window"
    assert repeats.new_hits("cam1", first, first_seen=105.0) == first, "exact hits always alert"
    other = hotlist.match("ZZ99FAX")
    assert repeats.new_hits("cam1", other, first_seen=105.0) == other, "another entry alerts"


# -- property tests --------------------------------------------------------------------------

ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
VRMS = st.text(alphabet=ALPHANUMERIC, min_size=2, max_size=8)
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def levenshtein(a: str, b: str) -> int:
    """The textbook dynamic programme, as an oracle for the matcher's bit-parallel distance."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def within_one_class_edit(read: str, vrm: str) -> bool:
    a, b = read.translate(CLASS_TRANSLATION), vrm.translate(CLASS_TRANSLATION)
    return levenshtein(a, b) <= 1


def load_vrms(folder: Path, vrms: list[str]):
    rows = [row(f"E{i}", vrm) for i, vrm in enumerate(vrms)]
    return load_hotlists([write(folder / "property.csv", *rows)])


@given(st.text(max_size=20))
def test_normalise_keeps_only_upper_case_letters_and_digits_and_is_idempotent(text):
    normal = normalise(text)
    assert all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in normal)
    assert normalise(normal) == normal
    assert normalise(text.lower()) == normal


@PROPERTY_SETTINGS
@given(st.lists(VRMS, min_size=1, max_size=30, unique=True), st.data())
def test_every_entry_is_found_exactly_and_a_confusable_swap_as_a_misread(tmp_path, vrms, data):
    hotlist = load_vrms(tmp_path, vrms)
    for vrm in vrms:
        spaced = " ".join(vrm[i : i + 3].lower() for i in range(0, len(vrm), 3))
        exact = [h for h in hotlist.match(spaced) if h.kind is MatchKind.EXACT]
        assert [h.entry.vrm for h in exact] == [vrm]
    vrm = data.draw(st.sampled_from(vrms))
    swappable = [i for i, c in enumerate(vrm) if any(c in g for g in CONFUSION_GROUPS)]
    if swappable:
        i = data.draw(st.sampled_from(swappable))
        group = next(g for g in CONFUSION_GROUPS if vrm[i] in g)
        swapped = (
            vrm[:i] + data.draw(st.sampled_from([c for c in group if c != vrm[i]])) + vrm[i + 1 :]
        )
        hits = {h.entry.vrm: h for h in hotlist.match(swapped)}
        if swapped not in vrms:
            assert hits[vrm].kind is MatchKind.POSSIBLE_MISREAD
            assert hits[vrm].distance == 1


@PROPERTY_SETTINGS
@given(st.lists(VRMS, min_size=1, max_size=30, unique=True), st.lists(VRMS, max_size=20))
def test_matching_agrees_with_brute_force_comparison_to_every_entry(tmp_path, vrms, reads):
    hotlist = load_vrms(tmp_path, vrms)
    for read in reads + [misread(v, np.random.default_rng(i)) for i, v in enumerate(vrms[:5])]:
        hits = {h.entry.vrm: h for h in hotlist.match(read)}
        expected_exact = {v for v in vrms if v == read}
        expected_misread = {v for v in vrms if v != read and within_one_class_edit(read, v)}
        assert {v for v, h in hits.items() if h.kind is MatchKind.EXACT} == expected_exact
        assert {
            v for v, h in hits.items() if h.kind is MatchKind.POSSIBLE_MISREAD
        } == expected_misread
        for vrm in expected_misread:
            assert hits[vrm].distance == max(1, levenshtein(read, vrm))


@given(st.text(alphabet="AB01O", max_size=12), st.text(alphabet="AB01O", max_size=12))
def test_edit_distance_is_the_levenshtein_distance(a, b):
    assert edit_distance(a, b) == levenshtein(a, b)


@PROPERTY_SETTINGS
@given(st.lists(st.text(alphabet=ALPHANUMERIC, min_size=2, max_size=10), min_size=1, unique=True))
def test_every_entry_vrm_is_recovered_from_its_code(tmp_path, vrms):
    hotlist = load_vrms(tmp_path, vrms)
    assert sorted(hotlist.vrm(n) for n in range(len(hotlist))) == sorted(vrms)
    assert all(hotlist.vrm(n) == hotlist.entry(n).vrm for n in range(len(hotlist)))


# -- loading in blocks -----------------------------------------------------------------------
# A file is checked in blocks of lines on every core; a block boundary must never show.

INFORMATION = ["plain text", '"with, a comma"', '"two\nlines"', '"said ""hi"""', "", '"a\n\nb"']
BAD_LINES = [
    row("X", "ZZ-99"),
    row("X", "ZZ99FAK", "arson"),
    "X,ZZ99FAK,gangs",
    row("X", "ZZ99FAK", information='said "hi"'),
    row("X", "ZZ99FAK", expires="2030-02-30"),
]
LINES = st.one_of(
    st.tuples(st.just("entry"), VRMS, st.sampled_from(INFORMATION)),
    st.tuples(st.just("blank"), st.sampled_from(["", "  "]), st.just("")),
    st.tuples(st.just("bad"), st.sampled_from(BAD_LINES), st.just("")),
)


def file_text(lines: list[tuple[str, str, str]], ending: str, final_newline: bool) -> str:
    """The file, with each entry line given a unique id."""
    texts = [HEADER]
    for number, (kind, value, information) in enumerate(lines):
        if kind == "entry":
            texts.append(row(f"E{number}", value, information=information))
        else:
            texts.append(value.replace("X,", f"X{number},", 1))
    return ending.join(texts) + (ending if final_newline else "")


def parse_in_blocks(path: Path, block_bytes: int, monkeypatch) -> csvfile.ParsedFile:
    monkeypatch.setattr(csvfile, "_BLOCK_BYTES", block_bytes)
    with loading_threads() as executor:
        return parse_file(path, TODAY, expired_is_error=True, executor=executor)


@PROPERTY_SETTINGS
@given(
    st.lists(LINES, max_size=25),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.integers(1, 300),
)
def test_a_file_checked_in_blocks_of_any_size_gives_the_same_entries_and_problems(
    tmp_path, monkeypatch, lines, ending, final_newline, block_bytes
):
    text = file_text(lines, ending, final_newline)
    path = tmp_path / "blocks.csv"
    path.write_bytes(text.encode())
    whole = parse_in_blocks(path, 1 << 30, monkeypatch)
    blocks = parse_in_blocks(path, block_bytes, monkeypatch)
    assert [str(p) for p in blocks.problems] == [str(p) for p in whole.problems]
    assert blocks.problem_count == whole.problem_count
    for column in ("row_start", "lines", "codes", "markers", "expires"):
        assert getattr(blocks, column).tolist() == getattr(whole, column).tolist()
    assert (not whole.problems) == all(kind != "bad" for kind, _, _ in lines)
    if not whole.problems:
        entries = [(number, line) for number, line in enumerate(lines) if line[0] == "entry"]
        expected_lines = [
            2 + text.split(ending, 1)[1].count("\n", 0, text.split(ending, 1)[1].index(f"E{n},"))
            for n, _ in entries
        ]
        assert blocks.lines.tolist() == expected_lines
        assert blocks.codes.tolist() == [int("1" + vrm, 36) for _, (_, vrm, _) in entries]


def test_problems_after_block_boundaries_keep_file_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "_BLOCK_BYTES", 64)
    rows = [row(f"A{i}", "QQ11ABC", information='"spans\ntwo lines"') for i in range(20)]
    path = write(tmp_path / "late.csv", *rows, row("BAD", "ZZ-99"))
    assert f"{path}:42: vrm: bad character '-'" in problems_of(path)
    one_line_rows = [row(f"A{i}", "QQ11ABC", information='"one, line"') for i in range(20)]
    unclosed = write(
        tmp_path / "unclosed.csv", *one_line_rows, row("O", "ZZ99FAK", information='"x')
    )
    assert f"{unclosed}:22: line: a quoted field is never closed" in problems_of(unclosed)
    # The first piece ends after the first entry: its quotes balance, its lines do not.
    monkeypatch.setattr(csvfile, "_BLOCK_BYTES", len(HEADER) + len(rows[0]) + 2)
    spanning = write(tmp_path / "spanning.csv", *rows, row("O", "ZZ99FAK", information='"x'))
    assert f"{spanning}:2: line: a quoted field is never closed" in problems_of(spanning), (
        "as in one block: the first line with an odd number of quotes"
    )
    monkeypatch.setattr(csvfile, "_BLOCK_BYTES", 64)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(path.read_bytes().replace(b"ZZ-99", b"ZZ\xe999"))
    assert f"{latin1}:42: file: not valid UTF-8" in problems_of(latin1)


@PROPERTY_SETTINGS
@given(st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32))
def test_dates_are_read_as_the_calendar_reads_them(tmp_path, year, month, day):
    text = f"{year:04d}-{month:02d}-{day:02d}"
    try:
        expected = dt.date.fromisoformat(text)
    except ValueError:
        expected = None
    path = write(tmp_path / "dates.csv", row("D", "ZZ99FAK", added="0001-01-01", expires=text))
    with loading_threads() as executor:
        parsed = parse_file(path, dt.date(1, 1, 1), expired_is_error=True, executor=executor)
    if expected is None:
        assert [str(p) for p in parsed.problems] == [
            f"{path}:2: expires: bad date {text!r}: expected a real date written YYYY-MM-DD"
        ]
    elif expected == dt.date(1, 1, 1):
        assert "must be after the date added" in str(parsed.problems[0])
    else:
        assert parsed.problems == [] and from_days(parsed.expires[0]) == expected


def test_the_loaded_list_keeps_its_own_copy_of_the_file(tmp_path):
    path = write(tmp_path / "list.csv", row("F-1", "ZZ99FAK", "firearms", action="stop"))
    hotlist = load_hotlists([path])
    path.write_text(HEADER + "\n")
    (hit,) = hotlist.match("ZZ99FAK")
    assert (hit.entry.entry_id, hit.entry.action) == ("F-1", "stop")


# -- hot reload ------------------------------------------------------------------------------


def replace_atomically(path: Path, *rows: str) -> None:
    temporary = write(path.with_suffix(".tmp"), *rows)
    os.replace(temporary, path)


def test_watcher_swaps_in_a_replaced_file_and_keeps_the_old_list_when_the_new_one_is_bad(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="edge.hotlist")
    path = write(tmp_path / "live.csv", row("OLD-1", "ZZ99FAK"))
    watcher = HotlistWatcher([path], interval_s=60)
    assert watcher.reload_now() is False, "nothing changed yet"
    before = watcher.current
    replace_atomically(path, row("NEW-1", "QQ11ABC"), row("NEW-2", "QZ22DEF"))
    assert watcher.reload_now() is True
    assert watcher.current is not before
    assert len(watcher.current) == 2 and watcher.current.match("ZZ99FAK") == []
    assert "hotlist reloaded: 2 entries from 1 files (firearms 0, gangs 2" in caplog.text
    good = watcher.current
    replace_atomically(path, row("BAD-1", "QQ11ABC", "arson"))
    assert watcher.reload_now() is False
    assert watcher.current is good
    assert f"reload rejected, still using the previous list:\n{path}:2: markers" in caplog.text
    assert watcher.current.match("QQ11ABC")[0].entry.entry_id == "NEW-1"
    path.unlink()
    assert watcher.reload_now() is False
    assert watcher.current is good


def test_watcher_thread_picks_up_a_change_without_a_restart(tmp_path):
    path = write(tmp_path / "live.csv", row("OLD-1", "ZZ99FAK"))
    watcher = HotlistWatcher([path], interval_s=0.05)
    watcher.start()
    try:
        replace_atomically(path, row("NEW-1", "QQ11ABC"))
        swapped = threading.Event()
        for _ in range(200):
            if watcher.current.match("QQ11ABC"):
                swapped.set()
                break
            swapped.wait(0.05)
        assert swapped.is_set(), "the watcher thread did not load the replaced file within 10 s"
    finally:
        watcher.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_background_reloads_run_at_lower_priority_than_the_pipeline(tmp_path, monkeypatch):
    path = write(tmp_path / "live.csv", row("OLD-1", "ZZ99FAK"))
    watcher = HotlistWatcher([path], interval_s=0.05)
    niceness = []

    def thread_niceness(_=None) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def load_and_note_priority(paths):
        with loading_threads() as executor:
            niceness.extend(executor.map(thread_niceness, range(2)))
        niceness.append(thread_niceness())
        return load_hotlists(paths)

    started_at = thread_niceness()  # 0, or more when the tests themselves run niced
    monkeypatch.setattr("edge.hotlist.watcher.load_hotlists", load_and_note_priority)
    watcher.start()
    try:
        replace_atomically(path, row("NEW-1", "QQ11ABC"))
        for _ in range(200):
            if watcher.current.match("QQ11ABC"):
                break
            threading.Event().wait(0.05)
    finally:
        watcher.stop()
    assert watcher.current.match("QQ11ABC"), "the reload happened"
    assert niceness and set(niceness) == {max(started_at, RELOAD_NICENESS)}
    assert thread_niceness() == started_at, "the caller's thread keeps its priority"


def test_watcher_refuses_to_start_on_a_bad_first_load(tmp_path):
    with pytest.raises(HotlistError):
        HotlistWatcher([write(tmp_path / "bad.csv", row("A", "ZZ-99"))], interval_s=1)


def test_watcher_with_no_files_matches_nothing():
    watcher = HotlistWatcher([], interval_s=1)
    watcher.start()
    watcher.stop()
    assert len(watcher.current) == 0 and watcher.current.match("ZZ99FAK") == []


# -- check command ---------------------------------------------------------------------------


def test_check_files_summarises_a_good_list(tmp_path, capsys):
    soon = (TODAY + dt.timedelta(days=3)).isoformat()
    extra = write(tmp_path / "extra.csv", row("S-1", "ZZ99FAK", "burglary", expires=soon))
    assert check_files([SAMPLE, extra]) == 0
    out = capsys.readouterr().out
    assert (
        f"{SAMPLE}: 8 entries (firearms 3, gangs 3, burglary 2, drugs 4; 4 with several markers)"
        in out
    )
    assert "1 expires within 7 days" in out and f"line 2: S-1 expires {soon}" in out
    assert "total: 9 entries, 8 distinct VRMs in 2 files; 1 VRM has several entries" in out


def test_check_files_reports_past_dates_that_the_loader_only_skips(tmp_path, capsys):
    path = write(
        tmp_path / "old.csv", row("OLD", "ZZ99FAK", added="2020-01-01", expires="2021-01-01")
    )
    assert check_files([path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: expires: past date: expired on 2021-01-01" in err
    assert "1 problem: rejected" in err
    assert len(load_hotlists([path])) == 0


def test_cli_hotlist_check_exit_codes(tmp_path, capsys):
    assert cli_main(["hotlist", "check", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "8 entries" in out
    assert "possible misreads by chance: of passing vehicles not on these lists" in out
    assert "0.0% would hit an entry as a possible misread with hotlists.max_distance 1" in out
    bad = write(tmp_path / "bad.csv", row("A", "ZZ99FAK", "arson"))
    assert cli_main(["hotlist", "check", str(bad)]) == 1
    assert f"{bad}:2: markers: unknown marker 'arson'" in capsys.readouterr().err


# -- benchmark generator ---------------------------------------------------------------------


def test_benchmark_list_is_valid_and_its_misreads_are_found(tmp_path):
    path = tmp_path / "bench.csv"
    write_fictitious_list(path, 3000, seed=1)
    assert check_files([path]) == 0
    result = run(entries=2000, queries=200, seed=2)
    assert result["entries"] == 2000
    assert result["fuzzy_found"] == 1.0
    shares = result["unlisted_misread_hit_share"]
    assert 0 <= shares["max_distance_0"] <= shares["max_distance_1"] <= 1


def test_the_misread_benchmark_reads_rendered_plates_and_counts_hits_with_and_without_doubt():
    from benchmarks.misread_hits import run as run_misread_hits

    report = run_misread_hits(plates=40, entries=[20_000])
    own = report["synthetic_uk"]
    assert own["plates"] == own["read_exactly"] + own["read_wrong"] == 40
    assert own["read_exactly"] >= 30, "the reader reads most rendered UK plates exactly"
    assert own["found_with_doubt"] <= own["found_as_possible_misread"] <= own["read_wrong"]
    (random_list,) = report["synthetic_uk_against_random_lists"]
    assert random_list["entries"] == 20_000 and random_list["reads"] >= 30
    shares = random_list["share_with_false_hit_with_doubt"], random_list["share_with_false_hit"]
    assert 0 <= shares[0] <= shares[1] <= 1


@pytest.mark.parametrize(
    ("settings", "warned"),
    [({}, True), ({"misread_doubt_below": 0.999}, False), ({"max_distance": 0}, False)],
)
def test_a_list_crowded_enough_to_flag_passing_vehicles_by_chance_is_loaded_with_a_warning(
    tmp_path, caplog, settings, warned
):
    big = tmp_path / "big.csv"
    write_fictitious_list(big, 300_000, seed=4)  # a possible misread of ~6% of random reads
    caplog.set_level(logging.INFO, logger="edge.hotlist")
    HotlistWatcher([big], interval_s=60, **settings)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    if warned:
        assert "300000 entries" in warnings[0] and "possible misread" in warnings[0]


def test_a_small_list_loads_without_a_warning(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge.hotlist")
    HotlistWatcher([write(tmp_path / "small.csv", row("A-1", "ZZ99FAK"))], interval_s=60)
    assert [r.levelno for r in caplog.records] == [logging.INFO], "only 'hotlist loaded'"

"""The alert journal: order, per-console acknowledgements, role fences, replay window, reopening."""

from __future__ import annotations

import sqlite3
import stat
import time

import pytest

import edge.journal as journal_module
from edge.journal import AlertRecord, Journal, JournalError


def append_one(
    journal: Journal, alert_id: str, role: str, created_at: float, document: bytes
) -> int:
    return journal.append([AlertRecord(alert_id, role, created_at, document)])[0]


def test_unacked_alerts_come_back_in_order_per_console_and_role(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    now = time.time()
    seqs = [
        append_one(journal, f"a{i}", "tfc" if i % 2 else "tsg", now, f'{{"n":{i}}}'.encode())
        for i in range(6)
    ]
    assert seqs == sorted(seqs)
    tsg = journal.unacked("tsg-1", {"tsg"}, after_seq=0, created_since=0, limit=100)
    assert [a.alert_id for _, a in tsg] == ["a0", "a2", "a4"]
    both = journal.unacked("tfc-1", {"tfc", "tsg"}, after_seq=0, created_since=0, limit=100)
    assert [a.alert_id for _, a in both] == [f"a{i}" for i in range(6)]
    assert both[3] == (seqs[3], AlertRecord("a3", "tfc", now, b'{"n":3}'))
    assert journal.record_acks("tfc-1", {"tfc", "tsg"}, ["a0", "a1", "a1"], now) == 2
    left = journal.unacked("tfc-1", {"tfc", "tsg"}, after_seq=0, created_since=0, limit=2)
    assert [a.alert_id for _, a in left] == ["a2", "a3"]
    after = journal.unacked(
        "tfc-1", {"tfc", "tsg"}, after_seq=left[-1][0], created_since=0, limit=9
    )
    assert [a.alert_id for _, a in after] == ["a4", "a5"]
    # tsg-1's view is untouched by tfc-1's acks
    assert len(journal.unacked("tsg-1", {"tsg"}, after_seq=0, created_since=0, limit=100)) == 3
    journal.close()


def test_acks_outside_the_consoles_roles_or_unknown_ids_are_ignored(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    append_one(journal, "firearms-1", "tfc", time.time(), b"{}")
    assert journal.record_acks("tsg-1", {"tsg"}, ["firearms-1", "no-such-alert"], time.time()) == 0
    assert journal.acked_by("tsg-1") == set()
    journal.close()


def test_replay_window_leaves_out_old_alerts(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    now = time.time()
    append_one(journal, "old", "tsg", now - 7200, b"{}")
    append_one(journal, "new", "tsg", now, b"{}")
    pending = journal.unacked("tsg-1", {"tsg"}, after_seq=0, created_since=now - 3600, limit=10)
    assert [a.alert_id for _, a in pending] == ["new"]
    journal.close()


def test_journal_survives_reopening_with_full_sync(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, "full")
    append_one(journal, "a", "tsg", time.time(), b"{}")
    journal.record_acks("tsg-1", {"tsg"}, ["a"], time.time())
    journal.close()
    reopened = Journal(path)
    assert reopened.all_ids() == ["a"]
    assert reopened.acked_by("tsg-1") == {"a"}
    append_one(reopened, "b", "tsg", time.time(), b"{}")
    assert reopened.all_ids() == ["a", "b"]
    reopened.close()


def test_a_file_that_is_not_a_journal_is_named(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, " * 100)
    with pytest.raises(JournalError, match="notes.txt"):
        Journal(path)


def test_journal_files_are_readable_by_their_owner_only(tmp_path):
    path = tmp_path / "var" / "journal.sqlite"
    journal = Journal(path)
    append_one(journal, "a", "tsg", time.time(), b"{}")
    for file in (path, path.with_name("journal.sqlite-wal")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    journal.close()


def test_a_batch_is_committed_in_order_with_its_images(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    now = time.time()
    first = append_one(journal, "before", "tsg", now, b"{}")
    batch = [
        AlertRecord(f"b{i}", "tfc", now, b'{"n":%d}' % i, b"crop%d" % i, b"overview%d" % i)
        for i in range(300)
    ]
    batch[7] = AlertRecord("b7", "tfc", now, b"{}", b"crop only", None)
    assert journal.append(batch) == list(range(first + 1, first + 301))
    assert journal.append([]) == []
    journal.close()
    reopened = Journal(tmp_path / "j.sqlite")
    replay = reopened.unacked("tfc-1", {"tfc"}, after_seq=0, created_since=0, limit=1000)
    reopened.close()
    assert [alert for _, alert in replay] == batch
    assert [seq for seq, _ in replay] == list(range(first + 1, first + 301))


def test_acks_for_more_ids_than_one_statement_takes_are_all_recorded(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    ids = [f"a{i}" for i in range(2500)]
    journal.append([AlertRecord(alert_id, "tsg", time.time(), b"{}") for alert_id in ids])
    assert journal.record_acks("tsg-1", {"tsg"}, ids, time.time()) == 2500
    assert journal.acked_by("tsg-1") == set(ids)
    journal.close()


def test_a_journal_of_the_earlier_format_is_refused_by_name(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # alert format 1: images inside the document, no columns
        db.execute(
            "CREATE TABLE alerts (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL "
            "UNIQUE, role TEXT NOT NULL, created_at REAL NOT NULL, document BLOB NOT NULL)"
        )
    with pytest.raises(
        JournalError, match="old.sqlite: journal format 0, this daemon writes format 2"
    ):
        Journal(path)


def test_new_journals_use_large_pages_and_older_files_keep_theirs(tmp_path, monkeypatch):
    def page_size(path):
        with sqlite3.connect(path) as db:
            return db.execute("PRAGMA page_size").fetchone()[0]

    new = Journal(tmp_path / "new.sqlite")
    append_one(new, "a", "tsg", time.time(), b"{}")
    new.close()
    assert page_size(tmp_path / "new.sqlite") == journal_module._PAGE_BYTES > 4096

    monkeypatch.setattr(journal_module, "_PAGE_BYTES", 4096)  # as journals were first written
    old = Journal(tmp_path / "old.sqlite")
    append_one(old, "a", "tsg", time.time(), b"{}")
    old.close()
    monkeypatch.undo()
    reopened = Journal(tmp_path / "old.sqlite")
    append_one(reopened, "b", "tsg", time.time(), b"x" * 50_000)
    assert reopened.all_ids() == ["a", "b"]
    reopened.close()
    assert page_size(tmp_path / "old.sqlite") == 4096

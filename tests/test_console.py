"""The console command against a real daemon, the console client's side of the protocol, and
the hash-chained decision log."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
import zmq

from edge.alerts import AlertPublisher, dump_message
from edge.config import EdgeConfig
from edge.console import (
    MAX_ACK_BATCH,
    ConsoleClient,
    DecisionPrompt,
    misread_differences,
    run_console,
)
from edge.decisions import DecisionError, record_decision, verify_decision_log
from edge.decisions import main as decisions_main
from edge.keys import write_keypair
from edge.types import Marker, MatchKind
from tests.test_alerts import make_alert


def test_decision_log_chains_and_verifies(tmp_path):
    log = tmp_path / "decisions.jsonl"
    first = record_decision(log, "alert-1", "stop", "armed unit in position", "tfc-1", now=1.0)
    second = record_decision(log, "alert-2", "follow", "", "tfc-1")
    third = record_decision(log, "alert-3", "no_stop", "not the vehicle", "tfc-1")
    assert first["prev"] == "0" * 64 and second["prev"] == first["hash"]
    assert third["prev"] == second["hash"] and third["seq"] == 3
    assert first["time"].startswith("1970-01-01T00:00:01")
    assert verify_decision_log(log) == []


def test_decision_log_names_the_line_that_was_edited_or_removed(tmp_path):
    log = tmp_path / "decisions.jsonl"
    for decision in ("stop", "follow", "no_stop"):
        record_decision(log, "alert", decision, "", "tfc-1")
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], lines[1].replace("follow", "stop"), lines[2]]) + "\n")
    assert verify_decision_log(log) == [f"{log}: line 2: hash does not match its content"]
    log.write_text("\n".join([lines[0], lines[2]]) + "\n")
    problems = verify_decision_log(log)
    assert problems and all("line 2" in p for p in problems)


def test_a_log_damaged_with_garbage_is_reported_line_by_line_not_a_crash(tmp_path):
    log = tmp_path / "decisions.jsonl"
    for decision in ("stop", "follow"):
        record_decision(log, "alert", decision, "", "tfc-1")
    with log.open("ab") as file:
        file.write(b"[" * 5000 + b"\n")  # nested past Python's recursion limit
        file.write(b'{"note": "\xff\xfe"}\n')  # not UTF-8
    problems = verify_decision_log(log)
    assert f"{log}: line 3: not a decision record" in problems
    assert any(p.startswith(f"{log}: line 4:") for p in problems)
    assert not any("line 1" in p or "line 2" in p for p in problems)
    with pytest.raises(DecisionError, match="line 4: not a decision record"):
        record_decision(log, "alert", "stop", "", "tfc-1")


def test_unknown_decision_is_refused(tmp_path):
    with pytest.raises(DecisionError, match="choose one of"):
        record_decision(tmp_path / "d.jsonl", "alert", "shoot", "", "tfc-1")
    assert not (tmp_path / "d.jsonl").exists() or verify_decision_log(tmp_path / "d.jsonl") == []


@pytest.fixture
def daemon(tmp_path):
    keys = tmp_path / "keys"
    for name in ("daemon", "tfc-1", "tsg-1"):
        write_keypair(name, keys)
    config = EdgeConfig.model_validate(
        {
            "cameras": [{"id": "cam-front", "source": "unused.mp4"}],
            "alerts": {
                "bind": "tcp://127.0.0.1:*",
                "server_secret_key": keys / "daemon.key_secret",
                "consoles": [
                    {"name": "tfc-1", "role": "tfc", "public_key": keys / "tfc-1.key"},
                    {"name": "tsg-1", "role": "tsg", "public_key": keys / "tsg-1.key"},
                ],
                "journal": tmp_path / "var/journal.sqlite",
                "evidence_dir": tmp_path / "var/console",
            },
        }
    )
    publisher = AlertPublisher(config.alerts)
    publisher.start()
    yield config, publisher, keys
    publisher.close(timeout_s=1.0)


def run_in_thread(**kwargs) -> tuple[threading.Thread, io.StringIO, list[int]]:
    out, status = io.StringIO(), []
    thread = threading.Thread(target=lambda: status.append(run_console(out=out, **kwargs)))
    thread.start()
    return thread, out, status


def wait_for_text(out: io.StringIO, text: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in out.getvalue():
        assert time.monotonic() < deadline, f"console never printed {text!r}"
        time.sleep(0.02)


def test_json_console_prints_one_object_per_alert_and_saves_the_crop(daemon):
    config, publisher, keys = daemon
    thread, out, status = run_in_thread(
        config=config,
        role="tsg",
        as_json=True,
        secret_key=keys / "tsg-1.key_secret",
        endpoint=publisher.endpoint,
        max_alerts=2,
        max_seconds=15,
    )
    wait_for_text(out, '"up": true')
    unsendable: dict = {}
    for _ in range(5000):  # nested past the recursion limit: logged and dropped, nothing raised
        unsendable = {"inner": unsendable}
    publisher.publish_status(unsendable)
    publisher.publish_status(
        {"type": "camera_health", "camera_id": "cam-front", "fps_in": np.float32(25)}
    )
    ids = [
        publisher.publish(*make_alert("DR22BBB", {Marker.DRUGS})),
        publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS})),  # not for the tsg
        publisher.publish(*make_alert("BU33CCC", {Marker.BURGLARY}, MatchKind.POSSIBLE_MISREAD)),
    ]
    thread.join(20)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    alerts = [line for line in lines if line["type"] == "alert"]
    assert status == [0]
    assert [a["alert_id"] for a in alerts] == [ids[0], ids[2]]
    assert [a["possible_misread"] for a in alerts] == [False, True]
    assert {line["type"] for line in lines} <= {"alert", "status", "link"}
    statuses = [line["status"] for line in lines if line["type"] == "status"]
    assert statuses == [{"type": "camera_health", "camera_id": "cam-front", "fps_in": 25.0}]
    crop = alerts[0]["evidence"]["plate_crop"]
    assert "data" not in crop
    assert cv2.imread(crop["path"]).shape == (40, 160, 3)
    assert crop["path"].startswith(str(config.alerts.evidence_dir / "tsg"))


def test_readable_console_shows_what_the_commander_needs(daemon):
    config, publisher, keys = daemon
    thread, out, status = run_in_thread(
        config=config,
        role="tfc",
        as_json=False,
        secret_key=keys / "tfc-1.key_secret",
        endpoint=publisher.endpoint,
        max_alerts=1,
        max_seconds=15,
    )
    wait_for_text(out, "link to vehicle UP")
    publisher.publish(
        *make_alert("FA11AAA", {Marker.FIREARMS, Marker.GANGS}, MatchKind.POSSIBLE_MISREAD)
    )
    thread.join(20)
    text = out.getvalue()
    assert status == [0]
    for expected in (
        "FIREARMS, GANGS",
        "POSSIBLE MISREAD",
        "FA11AAA",
        "Differs     character 7 read A (0.99 sure), entry X",
        "confidence 0.91",
        "Alternatives  AB12CDF 0.05",
        "Reader also   AB12CDH 0.03  (shown only, not matched)",
        "TFC to decide",
        "Linked to incident 123",
        "cam-front",
        "towards",
        "-plate_crop.jpg",
        "link to vehicle UP (console tfc-1",
    ):
        assert expected in text, expected


def test_console_without_key_in_secure_mode_explains(daemon, capsys):
    config, publisher, _ = daemon
    code = run_console(
        config,
        role="tfc",
        as_json=True,
        secret_key=None,
        endpoint=publisher.endpoint,
        max_alerts=1,
        max_seconds=1,
    )
    assert code == 2
    assert "--key is required" in capsys.readouterr().err


def test_commander_types_decisions_against_alert_numbers(tmp_path):
    out = io.StringIO()
    prompt = DecisionPrompt(tmp_path / "decisions.jsonl", out)
    prompt.alert_ids[1] = "alert-one"
    prompt.handle("1 follow blue saloon, two occupants\n", "tfc-1")
    prompt.handle("2 stop\n", "tfc-1")  # no alert 2 shown
    prompt.handle("1 arrest\n", "tfc-1")  # not a decision
    lines = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [(r["alert_id"], r["decision"], r["note"], r["key_name"]) for r in lines] == [
        ("alert-one", "follow", "blue saloon, two occupants", "tfc-1")
    ]
    assert out.getvalue().count("not recorded") == 2
    assert verify_decision_log(tmp_path / "decisions.jsonl") == []


def test_console_killed_mid_stream_loses_nothing(daemon, tmp_path):
    """kill -9 of the console process, restart on the same state: every alert shown, once."""
    config, publisher, keys = daemon
    config_file = tmp_path / "console.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "cameras": [{"id": "cam-front", "source": "unused.mp4"}],
                "alerts": json.loads(config.alerts.model_dump_json()),
            }
        )
    )
    command = [sys.executable, "-m", "edge.cli", "console", "--config", str(config_file)]
    command += ["--role", "tsg", "--json", "--key", str(keys / "tsg-1.key_secret")]
    command += ["--connect", publisher.endpoint, "--max-seconds", "30"]
    published = [publisher.publish(*make_alert(f"DR{i:02d}BBB", {Marker.DRUGS})) for i in range(5)]

    def alerts_from(process: subprocess.Popen, stop: Callable[[list[str]], bool]) -> list[str]:
        ids: list[str] = []
        for line in process.stdout:
            message = json.loads(line)
            if message["type"] == "alert":
                ids.append(message["alert_id"])
                if stop(ids):
                    break
        return ids

    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        shown = alerts_from(first, lambda ids: len(ids) == 3)
        os.kill(first.pid, signal.SIGKILL)
        shown += alerts_from(first, lambda ids: False)  # printed before it died, still in the pipe
    finally:
        first.kill()
        first.wait(10)
    published += [publisher.publish(*make_alert(f"DR{i:02d}CCC", {Marker.DRUGS})) for i in range(5)]
    second = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        shown += alerts_from(second, lambda ids: set(shown + ids) >= set(published))
    finally:
        second.kill()
        second.wait(10)
    assert set(shown) == set(published)
    # The one alert that may show twice is one printed in the instant before the kill stopped
    # the console recording it (documented at-least-once display); anything else is a bug.
    assert len(shown) - len(set(shown)) <= 1


def test_decision_log_checker_command(tmp_path, capsys):
    log = tmp_path / "decisions.jsonl"
    record_decision(log, "alert-1", "stop", "", "tfc-1")
    assert decisions_main([str(log)]) == 0
    log.write_text(log.read_text().replace("stop", "no_stop"))
    assert decisions_main([str(log)]) == 1
    assert "line 1: hash does not match" in capsys.readouterr().out


def test_console_with_a_bad_endpoint_or_state_names_it(daemon, capsys, tmp_path):
    config, _, keys = daemon
    common = {"role": "tsg", "as_json": True, "secret_key": keys / "tsg-1.key_secret"}
    code = run_console(config, endpoint="tcp://nowhere", max_alerts=1, max_seconds=1, **common)
    assert code == 2 and "tcp://nowhere" in capsys.readouterr().err
    state = config.alerts.evidence_dir / "tsg" / "seen.ids"
    state.unlink(missing_ok=True)
    state.mkdir(parents=True)  # a folder where the file of shown ids belongs
    code = run_console(config, endpoint=None, max_alerts=1, max_seconds=1, **common)
    assert code == 2 and str(state) in capsys.readouterr().err


# --- ConsoleClient against a bare ROUTER socket playing the daemon (insecure, 127.0.0.1) ---


class BareDaemon:
    """A ROUTER socket that speaks the daemon's side of the protocol as each test scripts it."""

    def __init__(self):
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.linger = 0
        # No send limit: a ROUTER drops what passes its high-water mark, and a test's burst
        # of alerts must all reach the console however slowly this machine schedules zmq's
        # I/O thread (the real daemon sends with ROUTER_MANDATORY and feeds from its journal).
        self.socket.sndhwm = 0
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.console: bytes | None = None

    def next_message(self, timeout_s: float = 5.0) -> dict | None:
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        self.console, payload = self.socket.recv_multipart()
        return json.loads(payload)

    def welcome(self, client: ConsoleClient) -> None:
        """Answer the console's hello, and wait until the console shows its link up."""
        deadline = time.monotonic() + 5.0
        message = None
        while message is None or message["type"] != "hello":  # (acks left by an earlier client)
            assert time.monotonic() < deadline, "the console never said hello"
            assert client.receive(0.05) is None  # (it says hello from inside receive())
            message = self.next_message(0.05)
        self.send([dump_message({"type": "welcome", "version": 2, "console": "c", "role": "tsg"})])
        event = client.receive(5.0)
        assert event is not None and event["type"] == "link" and event["up"]

    def send(self, frames: list[bytes]) -> None:
        self.socket.send_multipart([self.console, *frames])

    def send_alert(self, alert_id: str, evidence: dict, images: list[bytes]) -> None:
        header = {"type": "alert", "version": 2, "alert_id": alert_id, "role": "tsg"}
        self.send([dump_message({**header, "evidence": evidence}), *images])

    def acked_ids(self, count: int, timeout_s: float = 10.0) -> list[list[str]]:
        """The `ids` of each ack message, until `count` ids have come."""
        acks: list[list[str]] = []
        deadline = time.monotonic() + timeout_s
        while sum(len(ids) for ids in acks) < count and time.monotonic() < deadline:
            message = self.next_message(0.1)
            if message is not None and message["type"] == "ack":
                acks.append(message["ids"])
        return acks

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def bare_daemon():
    daemon = BareDaemon()
    yield daemon
    daemon.close()


def insecure_client(endpoint: str, state_dir: Path) -> ConsoleClient:
    return ConsoleClient(
        endpoint, "tsg", secret_key=None, server_public_key=None, state_dir=state_dir
    )


JPEG = {"media_type": "image/jpeg", "width": 2, "height": 1}


def test_console_takes_each_image_from_the_frame_its_header_names(bare_daemon, tmp_path, caplog):
    client = insecure_client(bare_daemon.endpoint, tmp_path / "console")
    try:
        bare_daemon.welcome(client)
        evidence = {"plate_crop": {**JPEG, "frame": 1}, "overview": {**JPEG, "frame": 2}}
        bare_daemon.send_alert("both", evidence, [b"crop bytes", b"overview bytes"])
        bare_daemon.send_alert("no-overview", {**evidence, "overview": None}, [b"crop bytes"])
        bare_daemon.send_alert("frame-missing", evidence, [b"crop bytes"])  # overview not sent
        alerts = [client.receive(5.0) for _ in range(3)]
    finally:
        client.close()
    both, no_overview, frame_missing = (alert["evidence"] for alert in alerts)
    assert both == {
        "plate_crop": {**JPEG, "data": b"crop bytes"},
        "overview": {**JPEG, "data": b"overview bytes"},
    }
    assert no_overview == {"plate_crop": {**JPEG, "data": b"crop bytes"}, "overview": None}
    assert frame_missing == {"plate_crop": {**JPEG, "data": b"crop bytes"}, "overview": JPEG}
    assert any(
        "frame-missing: its overview is not in the message" in r.getMessage()
        for r in caplog.records
    )


def test_console_acknowledges_in_batches_every_alert_once(bare_daemon, tmp_path):
    client = insecure_client(bare_daemon.endpoint, tmp_path / "console")
    ids = [f"alert-{i}" for i in range(1200)]
    try:
        bare_daemon.welcome(client)
        for alert_id in ids:
            bare_daemon.send_alert(alert_id, {"plate_crop": None, "overview": None}, [])
        time.sleep(0.5)  # let them reach the console's socket: it reads them back to back
        shown = []
        while len(shown) < len(ids):
            event = client.receive(5.0)
            assert event is not None, f"only {len(shown)} alerts arrived"
            assert event["type"] == "alert", f"after {len(shown)} alerts: {event}"
            shown.append(event["alert_id"])
            client.ack(event["alert_id"])
        client.receive(0.1)  # nothing more to read: the last acks go
        acks = bare_daemon.acked_ids(len(ids))
    finally:
        client.close()
    assert shown == ids
    assert sorted(i for batch in acks for i in batch) == sorted(ids)
    assert 3 <= len(acks) <= 20 and all(len(batch) <= MAX_ACK_BATCH for batch in acks)


def test_shown_ids_survive_a_line_cut_short(bare_daemon, tmp_path):
    state = tmp_path / "console"
    state.mkdir()
    (state / "seen.ids").write_text("earlier-alert\ncut-sh")  # the power went mid-write
    client = insecure_client(bare_daemon.endpoint, state)
    try:
        bare_daemon.welcome(client)
        bare_daemon.send_alert("earlier-alert", {}, [])  # shown before: acked, not returned
        bare_daemon.send_alert("new-alert", {}, [])
        event = client.receive(5.0)
        client.ack(event["alert_id"])
    finally:
        client.close()
    assert event["alert_id"] == "new-alert"
    assert (state / "seen.ids").read_text().splitlines() == ["earlier-alert", "cut-sh", "new-alert"]
    restarted = insecure_client(bare_daemon.endpoint, state)
    try:
        bare_daemon.welcome(restarted)
        bare_daemon.send_alert("new-alert", {}, [])
        assert restarted.receive(0.5) is None  # shown before the restart
        assert bare_daemon.acked_ids(1) == [["new-alert"]]
    finally:
        restarted.close()


@pytest.mark.parametrize(
    ("read", "matched", "vrm", "described"),
    [
        (("KH01HOX", [1, 1, 1, 1, 1, 1, 0.62]), "KH01HOX", "KH01HOK",
         "character 7 read X (0.62 sure), entry K"),
        (("H01HOK", [1] * 6), "H01HOK", "KH01HOK", "entry's K before character 1 not read"),
        (("KH01HO", [1] * 6), "KH01HO", "KH01HOK", "entry's K at the end not read"),
        (("KH01HOKX", [1] * 7 + [0.5]), "KH01HOKX", "KH01HOK",
         "character 8 read X (0.50 sure), not in the entry"),
        (("KH0IHOK", [1] * 7), "KH0IHOK", "KHO1HOK",
         "characters 3-4 read 0I (1.00/1.00 sure), entry O1"),
        (("XH01HOK", [0.4] + [1] * 6), "KH01HOK", "KH01HOK", "alternative reading KH01HOK spells it"),
        (("XH01HOK", [0.4] + [1] * 6), "KH01H0K", "KH01HOK",
         "alternative reading KH01H0K: character 6 read 0, entry O"),
    ],
)  # fmt: skip
def test_a_possible_misread_says_where_it_differs_and_how_sure_the_reader_was(
    read, matched, vrm, described
):
    text, confidences = read
    assert misread_differences({"text": text, "char_confidences": confidences}, matched, vrm) == (
        described
    )


def test_an_alert_the_console_cannot_lay_out_is_shown_as_sent_and_acknowledged(
    bare_daemon, tmp_path, caplog
):
    config = EdgeConfig.model_validate(
        {
            "cameras": [{"id": "cam-front", "source": "unused.mp4"}],
            "alerts": {"insecure": True, "evidence_dir": tmp_path / "console"},
        }
    )
    thread, out, status = run_in_thread(
        config=config,
        role="tsg",
        as_json=False,
        secret_key=None,
        endpoint=bare_daemon.endpoint,
        max_alerts=2,
        max_seconds=15,
    )
    message = None
    while message is None or message["type"] != "hello":
        message = bare_daemon.next_message()
        assert message is not None, "the console never said hello"
    bare_daemon.send([dump_message({"type": "welcome", "version": 2, "console": "c"})])
    wait_for_text(out, "link to vehicle UP")
    header = {"type": "alert", "version": 3, "role": "tsg", "evidence": {}}
    # A later format's read, and a damaged confidence: neither may take the console down.
    bare_daemon.send([dump_message({**header, "alert_id": "later-format", "read": "AB12CDE"})])
    damaged = {"text": "AB12CDE", "confidence": "high", "alternatives": [{"text": "AB12CDF"}]}
    bare_daemon.send([dump_message({**header, "alert_id": "damaged", "read": damaged})])
    acked = [i for batch in bare_daemon.acked_ids(2) for i in batch]
    thread.join(20)
    text = out.getvalue()
    assert status == [0]
    assert sorted(acked) == ["damaged", "later-format"]
    assert "=== ALERT [1]  id later-format: shown as sent" in text
    assert "=== ALERT [2]  id damaged: shown as sent" in text
    assert '"read": "AB12CDE"' in text and '"confidence": "high"' in text
    assert any("could not be laid out" in r.getMessage() for r in caplog.records)

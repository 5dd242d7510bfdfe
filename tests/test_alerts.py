"""Alert delivery over real CURVE ZeroMQ sockets on 127.0.0.1 with real SQLite journals."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

import edge.alerts as alerts_module
from edge.alerts import (
    MAX_CLIENT_MESSAGE_BYTES,
    OVERVIEW_MAX_WIDTH,
    UNCOMMITTED_MAX,
    AlertPublisher,
    Evidence,
    MessageError,
    alert_frames,
    alert_record,
    dump_message,
    encode_alert,
    encode_evidence,
    load_message,
)
from edge.config import AlertsConfig, ConfigError
from edge.console import ConsoleClient
from edge.journal import Journal
from edge.keys import load_public_key, load_secret_key, write_keypair
from edge.types import (
    Activation,
    Hit,
    HotlistEntry,
    Marker,
    MatchKind,
    PlateRead,
    VehicleRead,
)

REPO = Path(__file__).resolve().parents[1]
HEARTBEAT_S = 0.2


def make_activation(
    text: str,
    markers: set[Marker],
    kind: MatchKind = MatchKind.EXACT,
    *,
    overview_size: tuple[int, int] = (720, 1280),
) -> Activation:
    rng = np.random.default_rng(len(text))
    crop = rng.integers(0, 255, (40, 160, 3), dtype=np.uint8)
    overview = np.full((*overview_size, 3), 90, np.uint8)
    entry = HotlistEntry(
        entry_id=f"E-{text}",
        vrm=text if kind == MatchKind.EXACT else text[:-1] + "X",
        markers=frozenset(markers),
        action="Stop and search if safe" if Marker.FIREARMS not in markers else "TFC to decide",
        information="Linked to incident 123",
        source="PNC",
        added=dt.date(2026, 11, 1),
        expires=dt.date(2027, 11, 1),
        list_name="force-list",
    )
    now = time.time()
    vehicle = VehicleRead(
        camera_id="cam-front",
        track_id=7,
        read=PlateRead(
            text,
            0.91,
            (0.99,) * len(text),
            (("AB12CDF", 0.05),),
            "current",
            reader_alternatives=(("AB12CDH", 0.03),),
        ),
        captured_at=now - 0.2,
        first_seen=now - 1.0,
        last_seen=now - 0.1,
        box=(100, 200, 160, 40),
        plate_crop=crop,
        overview=overview,
        direction="towards",
        frames_seen=9,
    )
    distance = 0 if kind == MatchKind.EXACT else 1
    return Activation(vehicle=vehicle, hits=(Hit(entry, kind, distance, text),))


def make_alert(*args, **kwargs) -> tuple[Activation, Evidence]:
    """What the pipeline hands to publish(): the activation and its evidence, encoded."""
    activation = make_activation(*args, **kwargs)
    return activation, encode_evidence(activation.vehicle)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    for name in ("daemon", "tfc-1", "tfc-2", "tsg-1", "rogue"):
        write_keypair(name, directory)
    return directory


def alerts_config(keys: Path, tmp_path: Path, **overrides) -> AlertsConfig:
    settings = {
        "bind": "tcp://127.0.0.1:*",
        "server_secret_key": keys / "daemon.key_secret",
        "consoles": [
            {"name": "tfc-1", "role": "tfc", "public_key": keys / "tfc-1.key"},
            {"name": "tfc-2", "role": "tfc", "public_key": keys / "tfc-2.key", "tsg_alerts": False},
            {"name": "tsg-1", "role": "tsg", "public_key": keys / "tsg-1.key"},
        ],
        "journal": tmp_path / "journal.sqlite",
        "heartbeat_s": HEARTBEAT_S,
    }
    return AlertsConfig(**{**settings, **overrides})


@pytest.fixture
def publisher(keys, tmp_path) -> Iterator[AlertPublisher]:
    publisher = AlertPublisher(alerts_config(keys, tmp_path))
    publisher.start()
    yield publisher
    publisher.close(timeout_s=1.0)


def connect(endpoint: str, keys: Path, key_name: str, role: str, state: Path) -> ConsoleClient:
    return ConsoleClient(
        endpoint,
        role,
        secret_key=keys / f"{key_name}.key_secret",
        server_public_key=keys / "daemon.key",
        state_dir=state,
        heartbeat_s=HEARTBEAT_S,
    )


def wait_link_up(client: ConsoleClient, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = client.receive(0.1)
        if event is not None and event["type"] == "link" and event["up"]:
            return
        assert event is None or event["type"] == "link", f"unexpected before link up: {event}"
    raise AssertionError("the console never got the daemon's welcome")


def collect(client: ConsoleClient, seconds: float, *, ack: bool = True) -> list[dict]:
    """Every alert the client returns within `seconds`, acknowledged as a console would."""
    alerts = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        event = client.receive(0.05)
        if event is not None and event["type"] == "alert":
            alerts.append(event)
            if ack:
                client.ack(event["alert_id"])
    return alerts


def collect_n(client: ConsoleClient, count: int, timeout_s: float = 10.0) -> list[dict]:
    alerts = []
    deadline = time.monotonic() + timeout_s
    while len(alerts) < count and time.monotonic() < deadline:
        event = client.receive(0.05)
        if event is not None and event["type"] == "alert":
            alerts.append(event)
            client.ack(event["alert_id"])
    return alerts


def test_alert_message_carries_the_read_hits_context_and_evidence_frames():
    activation, evidence = make_alert("AB12CDE", {Marker.FIREARMS, Marker.DRUGS})
    alert = alert_record(activation, evidence)
    frames = alert_frames(alert)
    document = json.loads(frames[0])
    assert document["type"] == "alert" and document["version"] == 2
    assert document["alert_id"] == alert.alert_id and document["role"] == alert.role == "tfc"
    assert document["markers"] == ["drugs", "firearms"]
    assert document["possible_misread"] is False
    assert document["read"]["text"] == "AB12CDE"
    assert document["read"]["char_confidences"] == [0.99] * 7
    assert document["read"]["alternatives"] == [{"text": "AB12CDF", "confidence": 0.05}]
    assert document["read"]["reader_alternatives"] == [{"text": "AB12CDH", "confidence": 0.03}]
    hit = document["hits"][0]
    assert hit["kind"] == "exact" and hit["distance"] == 0
    assert hit["entry"]["action"] == "TFC to decide" and hit["entry"]["source"] == "PNC"
    assert document["camera_id"] == "cam-front" and document["direction"] == "towards"
    assert document["track_id"] == 7 and document["plate_box"] == [100, 200, 160, 40]
    assert len(frames) == 3  # the header, then each image's JPEG as a binary frame
    crop, overview = document["evidence"]["plate_crop"], document["evidence"]["overview"]
    assert crop == {"media_type": "image/jpeg", "width": 160, "height": 40, "frame": 1}
    image = cv2.imdecode(np.frombuffer(frames[crop["frame"]], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (40, 160, 3)
    assert overview["media_type"] == "image/jpeg" and overview["frame"] == 2
    assert (overview["width"], overview["height"]) == (OVERVIEW_MAX_WIDTH, 360)
    image = cv2.imdecode(np.frombuffer(frames[overview["frame"]], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, OVERVIEW_MAX_WIDTH, 3)


def test_messages_are_compact_utf8_json_with_numpy_values_as_numbers():
    status = {
        "camera_id": "Åsgård-1",
        "fps_in": np.float32(24.5),
        "dropped": np.int64(3),
        "roi": np.array([[0, 1], [2, 3]]),
        "source": Path("/dev/video0"),
    }
    data = dump_message(status)
    assert b" " not in data and "Åsgård".encode() in data
    assert json.loads(data) == {
        "camera_id": "Åsgård-1",
        "fps_in": 24.5,
        "dropped": 3,
        "roi": [[0, 1], [2, 3]],
        "source": "/dev/video0",
    }
    assert load_message(data) == json.loads(data)
    for not_json in (b"{", b"\xff\xfe", b"NaN", b"", b"[" * 60_000, b'{"a":' * 20_000):
        with pytest.raises(MessageError):
            load_message(not_json)


def test_possible_misread_is_labelled():
    activation, evidence = make_alert("AB12CDE", {Marker.DRUGS}, MatchKind.POSSIBLE_MISREAD)
    document = encode_alert(activation, evidence, "id-2", time.time())
    assert document["possible_misread"] is True
    assert document["hits"][0]["kind"] == "possible_misread"
    assert document["hits"][0]["distance"] == 1


def test_firearms_go_to_tfc_only_and_other_markers_to_tsg(publisher, keys, tmp_path):
    tfc_all = connect(publisher.endpoint, keys, "tfc-1", "tfc", tmp_path / "tfc-1")
    tfc_only = connect(publisher.endpoint, keys, "tfc-2", "tfc", tmp_path / "tfc-2")
    tsg = connect(publisher.endpoint, keys, "tsg-1", "tsg", tmp_path / "tsg-1")
    try:
        for client in (tfc_all, tfc_only, tsg):
            wait_link_up(client)
        firearms = publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS, Marker.GANGS}))
        drugs = publisher.publish(*make_alert("DR22BBB", {Marker.DRUGS, Marker.BURGLARY}))
        received = {
            "tfc-1": [a["alert_id"] for a in collect_n(tfc_all, 2)],
            "tfc-2": [a["alert_id"] for a in collect_n(tfc_only, 1)],
            "tsg-1": [a["alert_id"] for a in collect_n(tsg, 1)],
        }
        received["tfc-2"] += [a["alert_id"] for a in collect(tfc_only, 0.5)]
        received["tsg-1"] += [a["alert_id"] for a in collect(tsg, 0.5)]
    finally:
        for client in (tfc_all, tfc_only, tsg):
            client.close()
    assert received == {"tfc-1": [firearms, drugs], "tfc-2": [firearms], "tsg-1": [drugs]}


def test_unenrolled_key_gets_nothing_and_is_logged(publisher, keys, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edge.alerts")
    rogue = connect(publisher.endpoint, keys, "rogue", "tfc", tmp_path / "rogue")
    try:
        publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS}))
        events = [rogue.receive(0.2) for _ in range(5)]
    finally:
        rogue.close()
    assert all(event is None or event["type"] == "link" and not event["up"] for event in events)
    rogue_key = load_public_key(keys / "rogue.key").decode()
    assert any(
        "not enrolled" in r.getMessage() and rogue_key in r.getMessage() for r in caplog.records
    )
    secret = load_secret_key(keys / "daemon.key_secret")[1].decode()
    assert not any(secret in r.getMessage() for r in caplog.records)


def test_tsg_key_claiming_tfc_gets_nothing_and_is_logged(publisher, keys, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edge.alerts")
    impostor = connect(publisher.endpoint, keys, "tsg-1", "tfc", tmp_path / "impostor")
    try:
        publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS}))
        publisher.publish(*make_alert("DR22BBB", {Marker.DRUGS}))
        events = [impostor.receive(0.2) for _ in range(5)]
    finally:
        impostor.close()
    assert all(event is None or event["type"] == "link" and not event["up"] for event in events)
    assert any("enrolled as tsg but asked for 'tfc'" in r.getMessage() for r in caplog.records)


def test_console_restart_replays_unacknowledged_in_order_without_duplicates(
    publisher, keys, tmp_path
):
    state = tmp_path / "tsg-state"
    first = connect(publisher.endpoint, keys, "tsg-1", "tsg", state)
    wait_link_up(first)
    ids = [publisher.publish(*make_alert(f"DR{i:02d}BBB", {Marker.DRUGS})) for i in range(3)]
    shown_first = collect_n(first, 3)
    first.close()  # acked all three
    state_again = [
        publisher.publish(*make_alert(f"DR{i:02d}CCC", {Marker.DRUGS})) for i in range(3)
    ]
    second = connect(publisher.endpoint, keys, "tsg-1", "tsg", state)
    try:
        shown_second = collect_n(second, 3)
        shown_second += collect(second, 0.3)  # and nothing more
    finally:
        second.close()
    assert [a["alert_id"] for a in shown_first] == ids
    assert [a["alert_id"] for a in shown_second] == state_again


def acks_recorded(journal: Path, console: str) -> int:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT count(*) FROM acks WHERE console = ?", (console,)).fetchone()[0]


def test_alert_shown_but_ack_lost_is_not_shown_again(publisher, keys, tmp_path):
    state = tmp_path / "tfc-state"
    client = connect(publisher.endpoint, keys, "tfc-1", "tfc", state)
    wait_link_up(client)
    alert_id = publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS}))
    assert [a["alert_id"] for a in collect_n(client, 1)] == [alert_id]
    client.close()
    deadline = time.monotonic() + 10
    while acks_recorded(publisher.config.journal, "tfc-1") == 0:  # the daemon records it...
        assert time.monotonic() < deadline, "the ack was never recorded"
        time.sleep(0.02)
    with sqlite3.connect(publisher.config.journal) as db:  # ...then it is wiped, as if lost
        db.execute("DELETE FROM acks")
    again = connect(publisher.endpoint, keys, "tfc-1", "tfc", state)
    try:
        returned = []
        deadline = time.monotonic() + 10
        while acks_recorded(publisher.config.journal, "tfc-1") == 0:  # replayed, re-acked
            assert time.monotonic() < deadline, "the replayed alert was never acknowledged"
            event = again.receive(0.05)
            if event is not None and event["type"] == "alert":
                returned.append(event)
    finally:
        again.close()
    assert returned == []  # ...silently: not shown a second time


def test_link_down_is_reported_within_three_seconds(keys, tmp_path):
    publisher = AlertPublisher(alerts_config(keys, tmp_path, heartbeat_s=1.0))
    publisher.start()
    client = connect(publisher.endpoint, keys, "tsg-1", "tsg", tmp_path / "tsg")
    try:
        wait_link_up(client)
        publisher.close(timeout_s=0.5)
        events = []
        while not events or events[-1]["type"] != "link":
            event = client.receive(4.0)
            assert event is not None, "no link-down event"
            events.append(event)
    finally:
        client.close()
    assert events[-1]["up"] is False
    assert events[-1]["silent_s"] <= 3.0


def test_malformed_and_oversized_messages_are_ignored_without_harm(
    publisher, keys, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="edge.alerts")
    context = zmq.Context.instance()
    raw = context.socket(zmq.DEALER)
    raw.curve_publickey, raw.curve_secretkey = load_secret_key(keys / "tsg-1.key_secret")
    raw.curve_serverkey = load_public_key(keys / "daemon.key")
    raw.linger = 0
    raw.connect(publisher.endpoint)
    garbage = [
        [b"\xff\xfe not json"],
        [b"[1, 2, 3]"],
        [b'{"type": "subscribe", "role": "tfc"}'],
        [b'{"type": "ack", "ids": "everything"}'],
        [b"[" * 60_000],  # nested past Python's recursion limit, inside the size limit
        [b'{"type": "hello", "role": "tsg"}', b"second frame"],
        [b"x" * (MAX_CLIENT_MESSAGE_BYTES + 1)],
    ]
    for frames in garbage:
        raw.send_multipart(frames)
    time.sleep(0.5)
    tsg = connect(publisher.endpoint, keys, "tsg-1", "tsg", tmp_path / "tsg")
    try:
        wait_link_up(tsg)
        alert_id = publisher.publish(*make_alert("DR22BBB", {Marker.DRUGS}))
        assert [a["alert_id"] for a in collect_n(tsg, 1)] == [alert_id]
        assert raw.poll(200) == 0  # the raw socket never said a valid hello: it gets nothing
    finally:
        tsg.close()
        raw.close()
    assert any("dropped a message from tsg-1" in r.getMessage() for r in caplog.records)
    assert not any("error in the I/O loop" in r.getMessage() for r in caplog.records)


def test_insecure_mode_works_without_keys(tmp_path):
    config = AlertsConfig(
        insecure=True, bind="tcp://127.0.0.1:*", journal=tmp_path / "j.sqlite", heartbeat_s=0.2
    )
    publisher = AlertPublisher(config)
    publisher.start()
    client = ConsoleClient(
        publisher.endpoint,
        "tsg",
        secret_key=None,
        server_public_key=None,
        state_dir=tmp_path / "c",
        heartbeat_s=0.2,
    )
    try:
        wait_link_up(client)
        alert_id = publisher.publish(*make_alert("DR22BBB", {Marker.DRUGS}))
        publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS}))
        received = [a["alert_id"] for a in collect_n(client, 1) + collect(client, 0.3)]
    finally:
        client.close()
        publisher.close(timeout_s=0.5)
    assert received == [alert_id]


def test_secure_config_without_server_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="server_secret_key is required"):
        AlertsConfig(journal=tmp_path / "j.sqlite")


def test_world_readable_server_key_is_refused(keys, tmp_path):
    leaky = tmp_path / "leaky.key_secret"
    leaky.write_bytes((keys / "daemon.key_secret").read_bytes())
    leaky.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        AlertPublisher(alerts_config(keys, tmp_path, server_secret_key=leaky))


DAEMON_SCRIPT = """
import sys, time
from pathlib import Path
from edge.alerts import AlertPublisher
from tests.test_alerts import alerts_config, make_alert
from edge.types import Marker
keys, state, bind = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
publisher = AlertPublisher(alerts_config(keys, state, bind=bind))
publisher.start()
print(publisher.endpoint, flush=True)
for i in range(int(sys.argv[4])):
    publisher.publish(*make_alert(f"FA{i:02d}AAA", {Marker.FIREARMS}, overview_size=(90, 160)))
    time.sleep(0.02)
print("published", flush=True)
time.sleep(60)
"""


def journalled_count(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM alerts").fetchone()[0]


def test_no_alert_lost_when_the_daemon_is_killed(keys, tmp_path):
    """kill -9 mid-stream, restart on the same journal: the console gets every journalled alert."""
    command = [sys.executable, "-c", DAEMON_SCRIPT, str(keys), str(tmp_path)]
    daemon = subprocess.Popen(
        [*command, "tcp://127.0.0.1:*", "40"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        endpoint = daemon.stdout.readline().strip()
        client = connect(endpoint, keys, "tfc-1", "tfc", tmp_path / "tfc")
        wait_link_up(client)
        before_kill = collect_n(client, 10)
        while journalled_count(tmp_path / "journal.sqlite") < 15:
            time.sleep(0.02)  # the console falls behind: some alerts are journalled, not shown
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(5)
        journalled_before_restart = journalled_count(tmp_path / "journal.sqlite")
        restarted = AlertPublisher(alerts_config(keys, tmp_path, bind=endpoint))
        restarted.start()
        try:
            restarted.publish(*make_alert("FA99ZZZ", {Marker.FIREARMS}))
            # link down, hello again, replay, then the new alert
            after = collect_n(client, journalled_before_restart + 1 - 10, 15)
            after += collect(client, 0.3)  # and nothing more
        finally:
            restarted.close(timeout_s=0.5)
            client.close()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(5)
    journal = Journal(tmp_path / "journal.sqlite")
    journalled = journal.all_ids()
    journal.close()
    received = [a["alert_id"] for a in before_kill + after]
    assert len(before_kill) == 10 and len(journalled) >= 16
    assert received == journalled  # every journalled alert, once, in order


def test_an_image_that_cannot_be_encoded_leaves_the_alert_intact():
    activation = make_activation("AB12CDE", {Marker.GANGS})
    vehicle = activation.vehicle
    broken = VehicleRead(
        vehicle.camera_id,
        vehicle.track_id,
        vehicle.read,
        vehicle.captured_at,
        vehicle.first_seen,
        vehicle.last_seen,
        vehicle.box,
        vehicle.plate_crop,
        np.zeros((10, 10, 5), np.uint8),  # five channels: no JPEG for this
    )
    evidence = encode_evidence(broken)
    assert evidence.overview is None
    frames = alert_frames(alert_record(Activation(broken, activation.hits), evidence))
    document = json.loads(frames[0])
    assert document["evidence"]["overview"] is None
    assert document["evidence"]["plate_crop"]["width"] == 160
    assert document["evidence"]["plate_crop"]["frame"] == 1 and len(frames) == 2
    assert document["read"]["text"] == "AB12CDE"


def test_enrolment_mistakes_are_refused_by_the_config(keys, tmp_path):
    tsg_without_tsg = {"name": "tsg-1", "role": "tsg", "public_key": keys / "tsg-1.key"}
    with pytest.raises(ValueError, match="tsg console always receives tsg alerts"):
        alerts_config(keys, tmp_path, consoles=[{**tsg_without_tsg, "tsg_alerts": False}])
    twice = [tsg_without_tsg, {**tsg_without_tsg, "public_key": keys / "tfc-1.key"}]
    with pytest.raises(ValueError, match="each console needs its own name; repeated: tsg-1"):
        alerts_config(keys, tmp_path, consoles=twice)
    shared_key = [tsg_without_tsg, {**tsg_without_tsg, "name": "tsg-2"}]
    with pytest.raises(ValueError, match="each console needs its own public_key"):
        alerts_config(keys, tmp_path, consoles=shared_key)


def test_a_console_that_stops_reading_is_fed_from_the_journal_in_order(
    keys, tmp_path, caplog, monkeypatch
):
    """More alerts than the socket buffers hold, to a console alive but not reading: none
    dropped, none repeated, order kept."""
    caplog.set_level(logging.INFO, logger="edge.alerts")
    monkeypatch.setattr(alerts_module, "_SEND_HWM", 50)  # small buffers: a short test
    publisher = AlertPublisher(alerts_config(keys, tmp_path))
    publisher.start()
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.rcvhwm, raw.rcvbuf = 50, 64 * 1024
    raw.curve_publickey, raw.curve_secretkey = load_secret_key(keys / "tsg-1.key_secret")
    raw.curve_serverkey = load_public_key(keys / "daemon.key")
    raw.linger = 0
    raw.connect(publisher.endpoint)
    raw.send_json({"type": "hello", "version": 2, "role": "tsg"})
    try:
        ids = []
        for i in range(600):
            ids.append(
                publisher.publish(*make_alert(f"DR{i:04d}", {Marker.DRUGS}, overview_size=(9, 16)))
            )
            if i % 20 == 0:
                raw.send_json({"type": "heartbeat", "version": 2})  # alive, just not reading
        received = []
        while len(received) < len(ids) and raw.poll(10_000):
            message = json.loads(raw.recv_multipart()[0])
            if message["type"] == "alert":
                received.append(message["alert_id"])
            elif message["type"] == "heartbeat":
                raw.send_json({"type": "heartbeat", "version": 2})
    finally:
        raw.close()
        publisher.close(timeout_s=0.5)
    assert received == ids
    assert any("tsg-1 is behind" in r.getMessage() for r in caplog.records)


def test_every_alert_is_in_the_journal_before_a_console_receives_it(publisher, keys, tmp_path):
    """Alerts published back to back are committed together, and each before it is sent."""
    client = connect(publisher.endpoint, keys, "tfc-1", "tfc", tmp_path / "tfc")
    journal = sqlite3.connect(f"file:{publisher.config.journal}?mode=ro", uri=True)
    try:
        wait_link_up(client)
        ids = [
            publisher.publish(*make_alert(f"FA{i:03d}AA", {Marker.FIREARMS}, overview_size=(9, 16)))
            for i in range(300)
        ]
        received, not_yet_journalled = [], []
        deadline = time.monotonic() + 20
        while len(received) < len(ids) and time.monotonic() < deadline:
            event = client.receive(0.05)
            if event is not None and event["type"] == "alert":
                query = "SELECT 1 FROM alerts WHERE alert_id = ?"
                if journal.execute(query, (event["alert_id"],)).fetchone() is None:
                    not_yet_journalled.append(event["alert_id"])
                received.append(event["alert_id"])
                client.ack(event["alert_id"])
        in_journal = [row[0] for row in journal.execute("SELECT alert_id FROM alerts ORDER BY seq")]
    finally:
        journal.close()
        client.close()
    assert received == ids == in_journal
    assert not_yet_journalled == []


def test_a_journal_that_cannot_be_written_does_not_stop_alerts(publisher, keys, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="edge.alerts")
    client = connect(publisher.endpoint, keys, "tsg-1", "tsg", tmp_path / "tsg")
    try:
        wait_link_up(client)
        with sqlite3.connect(publisher.config.journal) as db:  # the journal breaks under it
            db.execute("DROP TABLE alerts")
        ids = [publisher.publish(*make_alert(f"DR{i}2BBB", {Marker.DRUGS})) for i in range(2)]
        received = [a["alert_id"] for a in collect_n(client, 2)]
    finally:
        client.close()
    assert received == ids  # sent live, though they cannot be replayed
    failures = [r.getMessage() for r in caplog.records if "cannot be replayed" in r.getMessage()]
    assert failures and all(any(i in f for f in failures) for i in ids)


def test_publish_after_close_is_refused(keys, tmp_path):
    publisher = AlertPublisher(alerts_config(keys, tmp_path))
    publisher.start()
    publisher.close(timeout_s=0.5)
    with pytest.raises(RuntimeError, match="publish\\(\\) after close\\(\\)"):
        publisher.publish(*make_alert("FA11AAA", {Marker.FIREARMS}))


def test_publish_waits_rather_than_leave_many_alerts_uncommitted(publisher, keys, tmp_path):
    """While the journal cannot commit, publish() stops returning once UNCOMMITTED_MAX alerts
    are waiting: a kill -9 then could lose no more. They are all journalled once it can."""
    published: list[str] = []
    blocker = sqlite3.connect(publisher.config.journal, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the journal's write lock (SQLite waits up to 5 s)
    try:
        alert = make_alert("DR22BBB", {Marker.DRUGS}, overview_size=(9, 16))
        thread = threading.Thread(
            target=lambda: published.extend(publisher.publish(*alert) for _ in range(700))
        )
        thread.start()
        count = -1
        while count != len(published):  # until publish() stops returning
            count = len(published)
            time.sleep(0.3)
        blocked_at = len(published)
        assert thread.is_alive()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    thread.join(10)
    deadline = time.monotonic() + 10
    while journalled_count(publisher.config.journal) < 700 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blocked_at == UNCOMMITTED_MAX
    assert journalled_count(publisher.config.journal) == len(published) == 700

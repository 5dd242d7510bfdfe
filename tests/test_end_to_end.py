"""The whole daemon, for real: `anpr-edge run` on a short clip, CURVE on, two real consoles."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.console import ConsoleClient
from edge.keys import write_keypair

SHORT = Path(__file__).parent / "fixtures" / "short"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_hotlist(path: Path, firearms_vrm: str, drugs_vrm: str) -> None:
    path.write_text(
        "entry_id,vrm,markers,action,information,source,added,expires\n"
        f"E2E-1,{firearms_vrm},firearms,stop - armed support,handgun seen (test),e2e,2026-01-01,2099-01-01\n"
        f"E2E-2,{drugs_vrm},drugs,follow and stop,class A supply (test),e2e,2026-01-01,2099-01-01\n"
    )


def test_daemon_routes_firearms_hits_to_tfc_and_other_hits_to_tsg(tmp_path):
    truth = json.loads((SHORT / "short.truth.json").read_text())
    firearms_vrm, drugs_vrm = (p["vrm"] for p in truth["passes"][:2])
    write_hotlist(tmp_path / "hotlist.csv", firearms_vrm, drugs_vrm)
    keys = tmp_path / "keys"
    for name in ("daemon", "tfc-1", "tsg-1"):
        write_keypair(name, keys)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = {
        "cameras": [{"id": "e2e-cam", "source": str(SHORT / "short.mp4"), "pacing": "fast"}],
        "hotlists": {"paths": ["hotlist.csv"]},
        "alerts": {
            "bind": endpoint,
            "server_secret_key": "keys/daemon.key_secret",
            "consoles": [
                {"name": "tfc-1", "role": "tfc", "public_key": "keys/tfc-1.key"},
                {"name": "tsg-1", "role": "tsg", "public_key": "keys/tsg-1.key"},
            ],
            "journal": "journal.sqlite",
        },
    }
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(config))

    consoles = {
        role: ConsoleClient(
            endpoint,
            role,
            secret_key=keys / f"{role}-1.key_secret",
            server_public_key=keys / "daemon.key",
            state_dir=tmp_path / f"console-{role}",
        )
        for role in ("tfc", "tsg")
    }
    received: dict[str, list[dict]] = {"tfc": [], "tsg": []}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(tmp_path / "edge.yaml")],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for role, console in consoles.items():
                event = console.receive(0.1)
                if event and event["type"] == "alert":
                    received[role].append(event)
                    console.ack(event["alert_id"])
            tfc_vrms = {hit["entry"]["vrm"] for a in received["tfc"] for hit in a["hits"]}
            tsg_vrms = {hit["entry"]["vrm"] for a in received["tsg"] for hit in a["hits"]}
            if firearms_vrm in tfc_vrms and drugs_vrm in tsg_vrms and daemon.poll() is not None:
                break
        stderr = daemon.communicate(timeout=30)[1]
    finally:
        daemon.kill()
        for console in consoles.values():
            console.close()

    assert daemon.returncode == 0, stderr
    assert "Traceback" not in stderr
    stats = json.loads(stderr.strip().splitlines()[-1])
    assert stats["event"] == "stopped" and stats["frames_processed"] > 0

    firearms_alerts = [a for a in received["tfc"] if "firearms" in a["markers"]]
    assert [a["hits"][0]["entry"]["vrm"] for a in firearms_alerts] == [firearms_vrm]
    alert = firearms_alerts[0]
    assert alert["role"] == "tfc" and alert["camera_id"] == "e2e-cam"
    assert alert["hits"][0]["entry"]["action"] == "stop - armed support"
    assert 0 < alert["read"]["confidence"] <= 1
    crop = cv2.imdecode(
        np.frombuffer(alert["evidence"]["plate_crop"]["data"], np.uint8), cv2.IMREAD_COLOR
    )
    assert crop is not None and crop.shape[1] > crop.shape[0]

    assert all("firearms" not in a["markers"] for a in received["tsg"])
    assert [a["hits"][0]["entry"]["vrm"] for a in received["tsg"]] == [drugs_vrm]
    assert received["tsg"][0]["markers"] == ["drugs"]

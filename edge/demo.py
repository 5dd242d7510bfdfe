"""`make demo`: the daemon on bundled footage, with a TFC and a TSG console, over CURVE.

Everything runs as it would in the vehicle, on this machine: key pairs are made with
`anpr-edge keys new`, the daemon runs as `anpr-edge run`, and each console as
`anpr-edge console --json`; this script only prints what each console receives.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = REPO / "benchmarks" / "footage"
STATE = REPO / "var" / "demo"
CONSOLE_ROLES = {"tfc-demo": "tfc", "tsg-demo": "tsg"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _anpr_edge(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *args]


def _write_config(keys: Path) -> Path:
    config = {
        "cameras": [{"id": "demo-cam", "source": str(FOOTAGE / "demo.mp4"), "pacing": "realtime"}],
        "hotlists": {
            "paths": [str(FOOTAGE / "hotlist.csv"), str(REPO / "hotlists" / "sample.csv")]
        },
        "alerts": {
            "bind": f"tcp://127.0.0.1:{_free_port()}",
            "server_secret_key": str(keys / "daemon.key_secret"),
            "consoles": [
                {"name": name, "role": role, "public_key": str(keys / f"{name}.key")}
                for name, role in CONSOLE_ROLES.items()
            ],
            "journal": str(STATE / "journal.sqlite"),
            "evidence_dir": str(STATE / "evidence"),
        },
        "logging": {"level": "WARNING", "health_interval_s": 5},
    }
    path = STATE / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def describe(role: str, message: dict) -> str:
    """One readable line for what a console received."""
    kind = message.get("type")
    if kind == "link":
        return f"[{role.upper()} console] link to the vehicle {'UP' if message['up'] else 'DOWN'}"
    if kind != "alert":
        status = message.get("status", message)
        return f"[{role.upper()} console] status: {json.dumps(status, sort_keys=True)}"
    read = message["read"]
    listed = [*read.get("alternatives", []), *read.get("reader_alternatives", [])]
    alternatives = ", ".join(a["text"] for a in listed[:3]) or "none"
    hit = message["hits"][0]
    label = "POSSIBLE MISREAD" if message.get("possible_misread") else "EXACT"
    crop = (message.get("evidence", {}).get("plate_crop") or {}).get("path") or ""
    return (
        f"[{role.upper()} console] ALERT for {message['role'].upper()} {label} {read['text']} (conf {read['confidence']:.2f}; "
        f"alternatives {alternatives}) markers={'+'.join(message['markers'])} "
        f'action="{hit["entry"]["action"]}" info="{hit["entry"]["information"]}" '
        f"camera={message['camera_id']} at {message['captured_at_iso']}"
        + (f" direction={message['direction']}" if message.get("direction") else "")
        + (f"\n      plate crop: {crop}" if crop else "")
    )


# Both consoles' followers print; one print is two writes (text, newline), so unguarded their
# lines can run together.
_PRINT_LOCK = threading.Lock()


def _follow(role: str, process: subprocess.Popen, received: list[dict]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("type") == "alert":
            received.append(message)
        with _PRINT_LOCK:
            print(describe(role, message), flush=True)


def main() -> int:
    if not (FOOTAGE / "demo.mp4").exists():
        print(f"demo footage missing: {FOOTAGE / 'demo.mp4'}", file=sys.stderr)
        return 1
    shutil.rmtree(STATE, ignore_errors=True)
    keys = STATE / "keys"
    for name in ["daemon", *CONSOLE_ROLES]:
        subprocess.run(
            _anpr_edge("keys", "new", name, "--dir", str(keys)),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    config = _write_config(keys)
    print(f"demo: config {config.relative_to(REPO)}, footage {FOOTAGE.relative_to(REPO)}/demo.mp4")

    consoles = []
    received: dict[str, list[dict]] = {}
    for name, role in CONSOLE_ROLES.items():
        process = subprocess.Popen(
            _anpr_edge(
                "console",
                "--config",
                str(config),
                "--role",
                role,
                "--json",
                "--key",
                str(keys / f"{name}.key_secret"),
                "--max-seconds",
                "120",
            ),
            stdout=subprocess.PIPE,
            text=True,
            cwd=STATE,
        )
        received[role] = []
        follower = threading.Thread(
            target=_follow, args=(role, process, received[role]), daemon=True
        )
        follower.start()
        consoles.append((process, follower))

    daemon = subprocess.run(_anpr_edge("run", "--config", str(config)), check=False, cwd=STATE)
    time.sleep(2.0)
    for process, _ in consoles:
        process.terminate()
    for process, follower in consoles:
        process.wait(timeout=10)
        follower.join(timeout=5)
    print(
        f"demo: the TFC console received {len(received['tfc'])} alert(s), "
        f"the TSG console {len(received['tsg'])}; journal {STATE.relative_to(REPO)}/journal.sqlite"
    )
    return daemon.returncode


if __name__ == "__main__":
    sys.exit(main())

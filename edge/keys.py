"""CURVE key pairs for the daemon and the consoles: `anpr-edge keys new NAME`.

A key pair is two files in the ZeroMQ certificate format (readable by `zmq.auth.load_certificate`):
`NAME.key` holds the public key (share it: enrol it in the daemon's config, or give the daemon's
to the consoles) and `NAME.key_secret` holds both keys and never leaves its machine. The secret
file is created with mode 0600 from the start, and a secret file readable by group or others is
refused when loaded, as ssh does.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import sys
from pathlib import Path

import zmq
import zmq.auth

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_BANNER = "#   ZeroMQ CURVE {kind} Certificate, made by anpr-edge on {when}\n#   {advice}\n\n"
_PUBLIC_ADVICE = "Public key: safe to copy to the machines that must trust this one."
_SECRET_ADVICE = "SECRET key: keep it on this machine only, mode 0600; never copy or share it."


class KeyFileError(Exception):
    """A key file that cannot be used; the message names the file and the fix."""


def _certificate(kind: str, advice: str, public: bytes, secret: bytes | None) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    lines = [_BANNER.format(kind=kind, when=when, advice=advice), "metadata\n", "curve\n"]
    lines.append(f'    public-key = "{public.decode("ascii")}"\n')
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"\n')
    return "".join(lines)


def write_keypair(name: str, directory: Path) -> tuple[Path, Path]:
    """Make a new CURVE key pair; returns (public key file, secret key file). Never overwrites."""
    if not _NAME.fullmatch(name):
        raise KeyFileError(
            f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    public_path, secret_path = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public_path, secret_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; remove it first to replace the key pair")
    public, secret = zmq.curve_keypair()
    # O_EXCL with mode 0600 at creation: the secret is never readable by others, not even briefly.
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(_certificate("**Secret**", _SECRET_ADVICE, public, secret))
    public_path.write_text(_certificate("Public", _PUBLIC_ADVICE, public, None), encoding="ascii")
    return public_path, secret_path


def load_public_key(path: Path) -> bytes:
    """The z85 public key in a `.key` (or `.key_secret`) file."""
    if not path.is_file():
        raise KeyFileError(
            f"{path}: no such key file (the key pair's owner makes it with "
            f"'anpr-edge keys new {path.stem}')"
        )
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise KeyFileError(f"{path}: not a readable CURVE key file ({error})") from None
    if len(public) != 40:
        raise KeyFileError(f"{path}: public-key is not a 40-character z85 CURVE key")
    return public


def load_secret_key(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a `.key_secret` file that only its owner can read."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise KeyFileError(
            f"{path}: cannot read secret key file: {error.strerror} "
            f"(make a key pair with 'anpr-edge keys new {path.stem} --dir {path.parent}')"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: secret key file is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run 'chmod 600 {path}'"
        )
    public = load_public_key(path)
    _, secret = zmq.auth.load_certificate(path)
    if secret is None or len(secret) != 40:
        raise KeyFileError(
            f"{path}: no 40-character secret-key in this file (is it the .key file?)"
        )
    return public, secret


def public_key_file_for(secret_path: Path) -> Path:
    """The public key file made with a secret key file: NAME.key beside NAME.key_secret."""
    return secret_path.with_suffix(".key")


def new_keypair_command(name: str, directory: Path) -> int:
    """`anpr-edge keys new NAME --dir DIR`: prints the file paths and the public key, never the secret."""
    try:
        public_path, secret_path = write_keypair(name, directory)
    except (KeyFileError, OSError) as error:
        print(f"anpr-edge keys: {error}", file=sys.stderr)
        return 1
    print(f"public key file: {public_path}")
    print(f"secret key file: {secret_path} (mode 0600: keep it on this machine)")
    print(f"public key: {load_public_key(public_path).decode('ascii')}")
    return 0

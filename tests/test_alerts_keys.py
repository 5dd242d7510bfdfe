"""`anpr-edge keys new`: CURVE key pairs usable by ZeroMQ, secret file 0600, secret never printed."""

from __future__ import annotations

import stat

import pytest
import zmq.auth

from edge.cli import main
from edge.keys import KeyFileError, load_secret_key, write_keypair


def test_keys_new_writes_a_usable_pair_with_a_private_secret(tmp_path, capsys):
    assert main(["keys", "new", "tfc-1", "--dir", str(tmp_path / "keys")]) == 0
    public_file, secret_file = tmp_path / "keys/tfc-1.key", tmp_path / "keys/tfc-1.key_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    public, secret = zmq.auth.load_certificate(secret_file)
    assert zmq.auth.load_certificate(public_file) == (public, None)
    assert zmq.curve_public(secret) == public
    printed = capsys.readouterr().out
    assert public.decode() in printed and str(secret_file) in printed
    assert secret.decode() not in printed


def test_keys_new_never_overwrites(tmp_path, capsys):
    write_keypair("daemon", tmp_path)
    before = (tmp_path / "daemon.key_secret").read_bytes()
    assert main(["keys", "new", "daemon", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "daemon.key_secret").read_bytes() == before


def test_key_names_that_could_escape_the_directory_are_refused(tmp_path):
    with pytest.raises(KeyFileError, match="key name"):
        write_keypair("../evil", tmp_path)


def test_secret_key_readable_by_others_is_refused(tmp_path):
    _, secret_file = write_keypair("tsg-1", tmp_path)
    secret_file.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_secret_key(secret_file)


def test_public_key_file_is_not_accepted_as_a_secret(tmp_path):
    public_file, _ = write_keypair("tsg-1", tmp_path)
    public_file.chmod(0o600)
    with pytest.raises(KeyFileError, match="no 40-character secret-key"):
        load_secret_key(public_file)

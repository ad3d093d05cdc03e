"""The actor's RSA key for HTTP signatures and the fediverse handle: made at init, made at first
open for a node older than them, kept with the artist's key's care."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from node.actorkey import ACTOR_KEY_BITS, load_actor_key_file
from node.settings import handle_from_name
from tests.support.cli import ok, refused, stave


def test_init_makes_an_actor_key_beside_the_artists_key(tmp_path: Path) -> None:
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada Example", "--url", "https://ada.example/"))
    path = node / "actor-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    key = load_actor_key_file(path, None)
    assert key.private_key.key_size == ACTOR_KEY_BITS
    public = serialization.load_pem_public_key(key.public_key_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(key.sign(b"hello"), b"hello", padding.PKCS1v15(), hashes.SHA256())
    lines = ok(stave(node, "id")).splitlines()
    assert lines[0].startswith("did:key:z6Mk")
    assert lines[1] == "fediverse: @ada_example@ada.example"
    assert 'handle = "ada_example"' in (node / "config.toml").read_text()


def test_an_encrypted_node_has_an_encrypted_actor_key(tmp_path: Path) -> None:
    env = {"STAVE_KEY_PASSPHRASE": "correct horse"}
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada", env=env))
    assert b"ENCRYPTED PRIVATE KEY" in (node / "actor-key.pem").read_bytes()
    assert load_actor_key_file(node / "actor-key.pem", "correct horse").private_key


def test_a_node_made_before_the_actor_key_gets_one_when_opened_and_keeps_it(
    tmp_path: Path,
) -> None:
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada"))
    (node / "actor-key.pem").unlink()
    ok(stave(node, "check"))
    first = (node / "actor-key.pem").read_bytes()
    assert stat.S_IMODE((node / "actor-key.pem").stat().st_mode) == 0o600
    ok(stave(node, "check"))
    assert (node / "actor-key.pem").read_bytes() == first
    assert not [p.name for p in node.iterdir() if p.name.endswith(".tmp")]


def test_an_actor_key_others_can_read_is_a_problem_stave_check_names(tmp_path: Path) -> None:
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada"))
    before = (node / "actor-key.pem").read_bytes()
    (node / "actor-key.pem").chmod(0o644)
    result = stave(node, "check")
    assert result.returncode != 0
    assert "actor-key.pem" in result.stdout + result.stderr
    assert "chmod 600" in result.stdout + result.stderr
    assert (node / "actor-key.pem").read_bytes() == before


def test_a_damaged_actor_key_is_named_and_never_replaced(tmp_path: Path) -> None:
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada"))
    (node / "actor-key.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n")
    result = stave(node, "check")
    assert result.returncode != 0
    assert "not a PKCS#8 PEM key" in result.stdout + result.stderr
    assert (node / "actor-key.pem").read_bytes().endswith(b"broken\n")


@pytest.mark.parametrize(
    ("name", "handle"),
    [
        ("Ada Example", "ada_example"),
        ("Sigur Rós", "sigur_ros"),
        ("  Björk!!  ", "bjork"),
        ("Die Ärzte & Straße", "die_arzte_strasse"),
        ("東京", "artist"),
        ("x" * 80, "x" * 64),
    ],
)
def test_the_default_handle_is_a_slug_of_the_name(name: str, handle: str) -> None:
    assert handle_from_name(name) == handle


def test_a_handle_no_server_could_mention_is_refused(tmp_path: Path) -> None:
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada"))
    config = node / "config.toml"
    config.write_text(config.read_text().replace('handle = "ada"', 'handle = "Ada Lovelace"'))
    refused(stave(node, "id"), "fediverse.handle", "lowercase")


def test_a_config_without_a_handle_uses_the_name(tmp_path: Path) -> None:
    node = tmp_path / "node"
    ok(stave(node, "init", "--name", "Ada Example"))
    config = node / "config.toml"
    config.write_text(config.read_text().replace('handle = "ada_example"', 'handle = ""'))
    assert ok(stave(node, "id")).splitlines()[1].startswith("fediverse: @ada_example@")

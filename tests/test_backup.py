"""`stave export` and `stave import`, run as real processes over real data directories: the
archive restores a node whose content re-hashes, whose feed chain holds and whose next publish
continues the sequence; a damaged, truncated or mismatched archive changes nothing."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from node.actorkey import load_actor_key_file
from node.cid import import_path
from node.cli import build_parser
from node.feed import FollowState, verify_feed
from node.store import Store
from tests.support.cli import ok, refused, stave
from tests.support.kubo import kubo_binary
from tests.support.node import private_copy
from tests.support.paths import PROJECT_ROOT
from tests.support.shared import FIXTURES

PASSPHRASE = "correct horse battery staple"
MULTI_BLOCK_BYTES = 2 * 1024 * 1024 + 12345  # three raw leaves under a dag-pb root


WITH_PASSPHRASE = {"STAVE_EXPORT_PASSPHRASE": PASSPHRASE}


def stave_has(command: str) -> bool:
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return command in commands.choices


def feeds(data_dir: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:
        return list(db.execute("SELECT sequence, cid, previous FROM feeds ORDER BY sequence"))


def files(data_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (data_dir / "store" / "files").iterdir()}


def check_node(data_dir: Path) -> dict[str, Any]:
    """What `stave check` promises, checked here from the outside: every stored file re-hashes
    to its CID, every feed names the one before, and the latest verifies. Returns the latest."""
    for path in (data_dir / "store" / "files").iterdir():
        assert str(import_path(path).root) == path.name
    chain = feeds(data_dir)
    previous = None
    for sequence, cid, previous_cid in chain:
        body = json.loads((data_dir / "store" / "files" / cid).read_bytes())
        assert (body["sequence"], body["previous"], previous_cid) == (sequence, previous, previous)
        previous = cid
    body = (data_dir / "store" / "files" / chain[-1][1]).read_bytes()
    did = json.loads(body)["artist"]
    return verify_feed(body, FollowState(artist=did), max_bytes=1 << 26)


@pytest.fixture(scope="module")
def artist_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: a node with two published tracks, a withdrawn one, and a file of several
    blocks."""
    root = tmp_path_factory.mktemp("backup") / "artist"
    ok(stave(root, "init", "--name", "Ada Example", "--url", "https://ada.example/"))
    ok(stave(root, "add", str(FIXTURES / "tone.mp3"), str(FIXTURES / "tone.flac")))
    withdrawn = json.loads(ok(stave(root, "add", str(FIXTURES / "tone.ogg"), "--json")))[0]
    ok(stave(root, "withdraw", withdrawn["id"]))
    with Store(root / "store") as store, store.writer() as writer:
        for i in range(MULTI_BLOCK_BYTES // 4096 + 1):
            writer.write(i.to_bytes(4, "big") * 1024)
        stored = writer.commit()
    assert stored.cid.startswith("bafybei")  # a dag-pb root: the CAR walks its links
    return root


@pytest.fixture
def artist_node(artist_template: Path, tmp_path: Path) -> Path:
    """A private copy of the artist's node."""
    return private_copy(artist_template, tmp_path / "artist")


def test_export_and_import_restore_the_node_and_the_feed_continues(
    artist_node: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "backup.tar"
    said = ok(stave(artist_node, "export", "--with-key", str(archive), env=WITH_PASSPHRASE))
    assert "with the artist's key" in said
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        key_pem = tar.extractfile("key.pem").read()  # type: ignore[union-attr]
        index = json.loads(tar.extractfile("stave-backup.json").read())  # type: ignore[union-attr]
    assert names[:5] == [
        "stave-backup.json",
        "config.toml",
        "catalog.sqlite",
        "key.pem",
        "actor-key.pem",
    ]
    assert sorted(names[5:]) == sorted(f"content/{cid}.car" for cid in files(artist_node))
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (artist_node / "key.pem").read_bytes() not in key_pem
    did = ok(stave(artist_node, "id")).splitlines()[0]
    old_chain = feeds(artist_node)
    assert index["artist"] == did and index["key"] is True and index["actor_key"] is True
    assert index["feed"] == {"sequence": old_chain[-1][0], "cid": old_chain[-1][1]}

    restored = tmp_path / "elsewhere" / "node"
    said = ok(stave(restored, "import", str(archive), env=WITH_PASSPHRASE))
    assert f"into {restored}" in said
    assert sorted(p.name for p in restored.iterdir()) == [
        "actor-key.pem",
        "admin-token",
        "catalog.sqlite",
        "config.toml",
        "key.pem",
        "store",
    ]
    assert ok(stave(restored, "id")).splitlines()[0] == did
    # The actor key came back, the same RSA key: fediverse followers keep verifying its requests.
    assert _actor_public_pem(restored) == _actor_public_pem(artist_node)
    assert stat.S_IMODE((restored / "actor-key.pem").stat().st_mode) == 0o600
    assert files(restored) == files(artist_node)
    assert feeds(restored) == old_chain
    assert ok(stave(restored, "list", "--json")) == ok(stave(artist_node, "list", "--json"))
    assert (restored / "config.toml").read_bytes() == (artist_node / "config.toml").read_bytes()
    assert stat.S_IMODE((restored / "key.pem").stat().st_mode) == 0o600
    assert b"ENCRYPTED" not in (restored / "key.pem").read_bytes()  # no STAVE_KEY_PASSPHRASE
    token = (restored / "admin-token").read_text().strip()
    assert token and token != (artist_node / "admin-token").read_text().strip()
    check_node(restored)
    if stave_has("check"):  # the node's own full check, once node/check.py has landed
        ok(stave(restored, "check"))

    ok(stave(restored, "add", str(FIXTURES / "tone.opus")))
    latest = check_node(restored)
    assert latest["sequence"] == old_chain[-1][0] + 1
    assert latest["previous"] == old_chain[-1][1]
    assert latest["artist"] == did
    assert len(latest["tracks"]) == 3 and len(latest["withdrawn"]) == 1


def test_an_archive_without_the_key_restores_beside_the_artists_own_key(
    artist_node: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "backup.tar"
    said = ok(stave(artist_node, "export", str(archive)))
    assert "without the key" in said
    with tarfile.open(archive) as tar:
        assert "key.pem" not in tar.getnames()

    nowhere = tmp_path / "restored"
    refused(stave(nowhere, "import", str(archive)), "holds no key", "key.pem")
    assert not nowhere.exists()

    stranger = tmp_path / "stranger"
    ok(stave(stranger, "init", "--name", "Someone Else"))
    wrong_key = tmp_path / "wrong"
    wrong_key.mkdir()
    (wrong_key / "key.pem").write_bytes((stranger / "key.pem").read_bytes())
    (wrong_key / "key.pem").chmod(0o600)
    refused(stave(wrong_key, "import", str(archive)), "is the key of", "not of")
    assert [p.name for p in wrong_key.iterdir()] == ["key.pem"]

    own_key = tmp_path / "own"
    own_key.mkdir()
    (own_key / "key.pem").write_bytes((artist_node / "key.pem").read_bytes())
    (own_key / "key.pem").chmod(0o600)
    ok(stave(own_key, "import", str(archive)))
    assert ok(stave(own_key, "id")) == ok(stave(artist_node, "id"))
    assert (own_key / "key.pem").read_bytes() == (artist_node / "key.pem").read_bytes()
    check_node(own_key)
    # The archive had no actor key either: the restored node makes its own when first opened.
    assert not (own_key / "actor-key.pem").exists()
    ok(stave(own_key, "check"))
    assert _actor_public_pem(own_key) != _actor_public_pem(artist_node)


def test_an_encrypted_key_stays_encrypted_through_the_archive(tmp_path: Path) -> None:
    at_rest = {"STAVE_KEY_PASSPHRASE": "the key at rest"}
    root = tmp_path / "artist"
    ok(stave(root, "init", "--name", "Ada Example", env=at_rest))
    archive = tmp_path / "backup.tar"
    refused(
        stave(root, "export", "--with-key", str(archive), env=WITH_PASSPHRASE),
        "STAVE_KEY_PASSPHRASE",
    )
    refused(stave(root, "export", "--with-key", str(archive), env=at_rest), "STAVE_EXPORT")
    assert not archive.exists()
    short = {**at_rest, "STAVE_EXPORT_PASSPHRASE": "short"}
    refused(stave(root, "export", "--with-key", str(archive), env=short), "at least 8")
    ok(stave(root, "export", "--with-key", str(archive), env={**at_rest, **WITH_PASSPHRASE}))

    restored = tmp_path / "restored"
    wrong = {"STAVE_EXPORT_PASSPHRASE": "not the passphrase"}
    refused(stave(restored, "import", str(archive), env=wrong), "wrong passphrase")
    assert not restored.exists()
    ok(stave(restored, "import", str(archive), env={**at_rest, **WITH_PASSPHRASE}))
    assert b"ENCRYPTED" in (restored / "key.pem").read_bytes()
    assert b"ENCRYPTED" in (restored / "actor-key.pem").read_bytes()
    assert ok(stave(restored, "id", env=at_rest)) == ok(stave(root, "id", env=at_rest))


def _flip_byte_in_block(archive: Path, cid: str) -> None:
    """Flip one byte in the middle of the last block of `cid`'s CAR inside the tar."""
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"content/{cid}.car")
    position = member.offset_data + member.size - 100
    with archive.open("r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x01]))


def test_a_flipped_byte_in_a_block_is_refused_and_nothing_is_restored(
    artist_node: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "backup.tar"
    ok(stave(artist_node, "export", "--with-key", str(archive), env=WITH_PASSPHRASE))
    big = next(cid for cid in files(artist_node) if cid.startswith("bafybei"))
    _flip_byte_in_block(archive, big)

    target = tmp_path / "new"
    refused(
        stave(target, "import", str(archive), env=WITH_PASSPHRASE),
        f"content/{big}.car",
        "does not match its CID",
    )
    assert not target.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(stave(empty, "import", str(archive), env=WITH_PASSPHRASE), "does not match")
    assert list(empty.iterdir()) == []


def test_a_truncated_or_foreign_archive_is_refused(artist_node: Path, tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar"
    ok(stave(artist_node, "export", "--with-key", str(archive), env=WITH_PASSPHRASE))
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: last.offset_data + 1000])
    target = tmp_path / "new"
    refused(stave(target, "import", str(truncated), env=WITH_PASSPHRASE), str(truncated))
    assert not target.exists()

    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(FIXTURES / "tone.mp3", arcname="tone.mp3")
    refused(stave(target, "import", str(foreign)), "not a Stave backup")
    refused(stave(target, "import", str(FIXTURES / "tone.mp3")), "not a readable Stave backup")
    assert not target.exists()


def test_import_refuses_a_data_directory_in_use(artist_node: Path, tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar"
    ok(stave(artist_node, "export", "--with-key", str(archive), env=WITH_PASSPHRASE))
    used = tmp_path / "used"
    ok(stave(used, "init", "--name", "Someone Else"))
    before = {p.name: p.read_bytes() for p in used.iterdir() if p.is_file()}
    refused(stave(used, "import", str(archive), env=WITH_PASSPHRASE), "not a new data directory")
    assert {p.name: p.read_bytes() for p in used.iterdir() if p.is_file()} == before

    keyed = tmp_path / "keyed"
    keyed.mkdir()
    (keyed / "key.pem").write_bytes((artist_node / "key.pem").read_bytes())
    (keyed / "key.pem").chmod(0o600)
    refused(stave(keyed, "import", str(archive), env=WITH_PASSPHRASE), "already holds a key.pem")
    assert [p.name for p in keyed.iterdir()] == ["key.pem"]


def test_export_streams_to_stdout_and_import_reads_stdin(artist_node: Path, tmp_path: Path) -> None:
    archive = tmp_path / "piped.tar"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STAVE_")}
    with archive.open("wb") as out:
        exported = subprocess.run(
            [sys.executable, "-m", "node", "--data-dir", str(artist_node), "export", "-"],
            stdout=out,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=PROJECT_ROOT,
            timeout=120,
        )
    assert exported.returncode == 0, exported.stderr
    assert b"Exported" in exported.stderr
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "key.pem").write_bytes((artist_node / "key.pem").read_bytes())
    (restored / "key.pem").chmod(0o600)
    with archive.open("rb") as source:
        imported = subprocess.run(
            [sys.executable, "-m", "node", "--data-dir", str(restored), "import", "-"],
            stdin=source,
            capture_output=True,
            env=environment,
            cwd=PROJECT_ROOT,
            timeout=120,
        )
    assert imported.returncode == 0, imported.stderr
    assert files(restored) == files(artist_node)
    check_node(restored)


@pytest.mark.kubo
def test_every_car_in_the_archive_imports_into_kubo_as_its_file(
    artist_node: Path, tmp_path: Path
) -> None:
    """The CARs are plain CARv1: Kubo's `ipfs dag import` takes each one, and `ipfs cat` of
    its root gives back the stored file byte for byte."""
    binary = str(kubo_binary())
    archive = tmp_path / "backup.tar"
    ok(stave(artist_node, "export", str(archive)))
    environment = {**os.environ, "IPFS_PATH": str(tmp_path / "ipfs")}

    def ipfs(*args: str) -> bytes:
        done = subprocess.run(
            [binary, *args], capture_output=True, env=environment, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    ipfs("init", "--profile=test", "--empty-repo")
    cars = tmp_path / "cars"
    cars.mkdir()
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("content/")]
        for member in members:
            source = tar.extractfile(member)
            assert source is not None
            with (cars / Path(member.name).name).open("wb") as out:
                shutil.copyfileobj(source, out)
    stored = files(artist_node)
    assert len(members) == len(stored)
    for cid in stored:
        report = json.loads(
            ipfs("dag", "import", "--stats", "--enc=json", str(cars / f"{cid}.car")).splitlines()[0]
        )
        assert report["Root"]["Cid"]["/"] == cid
        assert ipfs("cat", cid) == (artist_node / "store" / "files" / cid).read_bytes()


def _actor_public_pem(node_dir: Path) -> str:
    return load_actor_key_file(node_dir / "actor-key.pem", None).public_key_pem

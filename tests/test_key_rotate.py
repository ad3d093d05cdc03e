"""`stave key rotate` on real data directories: the statement by the old key, the current tracks
and the next feed signed by the new key, the keys on disk, serving the statements, `stave check`
and backups across a rotation, refusals, and rotations killed with SIGKILL and finished later."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.datadir import DataDir, open_node
from node.errors import IdentityError, StoreError
from node.feed import FollowState, parse_json, verify_feed
from node.identity import load_key_file
from node.keys import artist_dids, read_rotations, rotate_key
from node.manifest import verify_manifest
from node.rotation import ROTATION_PATH, verify_rotation
from node.signing import verify_document
from node.store import Store
from node.web import create_app
from tests.support.cli import ok, refused, stave, stave_command
from tests.support.faults import KillTrial, kill_trials
from tests.support.shared import FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
URL = "http://127.0.0.1:8080/"


def did_of(key: Path) -> str:
    return load_key_file(key, None).did


def feed_cids(root: Path) -> list[str]:
    """The CIDs of the node's feed documents, oldest first, as its catalog lists them."""
    with closing(sqlite3.connect(root / "catalog.sqlite")) as db:
        return [row[0] for row in db.execute("SELECT cid FROM feeds ORDER BY sequence")]


def feeds(root: Path) -> list[dict[str, Any]]:
    """Every feed document of the node, oldest first, as stored under its CID."""
    store = Store(root / "store")
    try:
        return [parse_json(store.path(cid).read_bytes()) for cid in feed_cids(root)]
    finally:
        store.close()


def checks_clean(root: Path, env: dict[str, str] | None = None) -> None:
    result = stave(root, "check", env=env)
    assert result.returncode == 0 and "all well" in result.stderr, result.stdout + result.stderr


@pytest.fixture
def artist(tmp_path: Path) -> Path:
    """A node with two tracks, one of them withdrawn, and a third current one."""
    root = tmp_path / "node"
    ok(stave(root, "init", "--name", "Ada Example", "--url", URL))
    ok(stave(root, "add", str(FIXTURES / "tone.mp3"), str(FIXTURES / "tone.flac")))
    gone = ok(stave(root, "add", str(FIXTURES / "tone.ogg"))).split()[0]
    ok(stave(root, "withdraw", gone))
    return root


def test_rotation_signs_the_statement_with_the_old_key_and_everything_current_with_the_new(
    artist: Path,
) -> None:
    old_did = did_of(artist / "key.pem")
    before = feeds(artist)
    tracks_before = {t["id"]: t for t in before[-1]["tracks"]}

    result = stave(artist, "key", "rotate")
    new_did = ok(result).strip()
    assert new_did.startswith("did:key:z6Mk") and new_did != old_did
    assert old_did in result.stderr and "key.old-1.pem" in result.stderr

    # The keys on disk: the new one in key.pem, the old one kept, both private, nothing pending.
    assert did_of(artist / "key.pem") == new_did
    assert did_of(artist / "key.old-1.pem") == old_did
    for key in ("key.pem", "key.old-1.pem"):
        assert stat.S_IMODE((artist / key).stat().st_mode) == 0o600
    assert not (artist / "key.next.pem").exists()

    # The statement: by the old key, naming the new did.
    (statement,) = read_rotations(DataDir(artist))
    assert verify_rotation(statement, old_did) == new_did
    assert artist_dids(DataDir(artist), new_did) == [old_did, new_did]

    # The next feed continues the chain, signed by the new key, pointing at the statements.
    after = feeds(artist)
    assert len(after) == len(before) + 1
    feed, last_old = after[-1], before[-1]
    body = json.dumps(feed).encode()
    verify_feed(body, FollowState(new_did), max_bytes=len(body))
    assert feed["artist"] == new_did
    assert feed["sequence"] == last_old["sequence"] + 1
    assert feed["rotation"] == URL + ROTATION_PATH
    assert feed["previous"] == feed_cids(artist)[-2]
    assert feed["withdrawn"] == last_old["withdrawn"]
    # Every current track again, the next revision, same content, by the new key.
    assert {t["id"] for t in feed["tracks"]} == set(tracks_before)
    for manifest in feed["tracks"]:
        earlier = tracks_before[manifest["id"]]
        verify_manifest(manifest, new_did)
        assert manifest["revision"] == earlier["revision"] + 1
        assert manifest["audio"] == earlier["audio"]
        assert manifest["terms"] == earlier["terms"]

    # `stave check` verifies the older feeds against the old key and the new one against the new.
    checks_clean(artist)


def test_published_files_still_verify_after_a_rotation(artist: Path, tmp_path: Path) -> None:
    """A file published before keeps the old did in its tags; the old revision's manifest,
    signed by the old key, is still in the catalog."""
    cid = feeds(artist)[-1]["tracks"][0]["audio"]["cid"]
    (stored,) = (artist / "store" / "files").rglob(cid)
    copy = tmp_path / "copy.audio"
    copy.write_bytes(stored.read_bytes())
    ok(stave(artist, "key", "rotate"))
    verdict = json.loads(ok(stave(artist, "verify", str(copy), "--offline", "--json")))
    assert verdict["valid"] is True, verdict
    assert "superseded by revision" in verdict["reason"]


def test_a_second_rotation_extends_the_chain_and_backups_carry_it(
    artist: Path, tmp_path: Path
) -> None:
    first = did_of(artist / "key.pem")
    second = ok(stave(artist, "key", "rotate")).strip()
    third = ok(stave(artist, "key", "rotate")).strip()
    assert artist_dids(DataDir(artist), third) == [first, second, third]
    assert did_of(artist / "key.old-2.pem") == second
    assert [f["artist"] for f in feeds(artist)][-3:] == [first, second, third]
    checks_clean(artist)

    archive = tmp_path / "backup.tar"
    secret = {"STAVE_EXPORT_PASSPHRASE": "a long enough passphrase"}
    ok(stave(artist, "export", str(archive), "--with-key", env=secret))
    restored = tmp_path / "restored"
    ok(stave(restored, "import", str(archive), env=secret))
    assert (restored / "rotation.json").read_bytes() == (artist / "rotation.json").read_bytes()
    assert did_of(restored / "key.pem") == third
    checks_clean(restored)


def test_a_backup_whose_statements_were_removed_is_refused(artist: Path, tmp_path: Path) -> None:
    ok(stave(artist, "key", "rotate"))
    (artist / "rotation.json").rename(tmp_path / "kept.json")
    archive = tmp_path / "backup.tar"
    secret = {"STAVE_EXPORT_PASSPHRASE": "a long enough passphrase"}
    ok(stave(artist, "export", str(archive), "--with-key", env=secret))
    refused(stave(tmp_path / "restored", "import", str(archive), env=secret), "feed 1")
    assert not (tmp_path / "restored").exists()
    # and `stave check` says the older feeds are by a key it cannot link to the current one
    report = json.loads(stave(artist, "check", "--json").stdout)
    assert any("does not verify" in f["message"] for f in report["problems"]), report


def test_check_finds_a_damaged_statement(artist: Path) -> None:
    ok(stave(artist, "key", "rotate"))
    path = artist / "rotation.json"
    statements = json.loads(path.read_text())
    statements[0]["at"] = "2020-01-01T00:00:00Z"  # no longer what the old key signed
    path.write_text(json.dumps(statements))
    result = stave(artist, "check", "--json")
    assert result.returncode != 0
    messages = [f["message"] for f in json.loads(result.stdout)["problems"]]
    assert any("rotation.json: statement 1" in m for m in messages), messages


async def test_rotation_is_refused_while_the_node_is_open(artist: Path) -> None:
    key = (artist / "key.pem").read_bytes()
    async with open_node(artist):
        with pytest.raises(StoreError, match="another stave process"):
            await rotate_key(artist)
    assert (artist / "key.pem").read_bytes() == key
    assert not (artist / "rotation.json").exists()
    assert not (artist / "key.next.pem").exists()


def test_rotation_of_an_encrypted_key_keeps_it_encrypted(tmp_path: Path) -> None:
    root = tmp_path / "node"
    secret = {"STAVE_KEY_PASSPHRASE": "correct horse battery"}
    ok(stave(root, "init", "--name", "Ada", "--url", URL, env=secret))
    refused(stave(root, "key", "rotate"), "encrypted", "STAVE_KEY_PASSPHRASE")
    assert not (root / "rotation.json").exists()
    new_did = ok(stave(root, "key", "rotate", env=secret)).strip()
    assert b"ENCRYPTED" in (root / "key.pem").read_bytes().split(b"\n", 1)[0]
    assert load_key_file(root / "key.pem", secret["STAVE_KEY_PASSPHRASE"]).did == new_did
    checks_clean(root, env=secret)


async def test_the_node_serves_its_statements_and_names_them(
    aiohttp_client: ClientFactory, artist: Path
) -> None:
    client = await aiohttp_client(create_app(artist))
    missing = await client.get("/" + ROTATION_PATH)
    assert missing.status == 404
    assert "rotation" not in json.loads(await (await client.get("/.well-known/stave")).read())
    await client.close()

    old_did = did_of(artist / "key.pem")
    await rotate_key(artist)
    new_did = did_of(artist / "key.pem")
    client = await aiohttp_client(create_app(artist))
    answer = await client.get("/" + ROTATION_PATH)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    (statement,) = json.loads(await answer.read())
    assert verify_rotation(statement, old_did) == new_did
    node_document = json.loads(await (await client.get("/.well-known/stave")).read())
    verify_document(node_document, new_did)
    assert node_document["artist"] == new_did
    assert node_document["rotation"] == URL + ROTATION_PATH
    feed = json.loads(await (await client.get("/feed.json")).read())
    assert feed["artist"] == new_did and feed["rotation"] == URL + ROTATION_PATH


ROTATION_TRIALS = 16


def test_rotations_killed_at_random_moments_are_finished_by_running_it_again(
    artist: Path,
) -> None:
    """SIGKILL `stave key rotate` anywhere from its start to its end: afterwards either nothing
    changed, or the node refuses every command that signs until `stave key rotate` is run again,
    which finishes the same rotation (one statement each), and the node checks clean."""
    dids = [did_of(artist / "key.pem")]
    outcomes: dict[str, int] = {"finished": 0, "pending": 0, "untouched": 0}

    def check(trial: KillTrial) -> None:
        statements = read_rotations(DataDir(artist))
        if (artist / "key.next.pem").exists():
            outcomes["pending"] += 1
            refused(stave(artist, "add", str(FIXTURES / "tone.wav")), "stave key rotate")
            refused(stave(artist, "check"), "interrupted", "stave key rotate")
            ok(stave(artist, "key", "rotate"))
            statements = read_rotations(DataDir(artist))
        elif len(statements) == len(dids):
            outcomes["finished"] += 1
        else:
            outcomes["untouched"] += 1
        current = did_of(artist / "key.pem")
        if current != dids[-1]:
            dids.append(current)
        assert len(statements) == len(dids) - 1
        assert artist_dids(DataDir(artist), current) == dids
        assert feeds(artist)[-1]["artist"] == current
        checks_clean(artist)

    def begun(number: int) -> Callable[[], bool]:
        """Once the new key is being written. From there an uninterrupted run has swapped the
        keys 15–25 ms later here (statement, re-signing, commit) and exits 0.1 s after that."""
        writing = (artist / "key.next.pem.tmp", artist / "key.next.pem")
        return lambda: any(path.exists() for path in writing)

    trials = kill_trials(
        lambda n: stave_command(artist, "key", "rotate"),
        check,
        trials=ROTATION_TRIALS,
        # three trials in four inside the rotation proper, the rest up to its end
        delay=lambda n, rng: rng.uniform(0, 0.03 if n % 4 else 0.2),
        seed=11,
        armed=begun,
    )
    print(f"\nkey rotate killed: {sum(t.killed for t in trials)}/{len(trials)}, {outcomes}")
    assert sum(outcomes.values()) == ROTATION_TRIALS
    assert outcomes["pending"] > 0, "no trial stopped a rotation half way"
    # The final state is one the artist can keep publishing from.
    ok(stave(artist, "add", str(FIXTURES / "tone.wav")))
    checks_clean(artist)


async def test_a_node_left_mid_rotation_refuses_to_open(artist: Path) -> None:
    (artist / "key.next.pem").write_bytes((artist / "key.pem").read_bytes())
    os.chmod(artist / "key.next.pem", 0o600)
    with pytest.raises(IdentityError, match="run `stave key rotate` to finish it"):
        async with open_node(artist):
            pass
    refused(stave(artist, "withdraw", "anything"), "interrupted", "stave key rotate")
    archive = artist.parent / "backup.tar"
    refused(stave(artist, "export", str(archive)), "interrupted", "stave key rotate")
    assert not archive.exists()

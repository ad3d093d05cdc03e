"""`stave check`: every kind of damage it must find, what it only notes, and what --repair does.

Each test damages a private copy of a real published node (fixture audio, a cover, a withdrawn
track, three feeds) and runs the real command as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.cid import CID, base58_encode
from node.datadir import init_data_dir, open_node
from node.feed import serialize
from node.identity import Identity
from node.publish import Publisher
from node.signing import sign_document
from node.store import Store
from tests.support.cli import stave
from tests.support.node import private_copy
from tests.support.shared import FIXTURES


def check(data_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = stave(data_dir, "check", "--json", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def kinds(findings: list[dict[str, Any]]) -> list[str]:
    return sorted(f["kind"] for f in findings)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node with tone.mp3 (with its cover) and tone.flac published and tone.ogg withdrawn."""
    root = tmp_path_factory.mktemp("check") / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")

    async def publish() -> None:
        async with open_node(root) as node:
            publisher = Publisher(node)
            await publisher.publish_feed()
            await publisher.add_many([FIXTURES / "tone.mp3", FIXTURES / "tone.flac"])
            gone = await publisher.add(FIXTURES / "tone.ogg")
            shutil.copyfile(node.store.path(gone["audio"]["cid"]), root.parent / "withdrawn.ogg")
            await publisher.withdraw(gone["id"])

    asyncio.run(publish())
    return root


@pytest.fixture
def node_dir(template: Path, tmp_path: Path) -> Path:
    return private_copy(template, tmp_path / "node")


def catalog(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / "catalog.sqlite", isolation_level=None)


def track_row(root: Path, title: str) -> tuple[str, str, str | None]:
    with catalog(root) as db:
        row = db.execute(
            "SELECT id, audio_cid, cover_cid FROM tracks WHERE title = ?", (title,)
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def stored_file(root: Path, cid: str) -> Path:
    return root / "store" / "files" / cid


def test_a_whole_node_checks_clean(node_dir: Path) -> None:
    status, report = check(node_dir)
    assert status == 0
    assert report["ok"] is True
    # Two tracks' audio, their listening renditions, a cover and four feeds.
    assert report["checked"] == {"files": 9, "tracks": 2, "releases": 0, "feeds": 4}
    assert report["problems"] == [] and report["notices"] == []
    plain = stave(node_dir, "check")
    assert plain.returncode == 0 and plain.stdout == ""
    assert "all well" in plain.stderr


def test_a_changed_byte_in_published_audio_is_found(node_dir: Path) -> None:
    track_id, audio, _ = track_row(node_dir, "Tone in A")
    path = stored_file(node_dir, audio)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    status, report = check(node_dir)
    assert status == 1 and report["ok"] is False
    [problem] = report["problems"]
    assert problem["kind"] == "corrupt" and problem["subject"] == audio
    assert track_id in problem["message"]
    plain = stave(node_dir, "check")
    assert plain.returncode == 1
    assert plain.stdout.splitlines() == [f"corrupt: {problem['message']}"]
    # A repair cannot restore published bytes: the problem stays, the file is kept.
    status, report = check(node_dir, "--repair")
    assert status == 1 and kinds(report["problems"]) == ["corrupt"] and path.exists()


def test_missing_content_and_a_missing_feed_snapshot_are_found(node_dir: Path) -> None:
    _, audio, cover = track_row(node_dir, "Tone in A")
    assert cover is not None
    with catalog(node_dir) as db:
        (first_feed,) = db.execute("SELECT cid FROM feeds WHERE sequence = 1").fetchone()
    for cid in (cover, first_feed):
        stored_file(node_dir, cid).unlink()
    status, report = check(node_dir)
    assert status == 1
    assert kinds(report["problems"]) == ["missing", "missing"]
    assert {p["subject"] for p in report["problems"]} == {cover, first_feed}
    assert audio not in json.dumps(report["problems"])


def test_leftovers_of_an_interrupted_write_are_notices_that_repair_removes(node_dir: Path) -> None:
    store = Store(node_dir / "store")
    orphan = store.put_bytes(b"a cover nobody published")
    store.close()
    (node_dir / "store" / "tmp" / "4f2a.part").write_bytes(b"half a file")
    spool = node_dir / "store" / "tmp" / "9c1e.upload"  # a killed server's upload
    spool.mkdir()
    (spool / "take.wav").write_bytes(b"RIFF and half an upload")
    (node_dir / "store" / "files" / "not-a-cid").write_bytes(b"?")
    status, report = check(node_dir)
    assert status == 0 and report["ok"] is True
    assert kinds(report["notices"]) == ["leftover", "leftover", "orphan", "stray"]
    assert all(n["repairable"] for n in report["notices"])
    assert stored_file(node_dir, orphan.cid).exists()  # a plain check changes nothing

    status, report = check(node_dir, "--repair")
    assert status == 0
    assert kinds(report["repaired"]) == ["leftover", "leftover", "orphan", "stray"]
    assert not stored_file(node_dir, orphan.cid).exists()
    assert list((node_dir / "store" / "tmp").iterdir()) == []
    status, report = check(node_dir)
    assert status == 0 and report["notices"] == [] and report["checked"]["files"] == 9


def test_content_of_a_withdrawn_track_still_stored_is_a_problem_repair_removes(
    node_dir: Path, template: Path
) -> None:
    with catalog(node_dir) as db:
        (withdrawn_id,) = db.execute(
            "SELECT id FROM tracks WHERE withdrawn_at IS NOT NULL"
        ).fetchone()
        (manifest,) = db.execute(
            "SELECT manifest FROM manifests WHERE track_id = ?", (withdrawn_id,)
        ).fetchone()
    audio = json.loads(manifest)["audio"]["cid"]

    # What a crash between the withdrawal's commit and its clean-up leaves: the tagged copy.
    store = Store(node_dir / "store")
    assert store.put_bytes((template.parent / "withdrawn.ogg").read_bytes()).cid == audio
    store.close()
    status, report = check(node_dir)
    assert status == 1
    [problem] = report["problems"]
    assert problem["kind"] == "withdrawn" and problem["repairable"] is True
    assert withdrawn_id in problem["message"] and "still stored and served" in problem["message"]
    status, report = check(node_dir, "--repair")
    assert status == 0 and kinds(report["repaired"]) == ["withdrawn"]
    assert not stored_file(node_dir, audio).exists()


def test_a_broken_feed_chain_is_found(node_dir: Path) -> None:
    with catalog(node_dir) as db:
        db.execute("UPDATE feeds SET previous = ? WHERE sequence = 3", ("bafkqaaa",))
        db.execute("UPDATE feeds SET expires = '2000-01-01T00:00:00Z' WHERE sequence = 2")
    status, report = check(node_dir)
    assert status == 1
    messages = sorted(p["message"] for p in report["problems"])
    assert kinds(report["problems"]) == ["feed", "feed", "feed"]
    assert messages[0].startswith("feed 2: the catalog says expires '2000-01-01T00:00:00Z'")
    assert messages[1].startswith("feed 3: points back at bafkqaaa, not at feed 2")
    assert messages[2].startswith("feed 3: the catalog says previous 'bafkqaaa', the document")


def test_a_gap_in_the_feed_sequence_is_found(node_dir: Path) -> None:
    with catalog(node_dir) as db:
        db.execute("DELETE FROM feeds WHERE sequence = 2")
    status, report = check(node_dir)
    assert status == 1
    found = " | ".join(p["message"] for p in report["problems"])
    assert "feed 3: follows feed 1; sequences must increase by one" in found
    assert "feed 3: points back at" in found
    # Feed 2's snapshot is no longer referenced: the catalog lost it, the store still has it.
    assert kinds(report["notices"]) == ["orphan"]


def test_a_feed_signed_by_another_key_is_found(node_dir: Path) -> None:
    with catalog(node_dir) as db:
        (cid,) = db.execute("SELECT cid FROM feeds WHERE sequence = 4").fetchone()
    document = json.loads(stored_file(node_dir, cid).read_bytes())
    forged = sign_document(document, Identity.generate())
    store = Store(node_dir / "store")
    stored = store.put_bytes(serialize(forged))
    store.close()
    with catalog(node_dir) as db:
        db.execute("UPDATE feeds SET cid = ? WHERE sequence = 4", (stored.cid,))
    status, report = check(node_dir)
    assert status == 1
    [problem] = report["problems"]
    assert problem["kind"] == "feed" and problem["subject"] == stored.cid
    assert problem["message"].startswith(f"feed 4: {stored.cid} does not verify: proof is by")
    assert kinds(report["notices"]) == ["orphan"]  # the real feed 4, unreferenced now


def test_a_catalog_that_disagrees_with_the_latest_feed_is_found(node_dir: Path) -> None:
    with catalog(node_dir) as db:
        db.execute("UPDATE tracks SET withdrawn_at = NULL WHERE withdrawn_at IS NOT NULL")
    status, report = check(node_dir)
    assert status == 1
    found = [p["message"] for p in report["problems"]]
    assert any(m.startswith("feed 4 lists 2 track(s), the catalog 3 track(s)") for m in found)
    assert any("feed 4 withdraws 1 track(s), the catalog 0" in m for m in found)
    # The un-withdrawn track's audio was removed when it was withdrawn.
    assert "missing" in kinds(report["problems"])


def test_mirrored_content_not_yet_fetched_is_a_notice(node_dir: Path) -> None:
    pending = str(CID.of_block(b"a followed artist's track"))
    store = Store(node_dir / "store")
    mirrored = store.put_bytes(b"a followed artist's cover")
    store.close()
    # The artist's manifest may spell a CID in another base; the store names it in base32.
    spelled = "z" + base58_encode(CID.parse(mirrored.cid).to_bytes())
    with catalog(node_dir) as db:
        db.execute(
            "INSERT INTO follows (artist, name, url, feed_url, mirror, followed_at)"
            " VALUES ('did:key:z6MkFollowed', 'Bea', 'http://127.0.0.1:9/', "
            " 'http://127.0.0.1:9/feed.json', 1, '2026-11-26T16:00:00Z')"
        )
        db.execute(
            "INSERT INTO follow_tracks (artist, id, position, revision, title, published,"
            " audio_cid, cover_cid, manifest) VALUES ('did:key:z6MkFollowed', 'urn:uuid:1', 0, 1,"
            " 'B', '2026-11-26T16:00:00Z', ?, ?, '{}')",
            (pending, spelled),
        )
    status, report = check(node_dir)
    assert status == 0
    [notice] = report["notices"]  # the cover is stored, so neither pending nor an orphan
    assert notice["kind"] == "pending" and notice["subject"] == pending
    assert notice["repairable"] is False
    assert check(node_dir, "--repair")[1]["repaired"] == []
    assert (node_dir / "store" / "files" / mirrored.cid).exists()


def test_repair_refuses_while_another_process_has_the_node_open(node_dir: Path) -> None:
    (node_dir / "store" / "tmp" / "in-progress.part").write_bytes(b"an upload being written")

    async def hold_open() -> tuple[subprocess.CompletedProcess[str], ...]:
        async with open_node(node_dir):
            results = await asyncio.gather(
                asyncio.to_thread(stave, node_dir, "check", "--repair"),
                asyncio.to_thread(stave, node_dir, "check"),
            )
        return tuple(results)

    repair, plain = asyncio.run(hold_open())
    assert repair.returncode == 2, repair.stderr
    assert repair.stderr.strip() == (
        f"stave: {node_dir}: another stave process has this node open (stave run, add, sync, …);"
        " stop it first"
    )
    assert (node_dir / "store" / "tmp" / "in-progress.part").exists()
    assert plain.returncode == 0  # checking alone needs no exclusivity
    assert stave(node_dir, "check", "--repair").returncode == 0
    assert not (node_dir / "store" / "tmp" / "in-progress.part").exists()

"""Releases between real nodes on 127.0.0.1: a follower accepts, stores and mirrors a release
and its cover, rejects a feed with a bad release whole (changing nothing), and drops a withdrawn
release; `stave check` verifies releases; export and import keep them."""

from __future__ import annotations

import json
import sqlite3
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node.check import check_node
from node.datadir import Node, open_node
from node.feed import format_timestamp, serialize
from node.identity import Identity
from node.manifest import content_ref
from node.publish import Publisher
from node.release import build_release, release_track_entry, verify_release
from node.signing import sign_document
from tests.support.cli import ok, stave
from tests.support.federation import FOLLOW_TABLES, RunningNode
from tests.support.shared import FIXTURES

PASSPHRASE = {"STAVE_EXPORT_PASSPHRASE": "correct horse battery staple"}


def png(seed: int) -> bytes:
    """A valid 1×1 PNG whose one pixel depends on `seed`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixel = bytes([0, seed % 256, (seed // 256) % 256, 7])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


async def put_release(
    node: Node, manifests: list[dict[str, Any]], *, cover_seed: int | None = 1, **members: Any
) -> dict[str, Any]:
    """Sign a release of `manifests` (disc 1, in order) with a stored cover, put it in the
    catalog, and publish the next feed."""
    cover = None
    if cover_seed is not None:
        stored = node.store.put_bytes(png(cover_seed))
        cover = content_ref(stored.cid, "image/png", stored.size)
    fields: dict[str, Any] = {
        "release_id": f"urn:uuid:{uuid.uuid4()}",
        "revision": 1,
        "artist": node.identity.did,
        "title": "Tones",
        "kind": "ep",
        "released": "2026-11-26",
        "published": format_timestamp(datetime.now(UTC)),
        "tracks": [release_track_entry(m, 1, n) for n, m in enumerate(manifests, start=1)],
        "cover": cover,
        "credits": [{"role": "mastering", "name": "Mo Master"}],
    }
    fields.update(members)
    document = sign_document(build_release(**fields), node.identity)
    async with node.catalog.transaction() as tx:
        await tx.put_release(document)
    await Publisher(node).publish_feed()
    return document


async def withdraw_release(node: Node, release_id: str) -> None:
    async with node.catalog.transaction() as tx:
        await tx.withdraw_release(release_id, format_timestamp(datetime.now(UTC)))
    await Publisher(node).publish_feed()


def follower_state(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the follower's follow tables, its followed releases, and its store."""
    with closing(sqlite3.connect(f"file:{root / 'catalog.sqlite'}?mode=ro", uri=True)) as db:
        tables = {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in FOLLOW_TABLES
        }
    tables["files"] = [(p.name,) for p in sorted((root / "store" / "files").iterdir())]
    return tables


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    artist = await RunningNode.create(tmp_path / "artist", "Ada Example")
    follower = await RunningNode.create(tmp_path / "follower", "Mira Mirror")
    try:
        yield artist, follower
    finally:
        await follower.stop()
        await artist.stop()


async def test_a_follower_mirrors_a_release_rejects_a_bad_one_and_drops_a_withdrawn_one(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    artist, follower = pair
    manifests = await artist.publisher.add_many([FIXTURES / "tone.mp3", FIXTURES / "tone.flac"])
    gone = await artist.publisher.add(FIXTURES / "tone.ogg")
    await artist.publisher.withdraw(gone["id"])
    others = {r.id for r in await artist.node.catalog.releases()}  # what publishing made itself
    release = await put_release(artist.node, manifests)
    cover = release["cover"]["cid"]
    report = await check_node(artist.node)
    assert report.ok, report.problems
    assert report.releases == len(others) + 1

    outcome = await follower.runtime.follows.follow(artist.url, mirror=True)
    assert outcome.sync.verdict == "accepted", outcome
    (followed,) = [
        r for r in await follower.node.catalog.followed_releases(artist.did) if r.id not in others
    ]
    assert followed.document == release and followed.cover_cid == cover
    assert (followed.title, followed.kind, followed.released) == ("Tones", "ep", "2026-11-26")
    verify_release(followed.document, artist.did)
    assert follower.node.store.path(cover).read_bytes() == png(1)
    assert cover in await follower.node.catalog.referenced_cids()
    assert all(m.get("renditions") for m in manifests)  # media.renditions is on by default
    for manifest in manifests:  # the audio, and the listening renditions, mirrored too
        for cid in [manifest["audio"]["cid"], *(r["cid"] for r in manifest.get("renditions", []))]:
            assert follower.node.store.has(cid), cid

    # Feeds signed by the artist's key, pushed as WebSub would, each with one bad release: the
    # follower rejects every one whole, and nothing it stored changes.
    latest = await artist.node.catalog.latest_feed()
    assert latest is not None
    current = json.loads(artist.node.store.path(latest.cid).read_bytes())
    identity = artist.node.identity
    stranger = Identity.generate()
    old_revision = {**manifests[1], "revision": manifests[1]["revision"] + 1}
    bad_releases = {
        "names a withdrawn track": (_signed_release(identity, [manifests[1], gone]), "is not in"),
        "by another artist": (_signed_release(stranger, manifests), "is not " + artist.did),
        "a track at another revision": (
            _signed_release(identity, [old_revision]),
            "is not the feed's",
        ),
        "a bad proof": ({**_signed_release(identity, manifests), "title": "X"}, "signature"),
    }
    before = follower_state(follower.root)
    for what, (bad, reason) in bad_releases.items():
        unsigned = {k: v for k, v in current.items() if k != "proof"}
        unsigned.update(sequence=current["sequence"] + 1, releases=[bad, *current["releases"]])
        body = serialize(sign_document(unsigned, identity))
        sync = await follower.runtime.follows.sync(artist.did, pushed=body)
        assert sync.verdict == "rejected", what
        assert sync.error is not None and reason in sync.error and "\n" not in sync.error, what
        after = follower_state(follower.root)
        assert {k: v for k, v in after.items() if k != "follows"} == {
            k: v for k, v in before.items() if k != "follows"
        }, what
        assert [row[:9] for row in after["follows"]] == [row[:9] for row in before["follows"]]

    # The release withdrawn: it is gone from the follower, and the mirrored cover with it; the
    # tracks stay.
    await withdraw_release(artist.node, release["id"])
    sync = await follower.runtime.follows.sync(artist.did)
    assert sync.verdict == "accepted", sync
    assert {r.id for r in await follower.node.catalog.followed_releases(artist.did)} == others
    assert not follower.node.store.has(cover)
    assert len(await follower.node.catalog.followed_tracks(artist.did)) == 2
    feed = json.loads((await follower.node.catalog.followed_feed(artist.did)).body)  # type: ignore[union-attr]
    assert {r["id"] for r in feed["releases"]} == others
    assert release["id"] in {w["id"] for w in feed["withdrawnReleases"]}

    # The artist's node still stores the withdrawn cover: `stave check` says so, as it does
    # for a withdrawn track's content, until it is removed.
    problems = (await check_node(artist.node)).problems
    assert [(p.kind, p.subject) for p in problems] == [("withdrawn", cover)]
    artist.node.store.remove(cover)
    report = await check_node(artist.node)
    assert report.ok, report.problems
    assert report.releases == len(others)

    # A release in the catalog that lists a withdrawn track, and that no feed lists: damage.
    broken = _signed_release(identity, [manifests[0], gone])
    async with artist.node.catalog.transaction() as tx:
        await tx.put_release(broken)
    messages = [p.message for p in (await check_node(artist.node)).problems]
    assert f"release {broken['id']}: track {gone['id']} is not a current track" in messages
    assert any(m.startswith(f"feed {latest.sequence + 1} lists") for m in messages), messages


def _signed_release(identity: Identity, manifests: list[dict[str, Any]]) -> dict[str, Any]:
    document = build_release(
        release_id=f"urn:uuid:{uuid.uuid4()}",
        revision=1,
        artist=identity.did,
        title="Bad",
        kind="album",
        released="2026-11-26",
        published=format_timestamp(datetime.now(UTC)),
        tracks=[release_track_entry(m, 1, n) for n, m in enumerate(manifests, start=1)],
    )
    return sign_document(document, identity)


async def test_export_and_import_keep_releases_and_check_verifies_them(tmp_path: Path) -> None:
    root = tmp_path / "artist"
    ok(stave(root, "init", "--name", "Ada Example", "--url", "https://ada.example/"))
    ok(stave(root, "add", str(FIXTURES / "tone.mp3"), str(FIXTURES / "tone.ogg")))
    async with open_node(root) as node:
        manifests = [t.manifest for t in reversed(await node.catalog.tracks())]
        # Publishing may have made a release of its own; those travel too.
        others = {r.id: r.document for r in await node.catalog.releases()}
        release = await put_release(node, manifests, kind="album")
        single = await put_release(node, manifests[:1], kind="single", cover_seed=None)
        node.store.close()
    count = len(others) + 2
    report = json.loads(ok(stave(root, "check", "--json")))
    assert report["ok"] is True and report["checked"]["releases"] == count, report

    archive = tmp_path / "backup.tar"
    ok(stave(root, "export", "--with-key", str(archive), env=PASSPHRASE))
    restored = tmp_path / "elsewhere" / "node"
    ok(stave(restored, "import", str(archive), env=PASSPHRASE))
    report = json.loads(ok(stave(restored, "check", "--json")))
    assert report["ok"] is True and report["checked"]["releases"] == count, report
    async with open_node(restored) as node:
        documents = {r.id: r.document for r in await node.catalog.releases()}
        assert documents == {**others, release["id"]: release, single["id"]: single}
        assert node.store.path(release["cover"]["cid"]).read_bytes() == png(1)
        assert (await node.catalog.release_of_track(manifests[1]["id"])).id == release["id"]  # type: ignore[union-attr]
        latest = await node.catalog.latest_feed()
        assert latest is not None
        feed = json.loads(node.store.path(latest.cid).read_bytes())
        assert {r["id"] for r in feed["releases"]} == set(documents)
        node.store.close()

    # A missing cover is damage `stave check` names.
    (restored / "store" / "files" / release["cover"]["cid"]).unlink()
    report = json.loads(stave(restored, "check", "--json").stdout)
    assert report["ok"] is False
    (problem,) = report["problems"]
    assert problem["kind"] == "missing" and f"release {release['id']}" in problem["message"]

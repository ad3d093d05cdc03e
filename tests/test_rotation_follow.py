"""The follower's side of key rotation (docs/protocol-extensions.md): a feed signed by a key other
than the followed one is accepted only through rotation statements served at the followed
node's recorded origin, and then the follow is re-keyed to the new did in the same transaction;
anything else is rejected whole with a reason and the stored state stays exactly as it was.

The artist's node is a small aiohttp app the test controls (it holds the old and the new key), or
a real node on loopback rotated with `rotate_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.cid import cid_of_bytes
from node.errors import UsageError
from node.federation.follows import FollowService
from node.federation.http import Limits
from node.federation.outcomes import follow_json
from node.feed import build_feed, serialize
from node.identity import Identity
from node.keys import rotate_key
from node.manifest import build_manifest, content_ref
from node.rotation import ROTATION_PATH, build_rotation
from node.settings import Config
from node.signing import sign_document
from node.terms import Terms
from tests.support.federation import (
    FakeNode,
    RunningNode,
    dump_rotation_tables,
    eventually,
    fake_feed,
    fake_node,
    follow_service,
    signed_feed,
    signed_track,
    status_row,
)
from tests.support.shared import FIXTURES

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
LIMITS = Limits(connect_seconds=2, read_seconds=2, total_seconds=2)


@pytest.fixture
async def artist() -> AsyncIterator[FakeNode]:
    async with fake_node() as fake:
        yield fake


@pytest.fixture
async def follows(tmp_path: Path) -> AsyncIterator[FollowService]:
    async with follow_service(tmp_path, limits=LIMITS) as service:
        yield service


def resigned(manifest: dict[str, Any], by: Identity) -> dict[str, Any]:
    """The next revision of a track manifest, claimed by and signed with `by`."""
    unsigned = {key: value for key, value in manifest.items() if key != "proof"}
    unsigned.update(artist=by.did, revision=manifest["revision"] + 1)
    return sign_document(unsigned, by)


def feed_by(
    key: Identity, fake: FakeNode, sequence: int, tracks: Sequence[dict[str, Any]], **extra: Any
) -> bytes:
    """A feed signed by `key` as its own artist, at the fake node's URL, with `extra` members."""
    document = build_feed(
        artist=key.did,
        name="Ada Example",
        url=fake.url,
        sequence=sequence,
        previous=None,
        updated=datetime.now(UTC),
        expires_days=7,
        terms=Terms.from_config(Config()),
        tracks=list(tracks),
        withdrawn=[],
    )
    document.update(extra)
    return serialize(sign_document(document, key, created=document["updated"]))


def statements(*documents: dict[str, Any]) -> bytes:
    return json.dumps(list(documents)).encode()


def store_files(service: FollowService) -> list[str]:
    return sorted(service.federation.node.store.roots())


async def test_a_rotated_key_is_accepted_only_through_a_statement_by_the_followed_key(
    artist: FakeNode, follows: FollowService
) -> None:
    old, new, stranger = artist.artist, Identity.generate(), Identity.generate()
    tracks = [signed_track(old, "One", CID), signed_track(old, "Two", CID)]
    artist.feed = signed_feed(old, sequence=5, tracks=tracks, url=artist.url)
    first = await follows.follow(artist.url)
    assert first.sync.verdict == "accepted"
    root = follows.federation.node.data.root
    before = dump_rotation_tables(root), store_files(follows)
    assert before[0]["websub_subscriptions"] and not before[0]["follow_rotations"]

    renewed = [resigned(t, new) for t in tracks]
    good_feed = feed_by(new, artist, 6, renewed)
    good = build_rotation(old, new.did)
    origin = artist.url + ROTATION_PATH
    unrotated = f"no valid rotation statement leads from {old.did} to {new.did}"
    async with fake_node() as elsewhere:
        # The feed points at a statement on another server: the follower never looks there.
        elsewhere.rotation = statements(good)
        pointing_away = feed_by(new, artist, 6, renewed, rotation=elsewhere.url + ROTATION_PATH)
        attacks: list[tuple[str, bytes, bytes | None, str]] = [
            ("no statement served", good_feed, None, f"{unrotated}: {origin} answered HTTP 404"),
            ("statement only where the feed points", pointing_away, None, "answered HTTP 404"),
            (
                "statement signed by the new key",
                good_feed,
                statements(sign_document({k: v for k, v in good.items() if k != "proof"}, new)),
                f"{unrotated}: rotation statement 1: proof is by",
            ),
            (
                "statement for another artist",
                good_feed,
                statements(build_rotation(stranger, new.did)),
                f"{unrotated}: no rotation statement is for {old.did}",
            ),
            (
                "chain not reaching the feed's artist",
                good_feed,
                statements(build_rotation(old, stranger.did)),
                f"ends at {stranger.did}, not {new.did}",
            ),
            (
                "chain broken: the second link is by a key never named",
                feed_by(stranger, artist, 6, [resigned(t, stranger) for t in tracks]),
                statements(good, build_rotation(stranger, Identity.generate().did)),
                "rotation chain broken at statement 2",
            ),
            (
                "statement not JSON",
                good_feed,
                b"<html>moved</html>",
                "rotation statements is not valid UTF-8 JSON",
            ),
            (
                "statements over the size cap",
                good_feed,
                statements(*[good] * 200),
                "over the limit of 65536",
            ),
            (
                "tracks still signed by the old did",
                feed_by(new, artist, 6, tracks),
                statements(good),
                f"artist '{old.did}' is not {new.did}",
            ),
            (
                "sequence going backwards across the rotation",
                feed_by(new, artist, 4, renewed),
                statements(good),
                "feed sequence 4 is older than the accepted 5 (rollback)",
            ),
            (
                "sequence repeated across the rotation",
                feed_by(new, artist, 5, renewed),
                statements(good),
                "feed sequence 5 was already accepted with different content",
            ),
        ]
        for name, body, served, reason in attacks:
            artist.feed, artist.rotation = body, served
            outcome = await follows.sync(old.did)
            assert (outcome.verdict, outcome.artist) == ("rejected", old.did), name
            assert outcome.reason is not None and reason in outcome.reason, (name, outcome.reason)
            assert "feed is by '" in outcome.reason and "\n" not in outcome.reason, name
            assert (dump_rotation_tables(root), store_files(follows)) == before, name
            status = status_row(root, old.did)
            assert status is not None and status[2] == outcome.reason, name
        # Every statement came from the origin; none was asked where the feed pointed.
        assert (elsewhere.rotation_requests, artist.rotation_requests) == (0, len(attacks))

    # The statement, served at the origin, lets the new key's feed through.
    artist.feed, artist.rotation = good_feed, statements(good)
    outcome = await follows.sync(old.did)
    assert (outcome.verdict, outcome.artist, outcome.sequence) == ("accepted", new.did, 6)
    assert outcome.rotated_from == old.did and outcome.to_json()["rotatedFrom"] == old.did
    catalog = follows.federation.catalog
    assert await catalog.follow(old.did) is None
    follow = await catalog.follow(new.did)
    assert follow is not None and follow.sequence == 6 and follow.last_error is None
    assert follow_json(follow)["did"] == new.did
    assert [f.artist for f in await catalog.follows()] == [new.did]
    listed = await catalog.followed_tracks(new.did)
    assert {(t.id, t.revision, t.manifest["artist"]) for t in listed} == {
        (t["id"], 2, new.did) for t in tracks
    }
    assert await catalog.followed_tracks(old.did) == []
    stored = await catalog.followed_feed(new.did)
    assert stored is not None and stored.body == good_feed
    (rotation,) = await catalog.follow_rotations(new.did)
    assert (rotation.previous_artist, rotation.next_artist) == (old.did, new.did)
    assert rotation.statement == good
    after = dump_rotation_tables(root)
    assert [row[1] for row in after["websub_subscriptions"]] == [new.did]
    # The follow is found by the did it had, too (to unfollow it, say).
    assert (await follows.find(old.did)).artist == new.did

    # From now on the new key is the one followed: its next feed needs no statement, and a feed
    # by the old key is refused even though the statement is still served.
    artist.feed = feed_by(new, artist, 7, renewed[:1])
    outcome = await follows.sync(new.did)
    assert (outcome.verdict, outcome.sequence, outcome.rotated_from) == ("accepted", 7, None)
    artist.feed = signed_feed(old, sequence=8, tracks=tracks, url=artist.url)
    outcome = await follows.sync(new.did)
    assert outcome.verdict == "rejected"
    assert f"no rotation statement is for {new.did}" in (outcome.reason or "")

    # Unfollowing by the old did forgets the follow and its history.
    await follows.unfollow(old.did)
    assert await catalog.follows() == []
    assert dump_rotation_tables(root)["follow_rotations"] == []


async def test_a_chain_of_rotations_is_walked_from_the_did_followed(
    artist: FakeNode, follows: FollowService
) -> None:
    keys = [artist.artist, Identity.generate(), Identity.generate(), Identity.generate()]
    artist.feed = fake_feed(artist, 3, "Early")
    await follows.follow(artist.url)
    chain = [build_rotation(a, b.did) for a, b in pairwise(keys)]
    artist.rotation = statements(*chain)
    # The artist rotated twice since the last sync: the follow goes from the first to the third.
    artist.feed = feed_by(keys[2], artist, 4, [signed_track(keys[2], "Later", CID)])
    outcome = await follows.sync(keys[0].did)
    assert (outcome.verdict, outcome.artist) == ("accepted", keys[2].did)
    catalog = follows.federation.catalog
    history = await catalog.follow_rotations(keys[2].did)
    assert [(r.previous_artist, r.next_artist) for r in history] == [
        (keys[0].did, keys[1].did),
        (keys[1].did, keys[2].did),
    ]
    # Then once more, starting in the middle of the served chain.
    artist.feed = feed_by(keys[3], artist, 5, [signed_track(keys[3], "Latest", CID)])
    outcome = await follows.sync(keys[2].did)
    assert (outcome.verdict, outcome.artist) == ("accepted", keys[3].did)
    history = await catalog.follow_rotations(keys[3].did)
    assert [r.previous_artist for r in history] == [k.did for k in keys[:3]]
    for key in keys[:3]:
        assert (await follows.find(key.did)).artist == keys[3].did


async def post(session: aiohttp.ClientSession, url: str, body: bytes, secret: str) -> int:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    async with session.post(url, data=body, headers={"X-Hub-Signature": signature}) as answer:
        return answer.status


async def test_a_pushed_feed_by_the_new_key_is_checked_the_same_way_and_mirrors_follow(
    artist: FakeNode, tmp_path: Path
) -> None:
    follower = await RunningNode.create(tmp_path / "follower", "Follower")
    try:
        old, new = artist.artist, Identity.generate()
        audio = b"not really audio, but content with a CID " * 100
        cid = cid_of_bytes(audio)
        artist.content[cid] = audio
        manifest = sign_document(
            build_manifest(
                track_id="urn:uuid:9b2f1c64-4a5e-4c1b-9a57-0c1f3e1d2a10",
                revision=1,
                artist=old.did,
                title="Mirrored",
                published="2026-11-26T12:00:00Z",
                duration_seconds=1.5,
                audio=content_ref(cid, "audio/mpeg", len(audio)),
                cover=None,
                terms=Terms.from_config(Config()),
            ),
            old,
        )
        artist.feed = signed_feed(old, sequence=1, tracks=[manifest], url=artist.url)
        service = follower.runtime.follows
        await service.follow(artist.url, mirror=True)
        assert follower.node.store.has(cid)
        root = follower.root
        request = artist.hub_requests[-1]
        callback, secret = request["hub.callback"], request["hub.secret"]

        async with aiohttp.ClientSession() as session:
            # A push by the new key with no statement at the origin: rejected, nothing changes.
            before = dump_rotation_tables(root)
            pushed = feed_by(new, artist, 2, [resigned(manifest, new)])
            assert await post(session, callback, pushed, secret) == 202

            async def rejected() -> bool:
                status = status_row(root, old.did)
                return status is not None and "no valid rotation statement" in (status[2] or "")

            await eventually(rejected, what="the pushed feed to be rejected")
            assert dump_rotation_tables(root) == before

            # With the statement served, the same push is accepted and the follow re-keyed.
            artist.rotation = statements(build_rotation(old, new.did))
            assert await post(session, callback, pushed, secret) == 202

            async def rekeyed() -> bool:
                return await follower.node.catalog.follow(new.did) is not None

            await eventually(rekeyed, what="the follow to be re-keyed")
            assert await follower.node.catalog.follow(old.did) is None
            assert follower.node.store.has(cid)  # the same content, still mirrored

            # The mirror serves the feed under the new did; the old did's path redirects there.
            async with session.get(follower.url + "mirrors") as answer:
                listing = await answer.json()
            assert [(m["artist"], m["sequence"]) for m in listing] == [(new.did, 2)]
            for did in (new.did, old.did):
                async with session.get(f"{follower.url}mirrors/{did}/feed.json") as answer:
                    assert (answer.status, await answer.read()) == (200, pushed), did
                    assert str(answer.url).endswith(f"/mirrors/{new.did}/feed.json")
            async with session.get(follower.url + f"ipfs/{cid}") as answer:
                assert (answer.status, await answer.read()) == (200, audio)

            # Later deliveries come for the new did on the same subscription.
            later = feed_by(new, artist, 3, [resigned(manifest, new)])
            assert await post(session, callback, later, secret) == 202

            async def took_later() -> bool:
                follow = await follower.node.catalog.follow(new.did)
                return follow is not None and follow.sequence == 3

            await eventually(took_later, what="the next push under the new did")
    finally:
        await follower.stop()


async def test_two_nodes_the_artist_rotates_its_key_and_the_follower_follows(
    tmp_path: Path,
) -> None:
    artist = await RunningNode.create(tmp_path / "artist", "Ada Example")
    follower = await RunningNode.create(tmp_path / "follower", "Follower")
    try:
        first = await artist.publisher.add(FIXTURES / "tone.mp3")
        old_did = artist.did
        service = follower.runtime.follows
        await service.follow(artist.url, mirror=True)
        assert [t.id for t in await follower.followed_tracks(old_did)] == [first["id"]]

        # The artist's node stops, rotates its key, and comes back on the same port.
        await artist.stop()
        result = await rotate_key(artist.root)
        assert result.old_did == old_did
        await artist.restart()
        assert artist.did == result.new_did != old_did

        outcome = await service.sync(old_did)
        assert (outcome.verdict, outcome.artist, outcome.rotated_from) == (
            "accepted",
            result.new_did,
            old_did,
        ), outcome.reason
        assert await follower.node.catalog.follow(old_did) is None
        (track,) = await follower.followed_tracks(result.new_did)
        assert (track.id, track.revision) == (first["id"], first["revision"] + 1)
        assert track.manifest["artist"] == result.new_did
        assert follower.node.store.has(first["audio"]["cid"])
        (rotation,) = await follower.node.catalog.follow_rotations(result.new_did)
        assert (rotation.previous_artist, rotation.next_artist) == (old_did, result.new_did)

        # The artist publishes on with the new key; the follower takes it as any feed.
        second = await artist.publisher.add(FIXTURES / "tone.flac")
        outcome = await service.sync(result.new_did)
        assert outcome.verdict == "accepted", outcome.reason
        ids = {t.id for t in await follower.followed_tracks(result.new_did)}
        assert ids == {first["id"], second["id"]}

        # Someone else takes over the artist's address with a fresh key: the real statements
        # lead only to the artist's new key, and one the fresh key signs itself counts for
        # nothing. Refused, and the follower's state stays as it was.
        served = await body_of(artist, ROTATION_PATH)
        await artist.stop()
        before = dump_rotation_tables(follower.root), sorted(follower.node.store.roots())
        thief = Identity.generate()
        forged = {
            "/feed.json": signed_feed(
                thief, sequence=9, tracks=[signed_track(thief, "Not Ada", CID)], url=artist.url
            )
        }
        for rotation in (served, statements(build_rotation(thief, Identity.generate().did))):
            async with serve_on(artist.port, {**forged, "/" + ROTATION_PATH: rotation}):
                outcome = await service.sync(result.new_did)
            assert outcome.verdict == "rejected"
            assert f"leads from {result.new_did} to {thief.did}" in (outcome.reason or "")
            after = dump_rotation_tables(follower.root), sorted(follower.node.store.roots())
            assert after == before
    finally:
        await follower.stop()
        await artist.stop()


async def body_of(node: RunningNode, path: str) -> bytes:
    """The body of a 200 answer to GET `path` on a running node."""
    async with aiohttp.ClientSession() as session, session.get(node.url + path) as answer:
        assert answer.status == 200, path
        return await answer.read()


@asynccontextmanager
async def serve_on(port: int, bodies: dict[str, bytes]) -> AsyncIterator[None]:
    """A server on 127.0.0.1:`port` answering each path of `bodies` with its JSON body."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.path], content_type="application/json")

    app = web.Application()
    for path in bodies:
        app.router.add_get(path, answer)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def test_a_key_replaced_without_a_statement_is_refused(
    artist: FakeNode, follows: FollowService
) -> None:
    """The artist's node answers with a fresh key's feed (a stolen domain, say) and serves no
    statement, or one the fresh key signed itself: refused, and the follow stays as it was."""
    artist.feed = fake_feed(artist, 2, "Honest")
    await follows.follow(artist.url)
    root = follows.federation.node.data.root
    before = dump_rotation_tables(root)
    thief = Identity.generate()
    artist.feed = feed_by(thief, artist, 3, [signed_track(thief, "Not Ada", CID)])
    for served in (None, statements(build_rotation(thief, Identity.generate().did))):
        artist.rotation = served
        outcome = await follows.sync(artist.artist.did)
        assert outcome.verdict == "rejected"
        assert "no valid rotation statement leads from" in (outcome.reason or "")
        assert dump_rotation_tables(root) == before


async def test_following_again_after_a_rotation_goes_through_the_statement(
    artist: FakeNode, follows: FollowService
) -> None:
    """`stave follow` of a followed node whose node document now names the new key: the follow
    moves to it through the statement, or the command refuses and nothing changes."""
    artist.feed = fake_feed(artist, 2, "Honest")
    await follows.follow(artist.url)
    root = follows.federation.node.data.root
    before = dump_rotation_tables(root)
    old, new = artist.artist, Identity.generate()
    artist.artist = new  # the node document is signed by, and names, the new key now
    artist.feed = feed_by(new, artist, 3, [signed_track(new, "Renewed", CID)])
    with pytest.raises(UsageError) as refused:
        await follows.follow(artist.url)
    assert f"the node now names {new.did}, not the followed {old.did}" in str(refused.value)
    assert "answered HTTP 404" in str(refused.value)
    assert dump_rotation_tables(root) == before
    artist.rotation = statements(build_rotation(old, new.did))
    outcome = await follows.follow(artist.url, mirror=False)
    assert outcome.follow.artist == new.did and outcome.follow.sequence == 3
    assert [f.artist for f in await follows.federation.catalog.follows()] == [new.did]


async def test_a_rotation_to_a_did_followed_on_its_own_is_refused(
    artist: FakeNode, follows: FollowService
) -> None:
    old, new = artist.artist, Identity.generate()
    artist.feed = fake_feed(artist, 2, "Honest")
    await follows.follow(artist.url)
    async with follows.federation.transaction() as tx:
        await tx.add_follow(
            artist=new.did,
            name="Someone",
            url="http://127.0.0.1:9/",
            feed_url="http://127.0.0.1:9/feed.json",
            hub_url=None,
            mirror=False,
            followed_at="2026-11-26T12:00:00Z",
        )
    root = follows.federation.node.data.root
    before = dump_rotation_tables(root)
    artist.feed = feed_by(new, artist, 3, [signed_track(new, "Renewed", CID)])
    artist.rotation = statements(build_rotation(old, new.did))
    outcome = await follows.sync(old.did)
    assert outcome.verdict == "rejected"
    assert outcome.reason == (
        f"rotation from {old.did} to {new.did}: {new.did}: already followed on its own;"
        " unfollow it first"
    )
    assert dump_rotation_tables(root) == before

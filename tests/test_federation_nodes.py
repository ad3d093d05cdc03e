"""Three real nodes on 127.0.0.1: an artist, a follower that mirrors, and a listener.

The artist publishes; the mirror sees each new track through WebSub alone (its poll interval is
an hour); a withdrawal disappears from both followers and from the mirror's store; with the
artist's node stopped the mirror keeps serving the catalog, verifiably, and the listener fetches
the content from the mirror it learned about.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from node.cid import CID, UnixFSImporter
from node.feed import FollowState, verify_feed
from node.web.state import METRICS
from tests.support.audio import silent_wav
from tests.support.cli import stave_async as stave
from tests.support.federation import RunningNode, eventually
from tests.support.shared import FIXTURES


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, RunningNode, RunningNode]]:
    artist = await RunningNode.create(tmp_path / "artist", "Ada Example")
    mirror = await RunningNode.create(tmp_path / "mirror", "Mira Mirror")
    listener = await RunningNode.create(tmp_path / "listener", "Lee Listener")
    try:
        yield artist, mirror, listener
    finally:
        for running in (listener, mirror, artist):
            await running.stop()


def cid_of(data: bytes) -> str:
    importer = UnixFSImporter()
    importer.update(data)
    return str(importer.finish().root)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as response:
        return response.status, await response.read()


async def subscribed(node: RunningNode, artist: str) -> bool:
    subscriptions = await node.node.catalog.websub_subscriptions(artist)
    return any(s.mode == "subscribe" and s.expires_at for s in subscriptions)


async def test_three_nodes_follow_mirror_withdraw_and_outlive_the_artist(
    nodes: tuple[RunningNode, RunningNode, RunningNode], tmp_path: Path
) -> None:
    artist, mirror, listener = nodes
    first = await artist.publisher.add(FIXTURES / "tone.mp3")

    # The mirror follows the artist with the real command; the hub confirms its subscription.
    status, out, err = await stave(mirror.root, "follow", artist.url, "--mirror", "--json")
    assert status == 0, err
    followed = json.loads(out)
    assert (followed["did"], followed["mirror"], followed["tracks"]) == (artist.did, True, 1)
    assert followed["sync"]["verdict"] == "accepted"
    await eventually(lambda: subscribed(mirror, artist.did), what="the mirror's subscription")
    assert mirror.node.store.has(first["audio"]["cid"])

    # The listener follows the artist (no mirror) and the mirror's own artist, learning that
    # the mirror's node mirrors the artist.
    runtime = listener.runtime
    await runtime.follows.follow(artist.url)
    await runtime.follows.follow(mirror.url)
    assert await listener.node.catalog.known_mirrors(artist.did) == [mirror.url]
    await eventually(lambda: subscribed(listener, artist.did), what="the listener's subscription")

    feed_pulls = artist.app[METRICS].requests("/feed.json", 200)

    # Each new track reaches both followers through WebSub, content mirrored, no manual sync.
    second = await artist.publisher.add(FIXTURES / "tone.flac")
    big = await artist.publisher.add(silent_wav(tmp_path / "long.wav", seconds=20))
    assert big["audio"]["size"] > 1024 * 1024  # a dag-pb file of several blocks
    new_ids = {second["id"], big["id"]}

    async def has_new_tracks(node: RunningNode) -> bool:
        return new_ids <= {t.id for t in await node.followed_tracks(artist.did)}

    await eventually(lambda: has_new_tracks(mirror), what="the mirror to see the new tracks")
    await eventually(lambda: has_new_tracks(listener), what="the listener to see them")

    async def mirrored() -> bool:
        return all(mirror.node.store.has(m["audio"]["cid"]) for m in (first, second, big))

    await eventually(mirrored, what="the mirror to hold the new content")
    assert artist.app[METRICS].requests("/feed.json", 200) == feed_pulls  # pushed, not pulled

    # A withdrawal disappears from both followers and from the mirror's store and gateway.
    await artist.publisher.withdraw(first["id"])

    async def withdrawn(node: RunningNode) -> bool:
        return first["id"] not in {t.id for t in await node.followed_tracks(artist.did)}

    await eventually(lambda: withdrawn(mirror), what="the withdrawal at the mirror")
    await eventually(lambda: withdrawn(listener), what="the withdrawal at the listener")
    assert not mirror.node.store.has(first["audio"]["cid"])
    # Its cover is the same image as the second track's: still referenced, so kept.
    assert first["cover"]["cid"] == second["cover"]["cid"]
    assert mirror.node.store.has(second["cover"]["cid"])
    async with aiohttp.ClientSession() as session:
        status_code, _ = await fetch(session, f"{mirror.url}ipfs/{first['audio']['cid']}")
        assert status_code == 404

    # The artist's node stops; the mirror keeps serving the catalog, verifiably.
    last_feed = await artist.node.catalog.latest_feed()
    assert last_feed is not None
    with artist.node.store.open(last_feed.cid) as source:
        origin_bytes = source.read()
    await artist.stop()

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await fetch(session, artist.url + "feed.json")
        status_code, body = await fetch(session, f"{mirror.url}mirrors/{artist.did}/feed.json")
        assert status_code == 200
        assert body == origin_bytes  # byte for byte
        feed = verify_feed(body, FollowState(artist.did), max_bytes=8 * 1024**2)
        assert [t["id"] for t in feed["tracks"]] == [big["id"], second["id"]]
        served = [
            m[part]["cid"] for m in feed["tracks"] for part in ("audio", "cover") if part in m
        ]
        assert len(served) == 3  # two audio files and the flac's cover
        for cid in served:
            status_code, content = await fetch(session, f"{mirror.url}ipfs/{cid}")
            assert status_code == 200
            assert cid_of(content) == str(CID.parse(cid))
        status_code, listing = await fetch(session, f"{mirror.url}mirrors")
        assert [entry["artist"] for entry in json.loads(listing)] == [artist.did]

    # The listener turns mirroring on while the artist is down: the content comes from the
    # mirror it learned about, verified against the CIDs.
    assert await runtime.follows.set_mirror(artist.did, True) == []
    for manifest in (second, big):
        assert listener.node.store.has(manifest["audio"]["cid"])
    # And a sync with the artist down reads the feed the mirror re-serves.
    outcome = await runtime.follows.sync(artist.did)
    assert outcome.verdict == "unchanged", outcome
    assert outcome.source == f"{mirror.url}mirrors/{artist.did}/feed.json"

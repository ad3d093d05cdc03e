"""A hostile node on loopback serves bad feeds in turn; each is rejected with its reason and the
follower's stored state (every row of the follow tables, and its store) stays exactly as it was.

The attacker's server is a small aiohttp app this test controls; it holds the followed artist's
real key, so only the protocol's checks — not a broken signature by accident — stand in the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from node.catalog import FollowRecord
from node.federation.follows import FollowService
from node.federation.http import Limits
from node.federation.outcomes import follow_json
from node.identity import Identity
from tests.support.federation import (
    FakeNode,
    dump_follow_tables,
    fake_feed,
    fake_node,
    follow_service,
    signed_feed,
    signed_track,
    status_row,
)

CID_A = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CID_B = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"
MAX_FEED_BYTES = 64 * 1024
LIMITS = Limits(connect_seconds=2, read_seconds=2, total_seconds=2)


@pytest.fixture
async def attacker() -> AsyncIterator[FakeNode]:
    async with fake_node() as evil:
        yield evil


@pytest.fixture
async def follows(tmp_path: Path) -> AsyncIterator[FollowService]:
    async with follow_service(
        tmp_path, limits=LIMITS, federation__max_feed_bytes=MAX_FEED_BYTES
    ) as service:
        yield service


def store_files(service: FollowService) -> list[str]:
    return sorted(service.federation.node.store.roots())


async def test_every_attack_is_rejected_whole_and_changes_nothing(
    attacker: FakeNode, follows: FollowService
) -> None:
    evil = attacker
    evil.feed = fake_feed(evil, 5, "Honest one", "Honest two")
    outcome = await follows.follow(evil.url)
    assert outcome.sync.verdict == "accepted" and outcome.sync.sequence == 5
    root = follows.federation.node.data.root
    accepted_bytes = evil.feed
    before = dump_follow_tables(root), store_files(follows)
    assert len(before[0]["follow_tracks"]) == 2

    other = Identity.generate()
    next_feed = fake_feed(evil, 6, "Next")
    tampered = next_feed.replace(b"Next", b"Nixt", 1)
    assert len(tampered) == len(next_feed) and tampered != next_feed
    stranger = signed_track(other, "Someone else's", CID_B)
    long_ago = datetime.now(UTC) - timedelta(days=10)
    huge = fake_feed(evil, 6, *(f"Padding {i:05d} " + "x" * 400 for i in range(200)))
    assert len(huge) > MAX_FEED_BYTES

    attacks: list[tuple[str, bytes, str, str]] = [
        ("rollback", fake_feed(evil, 4, "Older"), "plain", "older than the accepted 5 (rollback)"),
        ("one byte changed", tampered, "plain", "signature does not verify"),
        (
            "another key",
            signed_feed(other, sequence=6, tracks=[], url=evil.url, artist=evil.artist.did),
            "plain",
            f"not {evil.artist.did}",
        ),
        (
            "another artist's feed",
            signed_feed(other, sequence=6, tracks=[], url=evil.url),
            "plain",
            f"feed is by '{other.did}', not the followed {evil.artist.did}",
        ),
        (
            "mix and match",
            signed_feed(
                evil.artist,
                sequence=6,
                tracks=[signed_track(evil.artist, "Mine", CID_A), stranger],
                url=evil.url,
            ),
            "plain",
            f"artist '{other.did}' is not {evil.artist.did}",
        ),
        ("expired", fake_feed(evil, 6, "Stale", updated=long_ago), "plain", "feed expired at"),
        ("oversized", huge, "plain", f"over the limit of {MAX_FEED_BYTES}"),
        ("oversized, chunked", huge, "chunked", f"larger than the limit of {MAX_FEED_BYTES}"),
        ("slow drip", next_feed, "drip", "no complete answer within 2 s"),
        (
            "same sequence, other content",
            fake_feed(evil, 5, "Rewritten history"),
            "plain",
            "feed sequence 5 was already accepted with different content",
        ),
    ]
    for name, body, mode, reason in attacks:
        evil.feed, evil.mode = body, mode
        outcome = await follows.sync(evil.artist.did)
        assert outcome.verdict == "rejected", name
        assert outcome.reason is not None and reason in outcome.reason, (name, outcome.reason)
        assert (dump_follow_tables(root), store_files(follows)) == before, name
        status = status_row(root, evil.artist.did)
        assert status is not None and status[2] == outcome.reason, name  # recorded
        follow = await follows.federation.catalog.follow(evil.artist.did)
        assert isinstance(follow, FollowRecord)
        assert follow_json(follow)["lastError"] == outcome.reason  # and shown
    assert evil.hits[1:] == [mode for _, _, mode, _ in attacks]  # each one really fetched

    # The honest next feed is still accepted afterwards, and the error is cleared.
    evil.feed, evil.mode = next_feed, "plain"
    outcome = await follows.sync(evil.artist.did)
    assert (outcome.verdict, outcome.sequence, outcome.removed) == ("accepted", 6, outcome.removed)
    assert len(outcome.removed) == 2
    after = dump_follow_tables(root)
    assert after != before[0]
    assert [row[4] for row in after["follow_tracks"]] == ["Next"]
    follow = await follows.federation.catalog.follow(evil.artist.did)
    assert follow is not None and follow.last_error is None and follow.failures == 0
    stored = await follows.federation.catalog.followed_feed(evil.artist.did)
    assert stored is not None and stored.body == next_feed != accepted_bytes


async def test_a_pushed_forgery_is_verified_like_a_pulled_one(
    attacker: FakeNode, follows: FollowService
) -> None:
    evil = attacker
    evil.feed = fake_feed(evil, 2, "Honest")
    await follows.follow(evil.url)
    root = follows.federation.node.data.root
    before = dump_follow_tables(root)
    forged = fake_feed(evil, 3, "Forged").replace(b"Forged", b"Forgeo", 1)
    outcome = await follows.sync(evil.artist.did, pushed=forged)
    assert outcome.verdict == "rejected" and "signature does not verify" in (outcome.reason or "")
    assert dump_follow_tables(root) == before
    good = fake_feed(evil, 3, "Pushed")
    outcome = await follows.sync(evil.artist.did, pushed=good)
    assert (outcome.verdict, outcome.source) == ("accepted", "push")

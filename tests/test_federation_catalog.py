"""The follows part of the catalog: a feed replaces the stored one only if the stored one is
still what the sync verified against; feeds accepted together share a transaction."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.catalog import open_catalog
from node.federation.context import Federation
from node.federation.follows import FollowService
from node.federation.writer import FeedWriter
from tests.support.federation import (
    FakeNode,
    add_follow,
    count_transactions,
    dump_follow_tables,
    fake_feed,
    fake_node,
    followed_fakes,
    follower_federation,
    replacement,
)


async def test_only_replacements_of_what_is_stored_are_made(tmp_path: Path) -> None:
    async with fake_node() as one, fake_node() as two, open_catalog(tmp_path / "c.sqlite") as c:
        a, b = one.artist.did, two.artist.did
        async with c.transaction() as tx:
            await add_follow(tx, a)
            await add_follow(tx, b)
            assert await tx.accept_feeds(
                [
                    replacement(a, fake_feed(one, 1, "A1"), None),
                    replacement(b, fake_feed(two, 1, "B1"), (7, "bafkqaaa")),  # not stored
                    replacement("did:key:z6MkNobody", fake_feed(two, 1, "B1"), None),
                ]
            ) == [True, False, False]
        stored = await c.followed_feed(a)
        assert stored is not None and stored.sequence == 1
        assert await c.followed_feed(b) is None
        assert [t.title for t in await c.followed_tracks()] == ["A1"]
        async with c.transaction() as tx:
            second = replacement(a, fake_feed(one, 2, "A2", "A3"), (1, stored.cid))
            assert await tx.accept_feeds([second, replacement(b, fake_feed(two, 1, "B1"), None)])
        assert sorted(t.title for t in await c.followed_tracks()) == ["A2", "A3", "B1"]
        async with c.transaction() as tx:  # replacing a feed that was replaced since: refused
            assert not await tx.accept_feed(
                replacement(a, fake_feed(one, 3, "A4"), (1, stored.cid))
            )
        assert sorted(t.title for t in await c.followed_tracks(a)) == ["A2", "A3"]


@pytest.fixture
async def two_processes(
    tmp_path: Path,
) -> AsyncIterator[tuple[FakeNode, FollowService, FollowService]]:
    """Two follow services over one data directory, each with its own catalog connection, as
    `stave run` and a `stave sync` in another process have."""
    async with (
        fake_node() as fake,
        follower_federation(tmp_path) as federation,
        open_catalog(federation.node.data.catalog_path) as other_catalog,
    ):
        second = Federation(federation.node, other_catalog, federation.client)
        yield fake, FollowService(federation), FollowService(second)


async def test_a_sync_that_raced_another_verifies_again(
    two_processes: tuple[FakeNode, FollowService, FollowService],
) -> None:
    fake, here, there = two_processes
    fake.feed = fake_feed(fake, 1, "One")
    await here.follow(fake.url)
    fake.feed = fake_feed(fake, 2, "One", "Two")
    assert (await here.sync(fake.artist.did)).sequence == 2
    follow = await there.federation.catalog.follow(fake.artist.did)
    assert follow is not None
    # What `there` saw before `here` accepted anything: its fast path is out of date.
    stale = dataclasses.replace(follow, sequence=None, etag=None)
    root = here.federation.node.data.root

    fake.feed = fake_feed(fake, 1, "One")  # a rollback, acceptable only to the stale view
    before = dump_follow_tables(root)
    outcome = await there.sync(fake.artist.did, follow=stale)
    assert outcome.verdict == "rejected"
    assert "older than the accepted 2 (rollback)" in (outcome.reason or "")
    assert dump_follow_tables(root) == before

    stored = await there.federation.catalog.followed_feed(fake.artist.did)
    assert stored is not None
    fake.feed = stored.body  # the very feed accepted meanwhile
    assert (await there.sync(fake.artist.did, follow=stale)).verdict == "unchanged"

    fake.feed = fake_feed(fake, 3, "One", "Two", "Three")
    outcome = await there.sync(fake.artist.did, follow=stale)
    assert (outcome.verdict, outcome.sequence) == ("accepted", 3)
    # (every fake feed's tracks have fresh ids: all three new, both earlier ones gone)
    assert (len(outcome.added), len(outcome.removed)) == (3, 2)


async def test_feeds_accepted_together_share_transactions(tmp_path: Path) -> None:
    async with follower_federation(tmp_path) as federation:
        node = federation.node
        fakes = await followed_fakes(federation, 12)
        transactions = count_transactions(federation)
        writer = FeedWriter(federation)
        unfollowed = replacement("did:key:z6MkNobody", fake_feed(fakes[0], 1, "X"), None)
        stored = await asyncio.gather(
            *(
                writer.accept(replacement(f.artist.did, fake_feed(f, 1, "Song"), None))
                for f in fakes
            ),
            writer.accept(unfollowed),
        )
        assert stored == [True] * 12 + [False]
        # The first feed went alone; the twelve that came while it was written, together.
        assert len(transactions) == 2
        assert len(await node.catalog.followed_tracks()) == 12

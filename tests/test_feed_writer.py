"""The feed writer's group commit during a bulk sync: verified feeds come one by one, and while
more are being verified the writer lingers for them instead of writing each alone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from node.federation.writer import FeedWriter
from tests.support.federation import (
    FakeNode,
    count_transactions,
    fake_feed,
    followed_fakes,
    follower_federation,
    replacement,
)

GAP = 0.02  # seconds between verified feeds: far longer than writing one


async def _accept_spaced(tmp_path: Path, more_coming: bool) -> tuple[list[bool], int, float]:
    """Five feeds accepted GAP apart: what was stored, in how many transactions, how long."""
    async with follower_federation(tmp_path) as federation:
        node = federation.node
        fakes = await followed_fakes(federation, 5)
        transactions = count_transactions(federation)
        writer = FeedWriter(federation, more_coming=lambda: more_coming)
        writer.LINGER = 2.0  # longer than all five take to come, so that timing cannot matter

        async def one(index: int, fake: FakeNode) -> bool:
            await asyncio.sleep(index * GAP)
            return await writer.accept(
                replacement(fake.artist.did, fake_feed(fake, 1, "Song"), None)
            )

        started = time.perf_counter()
        stored = await asyncio.gather(*(one(i, f) for i, f in enumerate(fakes)))
        elapsed = time.perf_counter() - started
        assert len(await node.catalog.followed_tracks()) == 5
    return stored, len(transactions), elapsed


async def test_feeds_verified_one_by_one_share_a_transaction(tmp_path: Path) -> None:
    stored, transactions, _ = await _accept_spaced(tmp_path, more_coming=True)
    assert stored == [True] * 5
    assert transactions == 1


async def test_a_feed_with_nothing_else_coming_is_written_at_once(tmp_path: Path) -> None:
    stored, transactions, elapsed = await _accept_spaced(tmp_path, more_coming=False)
    assert stored == [True] * 5
    assert transactions == 5
    assert elapsed < 1.0  # never the 2 s linger

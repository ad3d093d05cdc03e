"""The feed writer's group commit during a bulk sync: verified feeds come one by one, and while
more are being verified the writer lingers for them instead of writing each alone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from node.datadir import open_node
from node.federation.context import Federation
from node.federation.follows import FeedWriter
from node.federation.http import OutboundClient
from node.identity import Identity
from tests.federation_support import FakeNode, fake_feed, make_node_dir
from tests.test_federation_catalog import add_follow, replacement

GAP = 0.02  # seconds between verified feeds: far longer than writing one


async def _accept_spaced(tmp_path: Path, more_coming: bool) -> tuple[list[bool], int, float]:
    """Five feeds accepted GAP apart: what was stored, in how many transactions, how long."""
    root = await make_node_dir(tmp_path / "follower", 9, "Follower")
    async with open_node(root) as node, OutboundClient(allow_private=True) as client:
        federation = Federation(node, node.catalog, client)
        fakes = [FakeNode(Identity.generate(), url="http://127.0.0.1:9/") for _ in range(5)]
        async with federation.transaction() as tx:
            for fake in fakes:
                await add_follow(tx, fake.artist.did)
        transactions = []
        real = federation.transaction

        def counted() -> Any:
            transactions.append(1)
            return real()

        federation.transaction = counted  # type: ignore[method-assign]
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
        node.store.close()
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

"""Pull as the fallback: a running node polls followed feeds with conditional GETs, takes what
changed, and backs off exponentially, with jitter, from a node that keeps failing."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest

from node.federation.runtime import backoff_delay, poll_delay
from tests.support.federation import RunningNode, eventually, fake_feed, fake_node


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    random.seed(7)
    for failures, (low, high) in {1: (30, 60), 2: (60, 120), 3: (120, 240), 4: (240, 480)}.items():
        delays = [backoff_delay(failures, 900) for _ in range(200)]
        assert low <= min(delays) and max(delays) <= high
        assert max(delays) - min(delays) > (high - low) / 2  # jitter spreads retries
    assert backoff_delay(40, 900) <= 6 * 3600  # capped
    assert 3 <= backoff_delay(2, 3) <= 6  # never longer than needed for a short interval
    assert all(810 <= poll_delay(900) <= 990 for _ in range(100))


@pytest.mark.slow
async def test_polling_uses_conditional_gets_and_backs_off(tmp_path: Path) -> None:
    follower = await RunningNode.create(
        tmp_path / "follower", "Follower", federation__poll_interval_seconds=1
    )
    try:
        async with fake_node() as fake:  # its hub never confirms: pull is all there is
            fake.feed = fake_feed(fake, 1, "First")
            await follower.runtime.follows.follow(fake.url)
            follower.runtime.wake()

            async def polled(count: int) -> bool:
                return fake.hits.count("304") >= count

            await eventually(lambda: polled(2), what="two conditional GETs answered 304")
            fake.feed = fake_feed(fake, 2, "First", "Second")

            async def at(sequence: int) -> bool:
                follow = await follower.node.catalog.follow(fake.artist.did)
                return follow is not None and follow.sequence == sequence

            await eventually(lambda: at(2), what="the changed feed to be polled")

            fake.mode = "error"
            start = len(fake.hits)
            seen: list[float] = []  # when each failed poll was first noticed

            async def failed(count: int) -> bool:
                while len(seen) < fake.hits[start:].count("500"):
                    seen.append(time.monotonic())
                return len(seen) >= count

            await eventually(lambda: failed(4), timeout=30, what="four failed polls")
            follow = await follower.node.catalog.follow(fake.artist.did)
            assert follow is not None and follow.failures >= 3
            assert follow.last_error is not None and "HTTP 500" in follow.last_error
            assert follow.sequence == 2  # a failure changes nothing
            # Waits of [0.5, 1], [1, 2], [2, 4] s after failures 1, 2, 3 — not the 1 s interval.
            gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
            assert gaps[2] >= 1.8 and gaps[2] > gaps[0], gaps
    finally:
        await follower.stop()

"""The background work of a running node: sync followed feeds, keep subscriptions, deliver.

- Push first: a signed WebSub delivery triggers a sync of that artist at once.
- Pull as the fallback: each followed feed is fetched with a conditional GET every
  `federation.poll_interval_seconds` (±10 %), and after a failure with exponential backoff and
  jitter; the guarded client limits requests in flight per host.
- Subscriptions are renewed before their lease runs out; an unconfirmed request is repeated.
- As the hub of its own feed, the node notices every new feed (the catalog's latest sequence,
  whichever process published it) and delivers it to its subscribers, retrying failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from node.catalog import FollowRecord
from node.errors import StaveError, UsageError
from node.federation.context import Federation
from node.federation.follows import FollowService
from node.federation.hub import Hub, SubscriptionRequest
from node.federation.outcomes import SyncOutcome
from node.federation.subscriber import PENDING_SECONDS, Subscriber
from node.feed import parse_timestamp

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
FOLLOWS_REFRESH_SECONDS = 5.0
SUBSCRIPTIONS_SECONDS = 60.0
MIRRORS_REFRESH_SECONDS = 24 * 3600.0
BACKOFF_MAX_SECONDS = 6 * 3600.0
MAX_SYNCS_IN_FLIGHT = 32
MAX_PENDING_VERIFICATIONS = 64
SUBSCRIBE_BACKOFF_MAX = 24 * 3600.0


def backoff_delay(failures: int, interval: float) -> float:
    """Seconds before the next poll after `failures` failures in a row: exponential from
    min(interval, 60 s), capped at max(interval, 6 h), with jitter over its upper half."""
    base = min(interval, 60.0)
    delay = min(max(interval, BACKOFF_MAX_SECONDS), base * 2 ** max(0, failures - 1))
    return random.uniform(delay / 2, delay)


def poll_delay(interval: float) -> float:
    """Seconds before the next poll after a success: the interval ±10 %."""
    return random.uniform(interval * 0.9, interval * 1.1)


def release_free_memory() -> None:
    """Give the memory malloc holds free back to the system (glibc's `malloc_trim`; nothing
    with another C library). Freed memory otherwise stays resident: after a node's first
    subscription round and feed load, trimming it took about 1.4 MB off its idle size."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def _epoch(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text, "time").timestamp()
    except StaveError:
        return None


class FederationRuntime:
    """Runs a node's federation in the background; `start()`, then `close()`."""

    def __init__(self, federation: Federation, *, tick: float = TICK_SECONDS) -> None:
        self.federation = federation
        self.subscriber = Subscriber(federation)
        self.follows = FollowService(federation, subscriber=self.subscriber)
        self.hub = Hub(federation)
        self.tick = tick
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_poll: dict[str, float] = {}
        self._mirrors_learned: dict[str, float] = {}
        self._syncing: set[str] = set()
        self._subscribe_tries: dict[str, tuple[int, float]] = {}
        self._failures: dict[str, int] = {}  # failed polls in a row, per artist
        self._verifying = 0
        self._in_flight = asyncio.Semaphore(MAX_SYNCS_IN_FLIGHT)
        self._wake = asyncio.Event()

    @property
    def interval(self) -> float:
        seconds: int = self.federation.node.config["federation.poll_interval_seconds"]
        return float(seconds)

    def start(self) -> None:
        self.spawn(self._poll_loop(), "polling")
        self.spawn(self._hub_loop(), "hub deliveries")
        self.spawn(self._subscription_loop(), "subscriptions")

    async def close(self) -> None:
        """Cancel every background task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self.follows.close)

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run `work` in the background, logging (never raising) what makes it fail."""

        async def guarded() -> Any:
            try:
                return await work
            except asyncio.CancelledError:
                raise
            except Exception:  # the outermost handler of a background task: log, keep running
                log.exception("federation: %s failed", what)
                return None

        task = asyncio.get_running_loop().create_task(guarded(), name=f"federation: {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- push -----------------------------------------------------------------------------------

    def pushed(self, artist: str, body: bytes) -> asyncio.Task[Any]:
        """A signed delivery arrived for `artist`: verify and take it in the background."""
        return self.spawn(self._sync_pushed(artist, body), f"delivery for {artist}")

    async def _sync_pushed(self, artist: str, body: bytes) -> SyncOutcome | None:
        try:
            outcome = await self.follows.sync(artist, pushed=body)
        except UsageError:  # unfollowed since the delivery arrived
            return None
        self._next_poll[outcome.artist] = time.monotonic() + poll_delay(self.interval)
        if outcome.rotated_from is not None:
            self.wake()  # the follow goes by a new did: poll it under that one
        return outcome

    def verify_intent(self, request: SubscriptionRequest) -> asyncio.Task[Any] | None:
        """Verify a subscription request's intent in the background; None, doing nothing, when
        too many verifications are already under way (the hub route then answers 503)."""
        if self._verifying >= MAX_PENDING_VERIFICATIONS:
            return None
        self._verifying += 1

        async def verify() -> bool:
            try:
                return await self.hub.verify_intent(request)
            finally:
                self._verifying -= 1

        return self.spawn(verify(), f"intent of {request.callback}")

    def wake(self) -> None:
        """Look at the follows again now (after a follow added by this process, say)."""
        self._wake.set()

    # --- pull -----------------------------------------------------------------------------------

    def _first_poll(self, follow: FollowRecord, now: float) -> float:
        """When to poll a follow first: one interval after its last sync, or soon when it has
        never synced or failed last time (spread out so a restart does not poll all at once)."""
        soon = now + random.uniform(0, min(self.interval, 10.0))
        if follow.failures:
            last = _epoch(follow.checked_at) or time.time()
            return now + max(
                0.0, last + backoff_delay(follow.failures, self.interval) - time.time()
            )
        synced = _epoch(follow.synced_at)
        if synced is None:
            return soon
        return max(soon, now + synced + self.interval - time.time())

    async def _poll_loop(self) -> None:
        """Poll each follow when its time comes. Between refreshes only the schedule is kept,
        not the follows' records (1,000 of them are over 1 MB): they are read again when some
        are due."""
        refreshed = -FOLLOWS_REFRESH_SECONDS
        while True:
            now = time.monotonic()
            if now - refreshed >= FOLLOWS_REFRESH_SECONDS or self._wake.is_set():
                self._wake.clear()
                self._schedule(await self.federation.catalog.follows(), now)
                refreshed = now
            due_now = {
                artist
                for artist, at in self._next_poll.items()
                if at <= now and artist not in self._syncing
            }
            if due_now:
                due = [
                    f
                    for f in await self.federation.catalog.follows()
                    if f.artist in due_now and f.artist not in self._syncing
                ]
                if due:
                    self._syncing.update(f.artist for f in due)
                    self.spawn(self._poll(due), f"poll of {len(due)} feed(s)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)

    def _schedule(self, follows: list[FollowRecord], now: float) -> None:
        """Forget the follows that are gone; give each new one its first poll."""
        known = {f.artist for f in follows}
        for artist in list(self._next_poll):
            if artist not in known:
                del self._next_poll[artist]
                self._failures.pop(artist, None)
        for follow in follows:
            if follow.artist not in self._next_poll:
                self._next_poll[follow.artist] = self._first_poll(follow, now)

    async def poll_now(self, follows: list[FollowRecord]) -> list[SyncOutcome]:
        """Poll these follows now and record how it went (one status transaction)."""
        self._syncing.update(f.artist for f in follows)
        return await self._poll(follows)

    async def _poll(self, follows: list[FollowRecord]) -> list[SyncOutcome]:
        try:
            outcomes = await asyncio.gather(*(self._poll_one(f) for f in follows))
            await self.follows.record(outcomes)
        finally:
            self._syncing.difference_update(f.artist for f in follows)
        for follow, outcome in zip(follows, outcomes, strict=True):
            now = time.monotonic()
            if outcome.verdict == "rejected":
                failures = self._failures.get(follow.artist, follow.failures) + 1
                self._failures[follow.artist] = failures
                self._next_poll[follow.artist] = now + backoff_delay(failures, self.interval)
                log.info("sync of %s rejected: %s", follow.artist, outcome.reason)
            else:
                self._failures[follow.artist] = 0
                self._next_poll[follow.artist] = now + poll_delay(self.interval)
            if outcome.rotated_from is not None:
                self.wake()  # the follow goes by a new did: poll it under that one
        return list(outcomes)

    async def _poll_one(self, follow: FollowRecord) -> SyncOutcome:
        async with self._in_flight:
            current = await self.federation.catalog.follow(follow.artist) or follow
            outcome = await self.follows.sync(follow.artist, follow=current, record=False)
            learned = self._mirrors_learned.get(follow.artist)
            if outcome.verdict != "rejected" and (
                learned is None or time.monotonic() - learned > MIRRORS_REFRESH_SECONDS
            ):
                self._mirrors_learned[follow.artist] = time.monotonic()
                # After a key rotation the follow is stored under the feed's new did.
                latest = await self.federation.catalog.follow(outcome.artist) or current
                await self.follows.learn_mirrors(latest)
            return outcome

    # --- subscriptions and the hub ------------------------------------------------------------

    async def _subscription_loop(self) -> None:
        await asyncio.sleep(min(1.0, self.tick * 2))
        while True:
            await self.keep_subscriptions()
            release_free_memory()  # what a round of requests to every hub used
            await asyncio.sleep(SUBSCRIPTIONS_SECONDS)

    async def keep_subscriptions(self) -> None:
        """Ask for every subscription that is missing or lapsing. A hub that never confirms is
        asked again with exponential backoff (its node may not reach this one's callback)."""
        follows = await self.federation.catalog.follows()
        due = await self.subscriber.due(follows)
        due_artists = {f.artist for f in due}
        for artist in list(self._subscribe_tries):
            if artist not in due_artists:  # confirmed, or no longer followed
                del self._subscribe_tries[artist]
        now = time.monotonic()
        for follow in due:
            tries, after = self._subscribe_tries.get(follow.artist, (0, 0.0))
            if now < after:
                continue
            try:
                await self.subscriber.subscribe(follow)
            except StaveError as e:
                log.info("websub: subscribing to %s: %s", follow.hub_url, e)
            delay = min(SUBSCRIBE_BACKOFF_MAX, PENDING_SECONDS * 2**tries)
            self._subscribe_tries[follow.artist] = (tries + 1, now + delay)
        await self.subscriber.forget_stale({f.artist for f in follows})

    async def _hub_loop(self) -> None:
        while True:
            for delivery in await self.hub.deliver():
                if delivery.error is not None:
                    log.info(
                        "websub: delivering feed %d to %s: %s",
                        delivery.sequence,
                        delivery.callback,
                        delivery.error,
                    )
            await asyncio.sleep(self.tick)

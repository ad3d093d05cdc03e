"""Delivering queued activities to remote inboxes: the worker that drains the catalog's
delivery queue (node/catalog/fediverse.py).

Each delivery is claimed under a lease, POSTed as `application/activity+json` with a fresh
draft-cavage-12 `rsa-sha256` signature over `(request-target) host date digest content-type`
and a `Digest: SHA-256=` (issue #13; Mastodon's `signed_request.rb` checks exactly these), by
the actor key `{base}actor#main-key`, through the guarded outbound client. Then:

- 2xx: done;
- 408, 429, 5xx, or no answer (refused connection, timeout, oversized answer): tried again
  with exponential backoff and jitter (doubling from `retry_seconds`, at most
  `max_retry_seconds` apart, never sooner than a `Retry-After` asks, up to 12 h) until the
  delivery is `give_up_seconds` old, then failed;
- any other status (404, 410 Gone, 401 …), or an inbox URL outbound requests may not reach:
  failed at once, `last_error` saying why.

Outcomes are recorded, and the next deliveries claimed, in one transaction per turn of the
worker (group commit): a turn takes every outcome that came in since the last one, so a fan-out
of 10,000 deliveries commits a few hundred times, not 10,000. A node killed between an inbox's
2xx and that commit sends that delivery again once its lease runs out (at-least-once; inboxes
deduplicate by activity id); in the normal case nothing is sent twice. A worker stopped by
`close()` records what it knows and releases what it was still sending, due again at once.
Memory stays bounded: at most `concurrency` deliveries (with their bodies) are held at a time;
the queue is never read whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from yarl import URL

from node.catalog import CatalogWrite, Delivery
from node.errors import FederationError, StaveError, excerpt
from node.federation.context import Federation
from node.fediverse.httpsig import sign_cavage

log = logging.getLogger(__name__)

ACTIVITY_JSON = "application/activity+json"
RETRYABLE = frozenset({408, 429})
IDLE_SECONDS = 1.0  # how often a running worker looks for activities other processes queued
MAX_ANSWER_BYTES = 256 * 1024
INTERRUPTED = "interrupted: the node stopped while sending it"
MAX_RETRY_AFTER_SECONDS = 12 * 3600.0  # a longer Retry-After is taken as this


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: `done`, `retry` (with when) or `failed`, and why."""

    delivery: Delivery
    state: str
    error: str | None = None
    next_attempt: float = 0.0


@dataclass
class DrainReport:
    """How many deliveries a `drain()` finished, put off for a retry, and gave up, and in how
    many transactions it recorded them."""

    done: int = 0
    retried: int = 0
    failed: int = 0
    commits: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        if outcome.state == "done":
            self.done += 1
        elif outcome.state == "retry":
            self.retried += 1
        else:
            self.failed += 1
            if len(self.errors) < 100:
                self.errors.append(outcome.error or "")


def _queued_at(delivery: Delivery) -> float:
    try:
        parsed = datetime.strptime(delivery.queued, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return time.time()
    return parsed.replace(tzinfo=UTC).timestamp()


def _retry_after(value: str | None, now: float) -> float:
    """Seconds a `Retry-After` (delay or HTTP date) asks to wait; 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return 0.0


class DeliveryWorker:
    """Drains one node's delivery queue. `run()` in the background (it sleeps until the next
    delivery is due or `wake()`), or `drain()` to deliver what is due and return; `close()`
    stops it.

    `concurrency` bounds the deliveries in flight (the client also bounds those per host);
    `lease_seconds` is how long a claimed delivery stays claimed, and must exceed the longest
    attempt (`attempt_seconds`, which covers waiting for a slot on a busy host as well).
    """

    def __init__(
        self,
        federation: Federation,
        *,
        concurrency: int = 64,
        lease_seconds: float = 300.0,
        attempt_seconds: float = 120.0,
        retry_seconds: float = 30.0,
        max_retry_seconds: float = 6 * 3600.0,
        give_up_seconds: float = 2 * 86400.0,
        flush_seconds: float = 0.02,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if attempt_seconds >= lease_seconds:
            raise ValueError("attempt_seconds must be shorter than lease_seconds")
        self.federation = federation
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.attempt_seconds = attempt_seconds
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max(retry_seconds, max_retry_seconds)
        self.give_up_seconds = give_up_seconds
        self.flush_seconds = flush_seconds
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._task: asyncio.Task[None] | None = None
        node = federation.node
        self.key_id = f"{node.base_url}actor#main-key"
        self._private_key = node.actor_key.private_key

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run `run()` as a background task (once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="stave-fediverse-delivery"
            )
        return self._task

    def wake(self) -> None:
        """Look at the queue now (something was just queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver for as long as the task runs; never returns (cancel it, or `close()`)."""
        while True:
            delay = IDLE_SECONDS
            self._wake.clear()  # a wake() from now on is seen after this drain
            try:
                await self.drain()
                delay = await self._idle_delay()
            except StaveError as e:
                log.warning("fediverse delivery: %s", e)
            except Exception:  # the worker's outermost handler: log and keep the queue alive
                log.exception("fediverse delivery: unexpected error; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def close(self) -> None:
        """Stop the background task, if any, and wait for it; what was in flight is sent
        again once its lease runs out."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _idle_delay(self) -> float:
        nxt = await self.federation.catalog.next_delivery_attempt()
        if nxt is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.01, nxt - time.time()))

    async def drain(self, *, until_empty: bool = False) -> DrainReport:
        """Deliver every delivery that is due, and return once none is due or in flight. With
        `until_empty`, also wait for the retries that come due later, until none is pending."""
        report = DrainReport()
        while True:
            await self._turns(report)
            if not until_empty:
                return report
            nxt = await self.federation.catalog.next_delivery_attempt()
            if nxt is None:
                return report
            await asyncio.sleep(max(0.0, nxt - time.time()))

    async def _turns(self, report: DrainReport) -> None:
        in_flight: dict[int, tuple[Delivery, asyncio.Task[Outcome]]] = {}
        finished: list[Outcome] = []
        try:
            while True:
                room = self.concurrency - len(in_flight)
                claimed = await self._commit(finished, room, report)
                finished = []
                for delivery in claimed:
                    if delivery.id not in in_flight:
                        task = asyncio.create_task(self._guarded(delivery))
                        in_flight[delivery.id] = (delivery, task)
                if not in_flight:
                    return
                tasks = [task for _, task in in_flight.values()]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                # Wait a moment more, so that one commit records several outcomes.
                more, _ = await asyncio.wait(tasks, timeout=self.flush_seconds)
                for task in done | more:
                    outcome = task.result()
                    del in_flight[outcome.delivery.id]
                    finished.append(outcome)
        finally:
            # Stopped (close(), or the loop cancelled): record what is known, and release what
            # was still being sent, to be sent again at once by the next start.
            for delivery, task in in_flight.values():
                if task.done() and not task.cancelled():
                    finished.append(task.result())
                else:
                    task.cancel()
                    finished.append(Outcome(delivery, "retry", INTERRUPTED, time.time()))
            if finished:
                with contextlib.suppress(StaveError):
                    await self._commit(finished, 0, report)

    async def _commit(
        self, finished: list[Outcome], room: int, report: DrainReport
    ) -> list[Delivery]:
        """Record `finished` and claim up to `room` due deliveries, in one transaction."""
        if not finished and room <= 0:
            return []
        async with self.federation.transaction() as tx:
            for outcome in finished:
                await _record(tx, outcome)
            claimed = (
                await tx.claim_deliveries(time.time(), self.lease_seconds, room) if room else []
            )
        report.commits += 1
        for outcome in finished:
            report.count(outcome)
        return claimed

    # --- one delivery -----------------------------------------------------------------------

    async def _guarded(self, delivery: Delivery) -> Outcome:
        try:
            return await self._attempt(delivery)
        except Exception as e:  # one delivery's outermost handler: the others go on
            log.exception("fediverse delivery %d: unexpected error", delivery.id)
            error = f"{delivery.inbox}: {e.__class__.__name__}: {excerpt(str(e))}"
            return self._retry(delivery, error)

    async def _attempt(self, delivery: Delivery) -> Outcome:
        inbox = delivery.inbox
        try:
            target = self.federation.client.check_destination(inbox)
        except FederationError as e:
            return Outcome(delivery, "failed", str(e))
        try:
            async with asyncio.timeout(self.attempt_seconds), self._host_slot(target):
                # Signed over the URL as it is sent (yarl's encoding of its path and query).
                sent = str(target)
                answer = await self.federation.client.post(
                    sent,
                    data=delivery.body,
                    headers=self._signed_headers(sent, delivery.body),
                    max_bytes=MAX_ANSWER_BYTES,
                )
        except TimeoutError:
            return self._retry(delivery, f"{inbox}: no answer within {self.attempt_seconds:g} s")
        except FederationError as e:
            return self._retry(delivery, str(e))
        status = answer.status
        if 200 <= status < 300:
            return Outcome(delivery, "done")
        said = f"{inbox}: answered {status}"
        if answer.body:
            said += f" ({excerpt(answer.body.decode('utf-8', 'replace').strip())})"
        if status in RETRYABLE or status >= 500:
            wait = _retry_after(answer.headers.get("Retry-After"), time.time())
            return self._retry(delivery, said, at_least=wait)
        return Outcome(delivery, "failed", said)

    def _signed_headers(self, inbox: str, body: bytes) -> dict[str, str]:
        """The request's headers, signed now (a Date minutes old is refused by some servers)."""
        headers = {"Content-Type": ACTIVITY_JSON, "Accept": ACTIVITY_JSON}
        headers.update(sign_cavage("POST", inbox, headers, body, self.key_id, self._private_key))
        return headers

    def _retry(self, delivery: Delivery, error: str, *, at_least: float = 0.0) -> Outcome:
        now = time.time()
        if now - _queued_at(delivery) >= self.give_up_seconds:
            age = self.give_up_seconds / 3600
            return Outcome(delivery, "failed", f"{error}; gave up after {age:g} h of retries")
        delay = max(self.backoff(delivery.attempts), min(at_least, MAX_RETRY_AFTER_SECONDS))
        return Outcome(delivery, "retry", error, now + delay)

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the failure of attempt number `attempts + 1`: doubling from
        `retry_seconds` up to `max_retry_seconds`, then 50–100 % of that."""
        delay = min(self.max_retry_seconds, self.retry_seconds * 2.0 ** min(attempts, 32))
        return delay * (0.5 + 0.5 * self._jitter())

    @asynccontextmanager
    async def _host_slot(self, target: URL) -> AsyncIterator[None]:
        """One of the client's per-host slots, taken before signing so that the Date is fresh
        when the request leaves."""
        host = f"{target.scheme}://{target.host}:{target.port}"
        slot, users = self._hosts.get(host, (None, 0))
        if slot is None:
            slot = asyncio.Semaphore(self.federation.client.limits.per_host)
        self._hosts[host] = (slot, users + 1)
        try:
            async with slot:
                yield
        finally:
            slot, users = self._hosts[host]
            if users <= 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (slot, users - 1)


async def _record(tx: CatalogWrite, outcome: Outcome) -> None:
    delivery = outcome.delivery
    if outcome.state == "done":
        await tx.finish_delivery(delivery.id)
    elif outcome.state == "retry":
        await tx.retry_delivery(delivery.id, outcome.error or "", outcome.next_attempt)
        log.debug("fediverse delivery %d: %s; retrying", delivery.id, outcome.error)
    else:
        await tx.fail_delivery(delivery.id, outcome.error or "")
        log.info("fediverse delivery of %s failed: %s", delivery.activity_id, outcome.error)

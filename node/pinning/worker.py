"""The worker that drains a node's durable pin queue into Kubo, and its entry points.

Each pin streams the stored file to Kubo with every import parameter of PROTOCOL §3 and checks
that Kubo's CID is the CID Stave computed; a file whose CID differs (a corrupted store file) is
never pinned, and its wish is marked failed with the reason. Other failures (Kubo down, slow,
refusing) are retried with exponential backoff and jitter until they succeed. After the pins,
the worker publishes the feed's IPNS record when it is due (node/pinning/ipns.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from node.catalog import Catalog, PinRecord, open_catalog
from node.cid import CID
from node.datadir import Node
from node.errors import ContentNotFound, InvalidCID, KuboError, StaveError, UsageError
from node.kubo import KuboClient
from node.pinning.config import kubo_client, uses_kubo
from node.pinning.ipns import IpnsPublisher
from node.pinning.queue import PINNED, PinQueueState, queue_state

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("node.pinning")  # the one logger of the pin queue and its IPNS record

# How often the running worker looks for newly queued work when it has nothing due.
IDLE_SECONDS = 1.0
BATCH = 64


class PinWorker:
    """Works through one node's pin queue against one Kubo.

    `catalog` is the catalog connection to use (the node's own by default). A worker running
    beside a web app gets a connection of its own, so its transactions never interleave with
    the app's. `quiet` logs retryable failures at debug level (the CLI prints its own notice);
    a refused CID is always logged as an error.
    """

    def __init__(
        self,
        node: Node,
        client: KuboClient,
        *,
        catalog: Catalog | None = None,
        quiet: bool = False,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.node = node
        self.client = client
        self.catalog = catalog or node.catalog
        self._quiet = quiet
        self._jitter = jitter
        self._ipns = IpnsPublisher(node, client, self.catalog, self.backoff, quiet=quiet)

    async def reconcile(self) -> None:
        """Make the queue cover everything the catalog references (and nothing else)."""
        async with self.catalog.transaction() as tx:
            pins, unpins = await tx.reconcile_pins()
        if pins or unpins:
            log.log(
                self._progress_level,
                "queued %d pins and %d unpins the catalog was missing",
                pins,
                unpins,
            )

    async def run_once(self, *, everything: bool = False) -> None:
        """Attempt every pin wish that is due, then the IPNS record if it is due.

        `everything` attempts every pending wish now, whatever its backoff says.
        """
        now = float("inf") if everything else time.time()
        attempted: set[str] = set()
        while True:
            # Wishes attempted this round stay pending when they fail; look past them.
            due = await self.catalog.due_pins(now, BATCH + len(attempted))
            due = [p for p in due if p.cid not in attempted]
            if not due:
                break
            for record in due:
                attempted.add(record.cid)
                if record.want == PINNED:
                    await self._pin(record)
                else:
                    await self._unpin(record)
        await self._ipns.publish(everything=everything)

    async def run(self) -> None:
        """Drain the queue for as long as the task runs; never returns (cancel it to stop)."""
        reconciled = False
        while True:
            try:
                if not reconciled:
                    await self.reconcile()
                    reconciled = True
                await self.run_once()
                delay = await self._idle_delay()
            except StaveError as e:
                log.warning("pin queue: %s", e)
                delay = self._retry_min
            except Exception:  # the worker's outermost handler: log and keep the queue alive
                log.exception("pin queue: unexpected error; retrying")
                delay = self._retry_min
            await asyncio.sleep(delay)

    async def _idle_delay(self) -> float:
        """Seconds until something is due, but never longer than IDLE_SECONDS."""
        delay = IDLE_SECONDS
        nxt = await self.catalog.next_pin_attempt()
        if nxt is not None:
            delay = min(delay, max(0.0, nxt - time.time()))
        return max(delay, 0.05)

    @property
    def _retry_min(self) -> float:
        return float(self.node.config["ipfs.retry_min_seconds"])

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the failure of attempt number `attempts + 1`: doubling from
        `ipfs.retry_min_seconds` up to `ipfs.retry_max_seconds`, then 50–100 % of that."""
        low = self._retry_min
        high = max(low, float(self.node.config["ipfs.retry_max_seconds"]))
        delay = min(high, low * 2.0 ** min(attempts, 32))
        return delay * (0.5 + 0.5 * self._jitter())

    # --- one wish ---------------------------------------------------------------------------

    async def _pin(self, record: PinRecord) -> None:
        cid = record.cid
        try:
            path = self.node.store.path(cid)
        except (ContentNotFound, InvalidCID) as e:
            await self._retry(record, f"{cid}: not in the local content store yet ({e})")
            return
        try:
            added = await self.client.add(path)
        except KuboError as e:
            await self._retry(record, str(e))
            return
        if not _same_cid(added, cid):
            reason = (
                f"Kubo computed {added} for the stored file {cid}: the file does not match its"
                " CID (corrupted on disk?); refusing to pin it"
            )
            log.error("pin %s: %s", cid, reason)
            async with self.catalog.transaction() as tx:
                await tx.fail_pin(cid, record.generation, reason)
            return
        try:
            await self.client.pin_add(cid)
        except KuboError as e:
            await self._retry(record, str(e))
            return
        async with self.catalog.transaction() as tx:
            recorded = await tx.finish_pin(cid, record.generation)
        log.log(self._progress_level, "pinned %s in Kubo", cid)
        if not recorded:
            log.debug("pin %s: queued again meanwhile; the new wish stays pending", cid)

    async def _unpin(self, record: PinRecord) -> None:
        try:
            await self.client.pin_rm(record.cid)
        except KuboError as e:
            await self._retry(record, str(e))
            return
        async with self.catalog.transaction() as tx:
            await tx.finish_pin(record.cid, record.generation)
        log.log(self._progress_level, "unpinned %s in Kubo", record.cid)

    async def _retry(self, record: PinRecord, error: str) -> None:
        delay = self.backoff(record.attempts)
        async with self.catalog.transaction() as tx:
            await tx.retry_pin(record.cid, record.generation, error, time.time() + delay)
        level = logging.DEBUG if self._quiet else logging.WARNING
        verb = "pin" if record.want == PINNED else "unpin"
        log.log(level, "%s %s: %s; retrying in %.0f s", verb, record.cid, error, delay)

    @property
    def _progress_level(self) -> int:
        return logging.DEBUG if self._quiet else logging.INFO


def _same_cid(a: str, b: str) -> bool:
    try:
        return CID.parse(a).to_v1() == CID.parse(b).to_v1()
    except InvalidCID:
        return False


async def process_pins(
    node: Node, client: KuboClient, *, once: bool = False, catalog: Catalog | None = None
) -> None:
    """Drain `node`'s pin queue into Kubo through `client`.

    `once=True` reconciles the queue with the catalog, attempts every pending wish now
    (backoff or not) and the IPNS record, and returns; otherwise it runs until cancelled.
    """
    worker = PinWorker(node, client, catalog=catalog, quiet=once)
    if not once:
        await worker.run()
        return
    await worker.reconcile()
    await worker.run_once(everything=True)


async def pin_for_a_moment(node: Node, seconds: float) -> PinQueueState:
    """Give Kubo at most `seconds` to take what is queued (the CLI's short attempt after a
    publish); whatever is left stays queued. Returns the queue as it then is."""
    problem: str | None = None
    if uses_kubo(node):
        try:
            async with asyncio.timeout(seconds), kubo_client(node) as client:
                await process_pins(node, client, once=True)
        except TimeoutError:
            problem = f"Kubo was still working after {seconds:g} s"
        except StaveError as e:
            problem = str(e)
    return await queue_state(node.catalog, problem=problem)


async def pin_now(node: Node, *, retry_failed: bool = False) -> PinQueueState:
    """`stave pin`: attempt every queued pin and the IPNS record now (refused pins too when
    `retry_failed`), and return the queue as it then is. Refuses a node not using Kubo."""
    if not uses_kubo(node):
        raise UsageError('pin: the node does not use Kubo; set [ipfs] backend = "kubo"')
    if retry_failed:
        async with node.catalog.transaction() as tx:
            await tx.retry_failed_pins()
    async with kubo_client(node) as client:
        await process_pins(node, client, once=True)
    return await queue_state(node.catalog)


def setup(app: web.Application, node_key: web.AppKey[Node]) -> None:
    """Drain the pin queue for as long as `app` runs (kubo backend only).

    Call it after the cleanup_ctx that opens the node into `app[node_key]`. The worker opens a
    catalog connection of its own and is cancelled before the node closes.
    """

    async def pin_worker(app: web.Application) -> AsyncIterator[None]:
        node = app[node_key]
        if not uses_kubo(node):
            yield
            return
        async with open_catalog(node.data.catalog_path) as catalog, kubo_client(node) as client:
            worker = PinWorker(node, client, catalog=catalog)
            task = asyncio.create_task(worker.run(), name="stave-pin-queue")
            log.info("pinning to Kubo at %s", client.api)
            try:
                yield
            finally:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    app.cleanup_ctx.append(pin_worker)

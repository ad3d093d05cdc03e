"""Pinning to Kubo: the durable pin queue, the worker that drains it, and the feed's IPNS name.

With `[ipfs] backend = "kubo"`, the embedded store stays the source of truth for serving, and
every published file and feed snapshot is also added to Kubo and pinned there. Publishing never
waits on Kubo: the catalog transaction that publishes something also queues its pins (a row per
CID in the catalog's `pins` table), and this worker works through the queue — now, for a
moment, after a `stave` command; continuously, while `stave run` serves the node.

Each pin streams the stored file to Kubo with every import parameter of PROTOCOL §3 and checks
that Kubo's CID is the CID Stave computed; a file whose CID differs (a corrupted store file) is
never pinned, and its wish is marked failed with the reason. Other failures (Kubo down, slow,
refusing) are retried with exponential backoff and jitter until they succeed.

Once the latest feed is pinned, it is published under the artist's IPNS name: the artist's key
is imported into the local Kubo over its API (it goes nowhere else and is never logged). The
catalog's feed chain is the durable queue for that: the latest feed not yet published is due.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.catalog import Catalog, IpnsRecord, PinRecord, open_catalog
from node.cid import CID
from node.datadir import Node
from node.errors import ConfigError, ContentNotFound, InvalidCID, KuboError, StaveError
from node.ipns import ipns_name as ipns_name_of
from node.kubo import KuboClient

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

AUTHORIZATION_ENV = "STAVE_KUBO_AUTHORIZATION"
PINNED, UNPINNED = "pinned", "unpinned"
# How often the running worker looks for newly queued work when it has nothing due.
IDLE_SECONDS = 1.0
# How long Kubo may stay silent during one call (a large add answers only at the end).
KUBO_TIMEOUT_SECONDS = 300.0
BATCH = 64


def uses_kubo(node: Node) -> bool:
    """Whether this node pins to Kubo (`[ipfs] backend = "kubo"`)."""
    return bool(node.config["ipfs.backend"] == "kubo")


def publishes_ipns(node: Node) -> bool:
    """Whether this node publishes its feed under the artist's IPNS name."""
    return uses_kubo(node) and bool(node.config["ipfs.ipns"])


def ipns_key_name(did: str) -> str:
    """The name the artist's key has in Kubo's keystore."""
    return "stave-" + did.removeprefix("did:key:")


def kubo_authorization(node: Node) -> str | None:
    """The `Authorization` header value for Kubo's API: `$STAVE_KUBO_AUTHORIZATION`, else the
    contents of `ipfs.authorization_file` (relative to the data directory), else None."""
    if secret := os.environ.get(AUTHORIZATION_ENV, "").strip():
        return secret
    configured: str = node.config["ipfs.authorization_file"]
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_absolute():
        path = node.data.root / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError(f"ipfs.authorization_file {path}: cannot read it ({reason})") from e
    if not secret:
        raise ConfigError(f"ipfs.authorization_file {path}: the file is empty")
    return secret


def kubo_client(
    node: Node, *, timeout: float = KUBO_TIMEOUT_SECONDS, connect_timeout: float = 5.0
) -> KuboClient:
    """A client for the node's Kubo (`ipfs.api`) with its authorization; use `async with`."""
    return KuboClient(
        node.config["ipfs.api"],
        kubo_authorization(node),
        timeout=timeout,
        connect_timeout=connect_timeout,
    )


# --- the worker -------------------------------------------------------------------------------


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
        self._key_name = ipns_key_name(node.identity.did)
        self._key_imported = False

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
        await self._publish_ipns(everything=everything)

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

    # --- IPNS -------------------------------------------------------------------------------

    async def _publish_ipns(self, *, everything: bool) -> None:
        """Publish the latest feed under the artist's IPNS name once it is pinned, if it is not
        already (or if the record passed half its lifetime)."""
        if not publishes_ipns(self.node):
            return
        latest = await self.catalog.latest_feed()
        if latest is None:
            return
        record = await self.catalog.ipns_record()
        now = time.time()
        lifetime_hours: int = self.node.config["ipfs.ipns_lifetime_hours"]
        if record is not None and record.sequence == latest.sequence:
            fresh_until = (record.published_at or 0.0) + lifetime_hours * 3600 / 2
            if now < fresh_until:
                return
        if record is not None and record.next_attempt > now and not everything:
            return
        pin = await self.catalog.pin(latest.cid)
        if pin is None or pin.want != PINNED or pin.state != "done":
            return  # the name must never point at a feed Kubo cannot serve yet
        name = ipns_name_of(self.node.identity.did)
        try:
            if not self._key_imported:
                # The key goes only to the local Kubo, over its API; never into a log line.
                imported = await self.client.key_import(
                    self._key_name, self.node.identity.pem_cleartext()
                )
                if imported != name:
                    raise KuboError(
                        f"kubo key/import: Kubo named the artist's key {imported}, not {name}"
                    )
                self._key_imported = True
            published = await self.client.name_publish(
                latest.cid, self._key_name, lifetime_hours=lifetime_hours
            )
            if published != name:
                raise KuboError(f"kubo name/publish: published under {published}, not {name}")
        except KuboError as e:
            delay = self.backoff(record.attempts if record else 0)
            async with self.catalog.transaction() as tx:
                await tx.record_ipns_failure(
                    self._key_name, name, error=str(e), next_attempt=now + delay
                )
            level = logging.DEBUG if self._quiet else logging.WARNING
            log.log(level, "IPNS %s: %s; retrying in %.0f s", name, e, delay)
            return
        async with self.catalog.transaction() as tx:
            await tx.record_ipns_published(
                self._key_name, name, sequence=latest.sequence, cid=latest.cid, at=time.time()
            )
        log.log(self._progress_level, "published feed %d under /ipns/%s", latest.sequence, name)


def _same_cid(a: str, b: str) -> bool:
    try:
        return CID.parse(a).to_v1() == CID.parse(b).to_v1()
    except InvalidCID:
        return False


# --- entry points -----------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PinQueueState:
    """How many pin wishes are done, pending and failed, and the pending or failed ones."""

    pinned: int
    pending: int
    failed: int
    unpins_pending: int
    open: list[PinRecord] = field(default_factory=list)
    problem: str | None = None

    @property
    def left(self) -> int:
        return self.pending + self.failed + self.unpins_pending

    def notice(self) -> str:
        """One line saying what is left in the queue, and the latest reason why."""
        parts = []
        if self.pending:
            parts.append(f"{self.pending} pin{'s' * (self.pending != 1)} pending")
        if self.unpins_pending:
            parts.append(f"{self.unpins_pending} unpin{'s' * (self.unpins_pending != 1)} pending")
        if self.failed:
            parts.append(f"{self.failed} failed")
        errors = [p for p in self.open if p.last_error]
        reason = self.problem
        if reason is None and errors:
            reason = max(errors, key=lambda p: p.updated).last_error
        return ", ".join(parts) + (f" ({reason})" if reason else "")


async def queue_state(
    catalog: Catalog, limit: int = 20, problem: str | None = None
) -> PinQueueState:
    """The pin queue of the node whose catalog this is; `problem` says why it is not empty."""
    counts = await catalog.pin_counts()
    failed = await catalog.pins("failed")
    pending = await catalog.pins("pending")
    return PinQueueState(
        pinned=counts.get((PINNED, "done"), 0),
        pending=counts.get((PINNED, "pending"), 0),
        failed=sum(n for (_, state), n in counts.items() if state == "failed"),
        unpins_pending=counts.get((UNPINNED, "pending"), 0),
        open=(failed + pending)[:limit],
        problem=problem,
    )


async def ipns_name(node: Node) -> str | None:
    """The IPNS name the node's feed is published under — the node document's `ipns` member.

    None unless the node uses Kubo with IPNS on and at least one feed record was published.
    """
    if not publishes_ipns(node):
        return None
    record = await node.catalog.ipns_record()
    return record.name if record is not None and record.sequence is not None else None


@dataclass(frozen=True)
class PinningStatus:
    """What `stave status` shows: the backend, Kubo, the pin queue and the IPNS record."""

    backend: str
    api: str | None
    kubo_version: str | None
    kubo_error: str | None
    queue: PinQueueState
    ipns_enabled: bool
    ipns_name: str | None
    ipns: IpnsRecord | None
    feed_sequence: int | None
    feed_cid: str | None

    def to_json(self) -> dict[str, Any]:
        record = self.ipns
        return {
            "backend": self.backend,
            "kubo": None
            if self.api is None
            else {
                "api": self.api,
                "reachable": self.kubo_error is None,
                "version": self.kubo_version,
                "error": self.kubo_error,
            },
            "pins": {
                "pinned": self.queue.pinned,
                "pending": self.queue.pending,
                "failed": self.queue.failed,
                "unpinsPending": self.queue.unpins_pending,
                "open": [
                    {
                        "cid": p.cid,
                        "want": p.want,
                        "state": p.state,
                        "attempts": p.attempts,
                        "nextAttempt": p.next_attempt if p.state == "pending" else None,
                        "lastError": p.last_error,
                    }
                    for p in self.queue.open
                ],
            },
            "ipns": {
                "enabled": self.ipns_enabled,
                "name": self.ipns_name,
                "publishedSequence": record.sequence if record else None,
                "publishedCid": record.cid if record else None,
                "publishedAt": record.published_at if record else None,
                "lastError": record.last_error if record else None,
            },
            "feed": {"sequence": self.feed_sequence, "cid": self.feed_cid},
        }


async def status(node: Node) -> PinningStatus:
    """The node's pinning status, asking Kubo for its version when the backend is kubo."""
    version: str | None = None
    error: str | None = None
    if uses_kubo(node):
        try:
            async with kubo_client(node, timeout=5.0, connect_timeout=2.0) as client:
                version = await client.version()
        except KuboError as e:
            error = str(e)
    latest = await node.catalog.latest_feed()
    return PinningStatus(
        backend=node.config["ipfs.backend"],
        api=node.config["ipfs.api"] if uses_kubo(node) else None,
        kubo_version=version,
        kubo_error=error,
        queue=await queue_state(node.catalog),
        ipns_enabled=publishes_ipns(node),
        ipns_name=ipns_name_of(node.identity.did) if publishes_ipns(node) else None,
        ipns=await node.catalog.ipns_record(),
        feed_sequence=latest.sequence if latest else None,
        feed_cid=latest.cid if latest else None,
    )


# --- the running node -------------------------------------------------------------------------


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

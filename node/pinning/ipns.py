"""The feed's IPNS record: publishing the latest pinned feed under the artist's IPNS name.

The artist's key is imported into the local Kubo over its API (it goes nowhere else and is
never logged). The catalog's feed chain is the durable queue: the latest feed not yet published
is due, and a record past half its lifetime is published again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from node.catalog import Catalog
from node.datadir import Node
from node.errors import KuboError
from node.ipns import ipns_name as ipns_name_of
from node.kubo import KuboClient
from node.pinning.config import ipns_key_name, publishes_ipns
from node.pinning.queue import PINNED

log = logging.getLogger("node.pinning")  # the one logger of the pin queue and its IPNS record


class IpnsPublisher:
    """Publishes one node's latest feed under the artist's IPNS name through one Kubo.

    `backoff(attempts)` is the delay after a failed attempt, as the pin worker's; `quiet` logs
    failures at debug level.
    """

    def __init__(
        self,
        node: Node,
        client: KuboClient,
        catalog: Catalog,
        backoff: Callable[[int], float],
        *,
        quiet: bool = False,
    ) -> None:
        self.node = node
        self.client = client
        self.catalog = catalog
        self._backoff = backoff
        self._quiet = quiet
        self._key_name = ipns_key_name(node.identity.did)
        self._key_imported = False

    @property
    def _progress_level(self) -> int:
        return logging.DEBUG if self._quiet else logging.INFO

    async def publish(self, *, everything: bool) -> None:
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
            delay = self._backoff(record.attempts if record else 0)
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


async def ipns_name(node: Node) -> str | None:
    """The IPNS name the node's feed is published under — the node document's `ipns` member.

    None unless the node uses Kubo with IPNS on and at least one feed record was published.
    """
    if not publishes_ipns(node):
        return None
    record = await node.catalog.ipns_record()
    return record.name if record is not None and record.sequence is not None else None

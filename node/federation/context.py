"""What every federation service of one node shares."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from node.catalog import Catalog, CatalogWrite
from node.datadir import Node
from node.federation.http import OutboundClient


@dataclass
class Federation:
    """One node's federation services' shared parts: the node, a catalog connection, the client.

    Several tasks share one catalog connection, and SQLite has one transaction per connection, so
    every write goes through `transaction()`, which takes them one at a time.
    """

    node: Node
    catalog: Catalog
    client: OutboundClient
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def max_feed_bytes(self) -> int:
        limit: int = self.node.config["federation.max_feed_bytes"]
        return limit

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CatalogWrite]:
        """A catalog write transaction, never overlapping another one of these services."""
        async with self.writing, self.catalog.transaction() as tx:
            yield tx


def now_text() -> str:
    """The current time as the RFC 3339 UTC text the catalog stores."""
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

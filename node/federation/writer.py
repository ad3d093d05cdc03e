"""Storing accepted feeds of followed artists, many to a transaction (group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from node.catalog import FeedReplacement
from node.federation.context import Federation


class FeedWriter:
    """Stores accepted feeds, many to a transaction when they come together (group commit).

    Each feed's replacement is whole inside one transaction; feeds verified while a transaction
    is being written wait and go together in the next, so a first sync of many follows costs a
    few transactions, not one each. When `more_coming()` says other feeds are still being
    verified, the writer lingers a moment for them before it writes: verified feeds come one by
    one, and without that a bulk sync writes a transaction for every few feeds, which costs
    the event loop more than the verification it waits for.
    """

    MAX_BATCH = 256
    LINGER = 0.05  # seconds

    def __init__(
        self, federation: Federation, more_coming: Callable[[], bool] = lambda: False
    ) -> None:
        self.federation = federation
        self.more_coming = more_coming
        self._pending: list[tuple[FeedReplacement, asyncio.Future[bool]]] = []
        self._writing = asyncio.Lock()

    async def accept(self, replacement: FeedReplacement) -> bool:
        """Whether the replacement was stored (see `CatalogWrite.accept_feeds`)."""
        mine: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((replacement, mine))
        while not mine.done():
            async with self._writing:
                if mine.done():
                    break
                if len(self._pending) < self.MAX_BATCH and self.more_coming():
                    await asyncio.sleep(self.LINGER)
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                try:
                    async with self.federation.transaction() as tx:
                        stored = await tx.accept_feeds([item for item, _ in batch])
                except asyncio.CancelledError:
                    # Rolled back; the others' feeds go in the next writer's transaction.
                    self._pending[:0] = [(item, f) for item, f in batch if f is not mine]
                    raise
                except Exception as e:
                    for _, waiting in batch:
                        waiting.set_exception(e)
                        waiting.exception()  # retrieved: each waiter raises it itself
                else:
                    for (_, waiting), ok in zip(batch, stored, strict=True):
                        waiting.set_result(ok)
        return mine.result()

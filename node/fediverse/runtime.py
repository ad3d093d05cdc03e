"""The fediverse side of a running node: the inbox that takes follows, and the worker that
delivers what the node queued (posts, the Accepts of follows) to its followers' inboxes.

Both share federation's catalog connection and guarded client (node/federation/context.py).
`start()` runs the delivery worker in the background; `close()` stops it, leaving whatever was
in flight to be sent again once its lease runs out (node/catalog/fediverse.py).
"""

from __future__ import annotations

from node.federation.context import Federation
from node.federation.runtime import release_free_memory
from node.fediverse.delivery import DeliveryWorker
from node.fediverse.inbox import InboxService
from node.fediverse.outbox import queue_post_changes


class FediverseRuntime:
    """One node's inbox service and delivery worker."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.delivery = DeliveryWorker(federation)
        self.inbox = InboxService(federation, on_queued=self.delivery.wake)

    async def catch_up(self) -> int:
        """Give every track that has no post (or an outdated one) its post, queueing what
        announces it: a node's tracks from before it had posts become posts at its first
        start. Returns how many activities were queued."""
        async with self.federation.transaction() as tx:
            queued = await queue_post_changes(tx, self.federation.node)
        release_free_memory()  # a first start signs a post per track; hand that memory back
        if queued:
            self.delivery.wake()
        return queued

    def start(self) -> None:
        self.delivery.start()

    async def close(self) -> None:
        await self.delivery.close()

"""What `stave status` shows of pinning: the backend, Kubo, the pin queue, the IPNS record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.catalog import IpnsRecord
from node.datadir import Node
from node.errors import KuboError
from node.ipns import ipns_name as ipns_name_of
from node.pinning.config import kubo_client, publishes_ipns, uses_kubo
from node.pinning.queue import PinQueueState, queue_state


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

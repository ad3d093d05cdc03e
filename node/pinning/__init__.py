"""Pinning to Kubo: the durable pin queue, the worker that drains it, and the feed's IPNS name.

With `[ipfs] backend = "kubo"`, the embedded store stays the source of truth for serving, and
every published file and feed snapshot is also added to Kubo and pinned there. Publishing never
waits on Kubo: the catalog transaction that publishes something also queues its pins (a row per
CID in the catalog's `pins` table), and a worker works through the queue — now, for a
moment, after a `stave` command; continuously, while `stave run` serves the node.

The package's modules, bottom up: `config.py` (whether and how the node talks to Kubo),
`queue.py` (the state of the queue), `ipns.py` (the feed's IPNS record), `worker.py` (the worker
that drains the queue, `process_pins`, `pin_for_a_moment`, and `setup` for `stave run`),
`status.py` (what `stave status` shows). Its public names are all importable from `node.pinning`.
"""

from node.pinning.config import (
    AUTHORIZATION_ENV,
    KUBO_TIMEOUT_SECONDS,
    ipns_key_name,
    kubo_authorization,
    kubo_client,
    publishes_ipns,
    uses_kubo,
)
from node.pinning.ipns import IpnsPublisher, ipns_name
from node.pinning.queue import PINNED, UNPINNED, PinQueueState, queue_state
from node.pinning.status import PinningStatus, status
from node.pinning.worker import PinWorker, pin_for_a_moment, pin_now, process_pins, setup

__all__ = [
    "AUTHORIZATION_ENV",
    "KUBO_TIMEOUT_SECONDS",
    "PINNED",
    "UNPINNED",
    "IpnsPublisher",
    "PinQueueState",
    "PinWorker",
    "PinningStatus",
    "ipns_key_name",
    "ipns_name",
    "kubo_authorization",
    "kubo_client",
    "pin_for_a_moment",
    "pin_now",
    "process_pins",
    "publishes_ipns",
    "queue_state",
    "setup",
    "status",
    "uses_kubo",
]

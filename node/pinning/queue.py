"""The state of the pin queue: how many wishes are done, pending and failed, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from node.catalog import Catalog, PinRecord

PINNED, UNPINNED = "pinned", "unpinned"


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

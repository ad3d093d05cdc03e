"""The catalog's pins (node/pinning): per CID, whether this node wants it pinned in Kubo or
unpinned, how far that got and when to retry; and the IPNS record of the latest feed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.catalog.db import Area

PIN_WANTS = ("pinned", "unpinned")
PIN_STATES = ("pending", "done", "failed")
_NOW = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"


@dataclass(frozen=True)
class PinRecord:
    """What this node wants Kubo to do with one CID and how far it got.

    `want` is "pinned" or "unpinned"; `state` is "pending" (to do, at `next_attempt`, a Unix
    time), "done", or "failed" (refused for good, `last_error` says why). `generation` changes
    every time the wish is queued again, so an outcome is only recorded for the wish it served.
    """

    cid: str
    want: str
    state: str
    attempts: int
    next_attempt: float
    last_error: str | None
    generation: int
    queued: str
    updated: str


@dataclass(frozen=True)
class IpnsRecord:
    """The feed last published under the artist's IPNS name, and how the last attempt went."""

    key: str
    name: str
    sequence: int | None
    cid: str | None
    published_at: float | None
    attempts: int
    next_attempt: float
    last_error: str | None
    updated: str


# In the order of PinRecord's and IpnsRecord's fields.
_PIN_COLUMNS = "cid, want, state, attempts, next_attempt, last_error, generation, queued, updated"
_IPNS_COLUMNS = (
    "key, name, sequence, cid, published_at, attempts, next_attempt, last_error, updated"
)


class PinReads(Area):
    """Reading the pin queue and the IPNS record."""

    async def pin(self, cid: str) -> PinRecord | None:
        """The pin wish for `cid`, if one was ever queued and not yet completed as an unpin."""
        row = await self._row(f"SELECT {_PIN_COLUMNS} FROM pins WHERE cid = ?", (cid,))
        return None if row is None else PinRecord(*row)

    async def pins(self, state: str | None = None) -> list[PinRecord]:
        """Every pin wish (or those in `state`), oldest queued first."""
        where, params = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        sql = f"SELECT {_PIN_COLUMNS} FROM pins {where} ORDER BY queued, cid"
        return [PinRecord(*row) for row in await self._rows(sql, params)]

    async def due_pins(self, now: float, limit: int = 64) -> list[PinRecord]:
        """Pending wishes whose next attempt is due at `now`, the longest waiting first."""
        sql = (
            f"SELECT {_PIN_COLUMNS} FROM pins WHERE state = 'pending' AND next_attempt <= ?"
            " ORDER BY next_attempt, queued, cid LIMIT ?"
        )
        return [PinRecord(*row) for row in await self._rows(sql, (now, limit))]

    async def next_pin_attempt(self) -> float | None:
        """When the next pending wish is due (a Unix time), None when nothing is pending."""
        row = await self._row("SELECT MIN(next_attempt) FROM pins WHERE state = 'pending'")
        return None if row is None or row[0] is None else float(row[0])

    async def pin_counts(self) -> dict[tuple[str, str], int]:
        """How many wishes there are of each (want, state)."""
        sql = "SELECT want, state, COUNT(*) FROM pins GROUP BY want, state"
        return {(row[0], row[1]): row[2] for row in await self._rows(sql)}

    async def ipns_record(self) -> IpnsRecord | None:
        """The IPNS record of the artist's key, once an attempt to publish one was made."""
        row = await self._row(f"SELECT {_IPNS_COLUMNS} FROM ipns ORDER BY updated DESC LIMIT 1")
        return None if row is None else IpnsRecord(*row)


class PinWrites(PinReads):
    """Queueing pins and unpins, recording their outcomes and IPNS publications."""

    async def queue_pins(self, cids: Iterable[str]) -> None:
        """Ask for every CID in `cids` to be pinned in Kubo (the kubo backend only).

        A CID already pinned or on its way stays as it is; one that failed, or was to be
        unpinned, is queued afresh.
        """
        await self._db.executemany(
            f"INSERT INTO pins (cid, want, state, queued, updated)"
            f" VALUES (?, 'pinned', 'pending', {_NOW}, {_NOW})"
            " ON CONFLICT(cid) DO UPDATE SET want = 'pinned', state = 'pending', attempts = 0,"
            " next_attempt = 0, last_error = NULL, generation = generation + 1,"
            " queued = excluded.queued, updated = excluded.updated"
            " WHERE NOT (want = 'pinned' AND state IN ('pending', 'done'))",
            [(cid,) for cid in dict.fromkeys(cids)],
        )

    async def queue_unpins(self, cids: Iterable[str]) -> None:
        """Ask for every CID in `cids` to be unpinned from Kubo, except those the catalog still
        references (as this transaction leaves it) and those never queued for pinning."""
        referenced = await self.referenced_cids()
        await self._db.executemany(
            f"UPDATE pins SET want = 'unpinned', state = 'pending', attempts = 0,"
            f" next_attempt = 0, last_error = NULL, generation = generation + 1,"
            f" queued = {_NOW}, updated = {_NOW} WHERE cid = ? AND want = 'pinned'",
            [(cid,) for cid in dict.fromkeys(cids) if cid not in referenced],
        )

    async def reconcile_pins(self) -> tuple[int, int]:
        """Queue a pin for every CID the catalog references and no wish covers, and an unpin
        for every CID wished pinned that the catalog no longer references (after the backend
        was switched, say). Returns how many pins and unpins were queued."""
        referenced = await self.referenced_cids()
        wants = {row[0]: row[1] for row in await self._rows("SELECT cid, want FROM pins")}
        to_pin = sorted(cid for cid in referenced if wants.get(cid) != "pinned")
        to_unpin = sorted(cid for cid, want in wants.items() if want == "pinned")
        to_unpin = [cid for cid in to_unpin if cid not in referenced]
        await self.queue_pins(to_pin)
        await self.queue_unpins(to_unpin)
        return len(to_pin), len(to_unpin)

    async def finish_pin(self, cid: str, generation: int) -> bool:
        """Record that the wish `generation` for `cid` is done (an unpin is then forgotten).

        False, and nothing recorded, when the wish was queued again meanwhile.
        """
        cursor = await self._db.execute(
            "DELETE FROM pins WHERE cid = ? AND generation = ? AND want = 'unpinned'",
            (cid, generation),
        )
        if cursor.rowcount:
            return True
        cursor = await self._db.execute(
            f"UPDATE pins SET state = 'done', attempts = attempts + 1, last_error = NULL,"
            f" updated = {_NOW} WHERE cid = ? AND generation = ?",
            (cid, generation),
        )
        return cursor.rowcount > 0

    async def retry_pin(self, cid: str, generation: int, error: str, next_attempt: float) -> bool:
        """Record a failed attempt at the wish `generation` for `cid`; retry at `next_attempt`."""
        cursor = await self._db.execute(
            f"UPDATE pins SET attempts = attempts + 1, next_attempt = ?, last_error = ?,"
            f" updated = {_NOW} WHERE cid = ? AND generation = ? AND state = 'pending'",
            (next_attempt, error, cid, generation),
        )
        return cursor.rowcount > 0

    async def fail_pin(self, cid: str, generation: int, error: str) -> bool:
        """Record that the wish `generation` for `cid` was refused for good, and why."""
        cursor = await self._db.execute(
            f"UPDATE pins SET state = 'failed', attempts = attempts + 1, last_error = ?,"
            f" updated = {_NOW} WHERE cid = ? AND generation = ?",
            (error, cid, generation),
        )
        return cursor.rowcount > 0

    async def retry_failed_pins(self) -> int:
        """Queue every failed wish again; returns how many."""
        cursor = await self._db.execute(
            f"UPDATE pins SET state = 'pending', attempts = 0, next_attempt = 0,"
            f" generation = generation + 1, updated = {_NOW} WHERE state = 'failed'"
        )
        return cursor.rowcount

    async def record_ipns_published(
        self, key: str, name: str, *, sequence: int, cid: str, at: float
    ) -> None:
        """Record that feed `sequence` (`cid`) was published under `name` (Kubo's key `key`)."""
        await self._db.execute(
            f"INSERT INTO ipns ({_IPNS_COLUMNS}) VALUES (?, ?, ?, ?, ?, 0, 0, NULL, {_NOW})"
            " ON CONFLICT(key) DO UPDATE SET name = excluded.name, sequence = excluded.sequence,"
            " cid = excluded.cid, published_at = excluded.published_at, attempts = 0,"
            " next_attempt = 0, last_error = NULL, updated = excluded.updated",
            (key, name, sequence, cid, at),
        )

    async def record_ipns_failure(
        self, key: str, name: str, *, error: str, next_attempt: float
    ) -> None:
        """Record a failed attempt to publish under `name`, to retry at `next_attempt`."""
        await self._db.execute(
            f"INSERT INTO ipns ({_IPNS_COLUMNS})"
            f" VALUES (?, ?, NULL, NULL, NULL, 1, ?, ?, {_NOW})"
            " ON CONFLICT(key) DO UPDATE SET name = excluded.name, attempts = attempts + 1,"
            " next_attempt = excluded.next_attempt, last_error = excluded.last_error,"
            " updated = excluded.updated",
            (key, name, next_attempt, error),
        )

    async def forget_pin_state(self) -> None:
        """Forget which CIDs this machine's Kubo pinned and which feed it last published under
        IPNS (see `Catalog.forget_pin_state`)."""
        await self._db.execute("DELETE FROM pins")
        await self._db.execute("DELETE FROM ipns")

"""The SQLite catalog: tracks, feeds, releases, follows, WebSub, pins, the fediverse — by area.

This package is the only code that opens SQLite: the catalog database here, and the content
store's block index (`blocks.py`). One connection serves the catalog, made by `open_catalog`:
`Catalog` reads and opens transactions, `CatalogWrite` writes inside one. Both are assembled
below from the areas' classes, each area one module that imports only `db.py` (`Area`, the
connection and row helpers), primitives and the standard library — never another area, never
this `__init__`. Schema changes are numbered migrations in `schema.py`.

To add an area (say `releases`):

1. write `node/catalog/releases.py` with its records and two classes, `ReleaseReads(Area)`
   for queries and `ReleaseWrites(ReleaseReads)` for what runs inside a transaction; if its
   rows keep content alive, override `referenced_cids` to add its CIDs to `super()`'s;
2. append its `CREATE` statements as one new migration to `MIGRATIONS` in `schema.py`;
3. here, add `ReleaseReads` to `Catalog`'s bases, `ReleaseWrites` to `CatalogWrite`'s, and
   its public records to the imports and `__all__`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from node.catalog.fediverse import (
    DELIVERY_STATES,
    Delivery,
    FediverseFollower,
    FediversePost,
    FediverseReads,
    FediverseWrites,
)
from node.catalog.follows import (
    FeedReplacement,
    FollowedFeed,
    FollowedRelease,
    FollowedTrack,
    FollowReads,
    FollowRecord,
    FollowRotation,
    FollowWrites,
    SyncStatus,
)
from node.catalog.pins import PIN_STATES, PIN_WANTS, IpnsRecord, PinReads, PinRecord, PinWrites
from node.catalog.releases import ReleaseReads, ReleaseRecord, ReleaseWrites
from node.catalog.schema import MIGRATIONS, migrate
from node.catalog.tracks import FeedRecord, TrackReads, TrackRecord, TrackWrites
from node.catalog.websub import HubSubscriber, WebSubReads, WebSubSubscription, WebSubWrites
from node.errors import CatalogError

__all__ = [
    "DELIVERY_STATES",
    "MIGRATIONS",
    "PIN_STATES",
    "PIN_WANTS",
    "Catalog",
    "CatalogWrite",
    "Delivery",
    "FediverseFollower",
    "FediversePost",
    "FeedRecord",
    "FeedReplacement",
    "FollowRecord",
    "FollowRotation",
    "FollowedFeed",
    "FollowedRelease",
    "FollowedTrack",
    "HubSubscriber",
    "IpnsRecord",
    "PinRecord",
    "ReleaseRecord",
    "SyncStatus",
    "TrackRecord",
    "WebSubSubscription",
    "open_catalog",
]


class CatalogWrite(
    TrackWrites, ReleaseWrites, FollowWrites, WebSubWrites, PinWrites, FediverseWrites
):
    """The write operations (and every read), only available inside `Catalog.transaction()`."""


class Catalog(TrackReads, ReleaseReads, FollowReads, WebSubReads, PinReads, FediverseReads):
    """An open catalog. Use `async with open_catalog(path) as catalog`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__(db)
        # One connection serves the whole process: its transactions must take turns.
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CatalogWrite]:
        """A write transaction that holds the database's write lock from its start.

        Everything inside commits together or not at all. Transactions from coroutines of the
        same process wait for each other; other processes wait on SQLite's busy timeout.
        """
        async with self._write_lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise CatalogError(f"catalog is busy or locked ({e})") from e
            try:
                yield CatalogWrite(self._db)
            except BaseException:
                await self._db.rollback()
                raise
            else:
                await self._db.commit()

    # --- backup and restore (node/backup/) --------------------------------------------------

    async def backup_to(self, path: Path) -> None:
        """Write a consistent snapshot of the whole catalog to a new file at `path`.

        Uses SQLite's online backup API, so writers may go on meanwhile; the snapshot is one
        self-contained file (no -wal beside it). CatalogError if `path` exists or cannot be made.
        """
        if path.exists():
            raise CatalogError(f"{path}: already exists; a catalog snapshot needs a new file")
        try:
            target = sqlite3.connect(path, check_same_thread=False)
        except sqlite3.Error as e:
            raise CatalogError(f"{path}: cannot create the catalog snapshot ({e})") from e
        try:
            await self._db.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error as e:
            raise CatalogError(f"{path}: cannot write the catalog snapshot ({e})") from e
        finally:
            target.close()

    async def forget_pin_state(self) -> None:
        """Forget what only the machine this catalog was copied from knows: which CIDs its Kubo
        pinned and which feed it last published under IPNS. After a restore the pin queue then
        starts over from the catalog, so the new machine's Kubo gets every pin."""
        async with self.transaction() as tx:
            await tx.forget_pin_state()


@asynccontextmanager
async def open_catalog(path: Path) -> AsyncIterator[Catalog]:
    """Open (creating and migrating as needed) the catalog at `path`, in WAL mode."""
    try:
        db = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise CatalogError(f"{path}: cannot open the catalog ({e})") from e
    try:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA busy_timeout = 10000")
        # 256 KiB of page cache rather than SQLite's 2 MiB, per connection: pages come back
        # from the OS's cache, and two open connections filled theirs in an idle node.
        await db.execute("PRAGMA cache_size = -256")
        await migrate(db, path)
        yield Catalog(db)
    except sqlite3.DatabaseError as e:
        raise CatalogError(f"{path}: {e}") from e
    finally:
        await db.close()

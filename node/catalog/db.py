"""What every area of the catalog shares: the one connection and the helpers over its rows.

An area module (tracks.py, follows.py, ...) subclasses `Area` and imports nothing else of the
catalog package; `Catalog` and `CatalogWrite` in node/catalog/__init__.py are assembled from the
areas' classes over the connection `open_catalog` made.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite


class Area:
    """One area's reads or writes, over the catalog's connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def referenced_cids(self) -> set[str]:
        """Every CID the catalog still needs. An area whose rows need content kept overrides
        this to add its CIDs to what `super().referenced_cids()` gives; here, none."""
        return set()

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Every row `sql` selects."""
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _row(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """The first row `sql` selects, None if it selects none."""
        async with self._db.execute(sql, params) as cursor:
            return await cursor.fetchone()


def compact_json(value: Any) -> str:
    """A JSON document as the catalog stores it: UTF-8 text, no spaces."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def with_json(row: Sequence[Any], column: int) -> list[Any]:
    """The row's values, with the JSON text in `column` parsed."""
    values = list(row)
    values[column] = json.loads(values[column])
    return values

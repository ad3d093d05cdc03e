"""The content store's block index (node/store.py): its `index.sqlite`, and the only code that
opens it.

Every block of every stored file (raw leaves and dag-pb nodes) is mapped to where its bytes
are: a range of the file under the store's `files/`, or the node's encoded bytes. The index is
derived from the files; the store rebuilds it when rows are missing. Every method is
thread-safe: one connection, taken in turns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from node.cid import ImportResult
from node.errors import StoreError

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS roots (
    cid TEXT PRIMARY KEY,
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    cid TEXT NOT NULL,
    root TEXT NOT NULL,
    offset INTEGER,
    length INTEGER,
    node BLOB,
    PRIMARY KEY (cid, root)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_by_root ON blocks (root);
"""


class BlockIndex:
    """The block index at `path` (a store's `index.sqlite`), created as needed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{path.parent}: cannot open the content store: {e}") from e

    def close(self) -> None:
        """Close the index; it must not be used afterwards."""
        with self._lock:
            self._db.close()

    def locations(self, cid: str) -> list[Any]:
        """Where the block `cid` is: (root file, offset, length, None) for a range of a stored
        file, (root file, None, None, bytes) for a dag-pb node kept in the index."""
        return self._query("SELECT root, offset, length, node FROM blocks WHERE cid = ?", (cid,))

    def roots(self) -> set[str]:
        """The CIDs of every file the index has rows for."""
        return {row[0] for row in self._query("SELECT cid FROM roots", ())}

    def add(self, result: ImportResult) -> None:
        """Index every block of an imported file (rows it has already are kept)."""
        root = str(result.root)
        leaves = ((str(leaf.cid), root, leaf.offset, leaf.length) for leaf in result.leaves)
        nodes = ((str(node.cid), root, node.block) for node in result.nodes)
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO blocks (cid, root, offset, length) VALUES (?, ?, ?, ?)",
                    leaves,
                ),
                ("INSERT OR IGNORE INTO blocks (cid, root, node) VALUES (?, ?, ?)", nodes),
                ("INSERT OR REPLACE INTO roots (cid, size) VALUES (?, ?)", [(root, result.size)]),
            ]
        )

    def remove(self, root: str) -> None:
        """Forget the file `root` and its blocks."""
        self._write(
            [
                ("DELETE FROM blocks WHERE root = ?", [(root,)]),
                ("DELETE FROM roots WHERE cid = ?", [(root,)]),
            ]
        )

    def clear(self) -> None:
        """Forget every file and block."""
        self._write([("DELETE FROM blocks", [()]), ("DELETE FROM roots", [()])])

    def _write(self, statements: list[tuple[str, Iterable[tuple[object, ...]]]]) -> None:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, rows in statements:
                        self._db.executemany(sql, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: cannot update the block index: {e}") from e

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: cannot read the block index: {e}") from e

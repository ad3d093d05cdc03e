"""The SQLite catalog: tracks, their signed manifests, and the chain of feed documents.

This module is the only one that opens the catalog database. Schema changes are numbered
migrations applied in order inside one transaction each; `PRAGMA user_version` records the last.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from node.errors import CatalogError, TrackNotFound

MIGRATIONS: tuple[str, ...] = (
    # 1: tracks, every revision of every manifest, and the feed chain.
    """
    CREATE TABLE tracks (
        id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        title TEXT NOT NULL,
        published TEXT NOT NULL,
        audio_cid TEXT NOT NULL,
        cover_cid TEXT,
        manifest TEXT NOT NULL,
        added_order INTEGER NOT NULL,
        withdrawn_at TEXT
    );
    CREATE TABLE manifests (
        track_id TEXT NOT NULL REFERENCES tracks(id),
        revision INTEGER NOT NULL,
        audio_cid TEXT NOT NULL,
        manifest TEXT NOT NULL,
        PRIMARY KEY (track_id, revision)
    );
    CREATE INDEX manifests_by_audio ON manifests(audio_cid);
    CREATE TABLE feeds (
        sequence INTEGER PRIMARY KEY,
        cid TEXT NOT NULL UNIQUE,
        previous TEXT,
        updated TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class TrackRecord:
    id: str
    revision: int
    title: str
    published: str
    audio_cid: str
    cover_cid: str | None
    manifest: dict[str, Any]
    withdrawn_at: str | None


@dataclass(frozen=True)
class FeedRecord:
    sequence: int
    cid: str
    previous: str | None
    updated: str
    expires: str


_TRACK_COLUMNS = "id, revision, title, published, audio_cid, cover_cid, manifest, withdrawn_at"


def _track(row: Sequence[Any]) -> TrackRecord:
    return TrackRecord(
        id=row[0],
        revision=row[1],
        title=row[2],
        published=row[3],
        audio_cid=row[4],
        cover_cid=row[5],
        manifest=json.loads(row[6]),
        withdrawn_at=row[7],
    )


def _feed(row: Sequence[Any]) -> FeedRecord:
    return FeedRecord(sequence=row[0], cid=row[1], previous=row[2], updated=row[3], expires=row[4])


class Catalog:
    """An open catalog. Use `async with open_catalog(path) as catalog`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def tracks(self, *, include_withdrawn: bool = False) -> list[TrackRecord]:
        """Tracks newest first (by publication time, then by the order they were added)."""
        where = "" if include_withdrawn else "WHERE withdrawn_at IS NULL"
        sql = (
            f"SELECT {_TRACK_COLUMNS} FROM tracks {where} ORDER BY published DESC, added_order DESC"
        )
        async with self._db.execute(sql) as cursor:
            return [_track(row) for row in await cursor.fetchall()]

    async def track(self, track_id: str) -> TrackRecord:
        sql = f"SELECT {_TRACK_COLUMNS} FROM tracks WHERE id = ?"
        async with self._db.execute(sql, (track_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise TrackNotFound(f"track {track_id}: no such track in the catalog")
        return _track(row)

    async def find_track(self, prefix: str) -> TrackRecord:
        """A track by its full id, its UUID, or an unambiguous prefix of its UUID."""
        wanted = prefix if prefix.startswith("urn:uuid:") else "urn:uuid:" + prefix
        escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql = f"SELECT {_TRACK_COLUMNS} FROM tracks WHERE id LIKE ? ESCAPE '\\' LIMIT 2"
        async with self._db.execute(sql, (escaped + "%",)) as cursor:
            rows = list(await cursor.fetchall())
        if not rows or not prefix:
            raise TrackNotFound(f"track {prefix}: no such track in the catalog")
        if len(rows) > 1 and rows[0][0] != wanted:
            raise TrackNotFound(f"track {prefix}: more than one track starts with that id")
        return _track(rows[0])

    async def manifests_for_audio(self, cid: str) -> list[dict[str, Any]]:
        """Every manifest revision, of any track, whose audio has this CID."""
        sql = "SELECT manifest FROM manifests WHERE audio_cid = ? ORDER BY revision DESC"
        async with self._db.execute(sql, (cid,)) as cursor:
            return [json.loads(row[0]) for row in await cursor.fetchall()]

    async def manifest(self, track_id: str, revision: int) -> dict[str, Any] | None:
        sql = "SELECT manifest FROM manifests WHERE track_id = ? AND revision = ?"
        async with self._db.execute(sql, (track_id, revision)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else dict(json.loads(row[0]))

    async def latest_feed(self) -> FeedRecord | None:
        sql = "SELECT sequence, cid, previous, updated, expires FROM feeds ORDER BY sequence DESC"
        async with self._db.execute(sql + " LIMIT 1") as cursor:
            row = await cursor.fetchone()
        return None if row is None else _feed(row)

    async def feeds(self) -> list[FeedRecord]:
        sql = "SELECT sequence, cid, previous, updated, expires FROM feeds ORDER BY sequence"
        async with self._db.execute(sql) as cursor:
            return [_feed(row) for row in await cursor.fetchall()]

    async def referenced_cids(self) -> set[str]:
        """Every CID the catalog still needs: current audio and covers, and feed snapshots."""
        cids: set[str] = set()
        sql = "SELECT audio_cid, cover_cid FROM tracks WHERE withdrawn_at IS NULL"
        async with self._db.execute(sql) as cursor:
            for audio, cover in await cursor.fetchall():
                cids.add(audio)
                if cover:
                    cids.add(cover)
        async with self._db.execute("SELECT cid FROM feeds") as cursor:
            cids.update(row[0] for row in await cursor.fetchall())
        return cids

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CatalogWrite]:
        """A write transaction that holds the database's write lock from its start.

        Everything inside commits together or not at all.
        """
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


class CatalogWrite:
    """The write operations, only available inside `Catalog.transaction()`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def latest_feed(self) -> FeedRecord | None:
        return await Catalog(self._db).latest_feed()

    async def tracks(self, *, include_withdrawn: bool = False) -> list[TrackRecord]:
        return await Catalog(self._db).tracks(include_withdrawn=include_withdrawn)

    async def put_track(self, manifest: dict[str, Any]) -> None:
        """Insert a new track or its next revision, keeping every earlier revision's manifest."""
        body = json.dumps(manifest, ensure_ascii=False, separators=(",", ":"))
        cover = manifest.get("cover", {}).get("cid") if manifest.get("cover") else None
        await self._db.execute(
            "INSERT INTO tracks (id, revision, title, published, audio_cid, cover_cid, manifest,"
            " added_order) VALUES (?, ?, ?, ?, ?, ?, ?,"
            " (SELECT COALESCE(MAX(added_order), 0) + 1 FROM tracks))"
            " ON CONFLICT(id) DO UPDATE SET revision = excluded.revision, title = excluded.title,"
            " audio_cid = excluded.audio_cid, cover_cid = excluded.cover_cid,"
            " manifest = excluded.manifest",
            (
                manifest["id"],
                manifest["revision"],
                manifest["title"],
                manifest["published"],
                manifest["audio"]["cid"],
                cover,
                body,
            ),
        )
        await self._db.execute(
            "INSERT INTO manifests (track_id, revision, audio_cid, manifest) VALUES (?, ?, ?, ?)",
            (manifest["id"], manifest["revision"], manifest["audio"]["cid"], body),
        )

    async def withdraw(self, track_id: str, at: str) -> None:
        await self._db.execute(
            "UPDATE tracks SET withdrawn_at = ? WHERE id = ? AND withdrawn_at IS NULL",
            (at, track_id),
        )

    async def withdrawn(self) -> list[tuple[str, str]]:
        sql = "SELECT id, withdrawn_at FROM tracks WHERE withdrawn_at IS NOT NULL"
        async with self._db.execute(sql + " ORDER BY withdrawn_at DESC, id") as cursor:
            return [(row[0], row[1]) for row in await cursor.fetchall()]

    async def append_feed(self, feed: FeedRecord) -> None:
        await self._db.execute(
            "INSERT INTO feeds (sequence, cid, previous, updated, expires) VALUES (?, ?, ?, ?, ?)",
            (feed.sequence, feed.cid, feed.previous, feed.updated, feed.expires),
        )


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise CatalogError(
            f"{path}: catalog schema {version} is newer than this Stave ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        statements = [s.strip() for s in script.split(";") if s.strip()]
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            await db.rollback()
            raise
        await db.commit()


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
        await _migrate(db, path)
        yield Catalog(db)
    except sqlite3.DatabaseError as e:
        raise CatalogError(f"{path}: {e}") from e
    finally:
        await db.close()

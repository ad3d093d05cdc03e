"""The catalog's tracks, every revision of their signed manifests, and the chain of feeds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.catalog.db import Area, compact_json, with_json
from node.errors import TrackNotFound


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


# In the order of TrackRecord's and FeedRecord's fields.
_TRACK_COLUMNS = "id, revision, title, published, audio_cid, cover_cid, manifest, withdrawn_at"
_FEED_COLUMNS = "sequence, cid, previous, updated, expires"


class TrackReads(Area):
    """Reading tracks, manifests and feeds."""

    async def tracks(self, *, include_withdrawn: bool = False) -> list[TrackRecord]:
        """Tracks newest first (by publication time, then by the order they were added)."""
        where = "" if include_withdrawn else "WHERE withdrawn_at IS NULL"
        sql = (
            f"SELECT {_TRACK_COLUMNS} FROM tracks {where} ORDER BY published DESC, added_order DESC"
        )
        return [TrackRecord(*with_json(row, 6)) for row in await self._rows(sql)]

    async def track(self, track_id: str) -> TrackRecord:
        row = await self._row(f"SELECT {_TRACK_COLUMNS} FROM tracks WHERE id = ?", (track_id,))
        if row is None:
            raise TrackNotFound(f"track {track_id}: no such track in the catalog")
        return TrackRecord(*with_json(row, 6))

    async def find_track(self, prefix: str) -> TrackRecord:
        """A track by its full id, its UUID, or an unambiguous prefix of its UUID."""
        wanted = prefix if prefix.startswith("urn:uuid:") else "urn:uuid:" + prefix
        escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql = f"SELECT {_TRACK_COLUMNS} FROM tracks WHERE id LIKE ? ESCAPE '\\' LIMIT 2"
        rows = await self._rows(sql, (escaped + "%",))
        if not rows or not prefix:
            raise TrackNotFound(f"track {prefix}: no such track in the catalog")
        if len(rows) > 1 and rows[0][0] != wanted:
            raise TrackNotFound(f"track {prefix}: more than one track starts with that id")
        return TrackRecord(*with_json(rows[0], 6))

    async def manifests_for_audio(self, cid: str) -> list[dict[str, Any]]:
        """Every manifest revision, of any track, whose audio has this CID."""
        sql = "SELECT manifest FROM manifests WHERE audio_cid = ? ORDER BY revision DESC"
        return [json.loads(row[0]) for row in await self._rows(sql, (cid,))]

    async def manifest(self, track_id: str, revision: int) -> dict[str, Any] | None:
        sql = "SELECT manifest FROM manifests WHERE track_id = ? AND revision = ?"
        row = await self._row(sql, (track_id, revision))
        return None if row is None else dict(json.loads(row[0]))

    async def latest_feed(self) -> FeedRecord | None:
        row = await self._row(f"SELECT {_FEED_COLUMNS} FROM feeds ORDER BY sequence DESC LIMIT 1")
        return None if row is None else FeedRecord(*row)

    async def feeds(self) -> list[FeedRecord]:
        sql = f"SELECT {_FEED_COLUMNS} FROM feeds ORDER BY sequence"
        return [FeedRecord(*row) for row in await self._rows(sql)]

    async def referenced_cids(self) -> set[str]:
        """Every CID the catalog still needs: current audio, covers and renditions, feed
        snapshots, and what the other areas need (the content of followed artists this node
        mirrors)."""
        cids = await super().referenced_cids()
        sql = "SELECT audio_cid, cover_cid FROM tracks WHERE withdrawn_at IS NULL"
        for audio, cover in await self._rows(sql):
            cids.add(audio)
            if cover:
                cids.add(cover)
        # Listening renditions (node/renditions.py) are named only inside the manifest.
        sql = (
            "SELECT json_extract(r.value, '$.cid') FROM tracks,"
            " json_each(tracks.manifest, '$.renditions') AS r WHERE withdrawn_at IS NULL"
        )
        cids.update(row[0] for row in await self._rows(sql) if isinstance(row[0], str))
        cids.update(row[0] for row in await self._rows("SELECT cid FROM feeds"))
        return cids


class TrackWrites(TrackReads):
    """Adding, revising and withdrawing tracks, and appending feeds."""

    async def put_track(self, manifest: dict[str, Any]) -> None:
        """Insert a new track or its next revision, keeping every earlier revision's manifest."""
        body = compact_json(manifest)
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
        return [
            (row[0], row[1]) for row in await self._rows(sql + " ORDER BY withdrawn_at DESC, id")
        ]

    async def append_feed(self, feed: FeedRecord) -> None:
        await self._db.execute(
            f"INSERT INTO feeds ({_FEED_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (feed.sequence, feed.cid, feed.previous, feed.updated, feed.expires),
        )

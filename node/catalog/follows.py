"""The catalog's follows (node/federation): artists this node follows, the feed last accepted
from each (its exact bytes) and that feed's tracks and releases, key rotations, known mirrors,
sync status."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.catalog.db import Area, compact_json, with_json
from node.errors import CatalogError


@dataclass(frozen=True)
class FollowRecord:
    """An artist this node follows: where, the feed last accepted, and how the last sync went."""

    artist: str
    name: str
    url: str
    feed_url: str
    hub_url: str | None
    mirror: bool
    followed_at: str
    sequence: int | None
    feed_cid: str | None
    etag: str | None
    updated: str | None
    expires: str | None
    accepted_at: str | None
    track_count: int
    checked_at: str | None
    synced_at: str | None
    last_error: str | None
    error_at: str | None
    failures: int


@dataclass(frozen=True)
class FollowedFeed:
    """The exact bytes of the feed last accepted from a followed artist."""

    artist: str
    sequence: int
    body: bytes
    cid: str
    etag: str | None


@dataclass(frozen=True)
class FollowedTrack:
    """A track of a followed artist, from the feed last accepted."""

    artist: str
    id: str
    revision: int
    title: str
    published: str
    audio_cid: str
    cover_cid: str | None
    manifest: dict[str, Any]


@dataclass(frozen=True)
class FollowedRelease:
    """A release of a followed artist, from the feed last accepted."""

    artist: str
    id: str
    revision: int
    title: str
    kind: str
    released: str
    published: str
    cover_cid: str | None
    document: dict[str, Any]


@dataclass(frozen=True)
class FeedReplacement:
    """A verified feed to store for a followed artist, in place of `replacing` (its sequence
    and CID; None when none was accepted yet) — only if that is still what is stored."""

    artist: str
    replacing: tuple[int, str] | None
    sequence: int
    body: bytes
    cid: str
    etag: str | None
    updated: str
    expires: str
    accepted_at: str
    name: str
    tracks: Sequence[Mapping[str, Any]]
    releases: Sequence[Mapping[str, Any]] = field(default=())


@dataclass(frozen=True)
class FollowRotation:
    """A key rotation accepted for a follow: `previous_artist` named `next_artist` its
    successor in `statement` (signed by `previous_artist`); `artist` is the follow's did now."""

    artist: str
    previous_artist: str
    next_artist: str
    statement: dict[str, Any]
    accepted_at: str


@dataclass(frozen=True)
class SyncStatus:
    """How one sync attempt went; `error` None means the feed was accepted or unchanged."""

    artist: str
    checked_at: str
    error: str | None


# In the order of FollowRecord's, FollowedTrack's and FollowRotation's fields.
_FOLLOW_SELECT = (
    "SELECT f.artist, f.name, f.url, f.feed_url, f.hub_url, f.mirror, f.followed_at, f.sequence,"
    " f.feed_cid, f.etag, f.updated, f.expires, f.accepted_at,"
    " (SELECT COUNT(*) FROM follow_tracks t WHERE t.artist = f.artist),"
    " s.checked_at, s.synced_at, s.last_error, s.error_at, COALESCE(s.failures, 0)"
    " FROM follows f LEFT JOIN follow_status s ON s.artist = f.artist"
)
_FOLLOWED_TRACK_COLUMNS = "artist, id, revision, title, published, audio_cid, cover_cid, manifest"
_ROTATION_COLUMNS = "artist, previous_artist, next_artist, statement, accepted_at"
_FOLLOWED_RELEASE_COLUMNS = (
    "artist, id, revision, title, kind, released, published, cover_cid, document"
)


def _follow(row: Sequence[Any]) -> FollowRecord:
    values = list(row)
    values[5] = bool(values[5])  # mirror
    return FollowRecord(*values)


class FollowReads(Area):
    """Reading follows, what was accepted from them, and what their nodes said."""

    async def follows(self) -> list[FollowRecord]:
        """Every followed artist, by name."""
        return [
            _follow(row) for row in await self._rows(_FOLLOW_SELECT + " ORDER BY f.name, f.artist")
        ]

    async def follow(self, artist: str) -> FollowRecord | None:
        row = await self._row(_FOLLOW_SELECT + " WHERE f.artist = ?", (artist,))
        return None if row is None else _follow(row)

    async def followed_feed(self, artist: str) -> FollowedFeed | None:
        """The exact bytes of the feed last accepted from `artist`, if any was."""
        sql = "SELECT artist, sequence, feed, feed_cid, etag FROM follows WHERE artist = ?"
        row = await self._row(sql + " AND feed IS NOT NULL", (artist,))
        return None if row is None else FollowedFeed(row[0], row[1], bytes(row[2]), row[3], row[4])

    async def followed_tracks(
        self, artist: str | None = None, *, limit: int | None = None
    ) -> list[FollowedTrack]:
        """Followed artists' current tracks (or one artist's), newest first."""
        params: list[Any] = []
        sql = f"SELECT {_FOLLOWED_TRACK_COLUMNS} FROM follow_tracks"
        if artist is not None:
            sql += " WHERE artist = ?"
            params.append(artist)
        sql += " ORDER BY published DESC, artist, position"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [FollowedTrack(*with_json(row, 7)) for row in await self._rows(sql, params)]

    async def followed_releases(self, artist: str | None = None) -> list[FollowedRelease]:
        """Followed artists' current releases (or one artist's), in the order of their feeds
        (newest first)."""
        params: list[Any] = []
        sql = f"SELECT {_FOLLOWED_RELEASE_COLUMNS} FROM follow_releases"
        if artist is not None:
            sql += " WHERE artist = ?"
            params.append(artist)
        sql += " ORDER BY released DESC, published DESC, artist, position"
        return [FollowedRelease(*with_json(row, 8)) for row in await self._rows(sql, params)]

    async def mirrored_cids(self) -> set[str]:
        """Every CID of the current tracks (audio, covers, renditions) and release covers of
        artists this node mirrors."""
        sql = (
            "SELECT t.audio_cid, t.cover_cid FROM follow_tracks t"
            " JOIN follows f ON f.artist = t.artist WHERE f.mirror = 1"
            " UNION ALL SELECT r.cover_cid, NULL FROM follow_releases r"
            " JOIN follows f ON f.artist = r.artist WHERE f.mirror = 1 AND r.cover_cid IS NOT NULL"
        )
        cids: set[str] = set()
        for audio, cover in await self._rows(sql):
            cids.add(audio)
            if cover:
                cids.add(cover)
        # Listening renditions are named only inside the manifest (a verified feed's manifest
        # has a list of them, each with a CID string).
        sql = (
            "SELECT json_extract(r.value, '$.cid') FROM follow_tracks t"
            " JOIN follows f ON f.artist = t.artist,"
            " json_each(t.manifest, '$.renditions') AS r WHERE f.mirror = 1"
        )
        cids.update(row[0] for row in await self._rows(sql) if isinstance(row[0], str))
        return cids

    async def referenced_cids(self) -> set[str]:
        """What the other areas need, and the content of followed artists this node mirrors."""
        return await super().referenced_cids() | await self.mirrored_cids()

    async def followed_media_type(self, cid: str) -> str | None:
        """The media type a followed artist's manifest gives the audio, or the listening
        rendition, with this CID."""
        sql = "SELECT manifest FROM follow_tracks WHERE audio_cid = ? LIMIT 1"
        row = await self._row(sql, (cid,))
        if row is None:
            sql = (
                "SELECT json_extract(r.value, '$.mediaType') FROM follow_tracks t,"
                " json_each(t.manifest, '$.renditions') AS r"
                " WHERE json_extract(r.value, '$.cid') = ? LIMIT 1"
            )
            found = await self._row(sql, (cid,))
            return found[0] if found is not None and isinstance(found[0], str) else None
        media_type = (json.loads(row[0]).get("audio") or {}).get("mediaType")
        return media_type if isinstance(media_type, str) else None

    async def rotated_follow(self, did: str) -> str | None:
        """The did a follow known before as `did` goes by now, after key rotations; None if no
        follow was ever known by it."""
        sql = "SELECT artist FROM follow_rotations WHERE previous_artist = ? LIMIT 1"
        row = await self._row(sql, (did,))
        return None if row is None else str(row[0])

    async def follow_rotations(self, artist: str) -> list[FollowRotation]:
        """The key rotations accepted for the follow of `artist`, oldest first."""
        sql = (
            f"SELECT {_ROTATION_COLUMNS} FROM follow_rotations WHERE artist = ?"
            " ORDER BY accepted_at, rowid"
        )
        return [FollowRotation(*with_json(row, 3)) for row in await self._rows(sql, (artist,))]

    async def known_mirrors(self, artist: str) -> list[str]:
        """Base URLs of other nodes known to mirror `artist`."""
        sql = "SELECT DISTINCT url FROM known_mirrors WHERE artist = ? ORDER BY seen_at DESC, url"
        return [row[0] for row in await self._rows(sql, (artist,))]


class FollowWrites(FollowReads):
    """Following, accepting feeds, re-keying after rotations, recording how syncs went."""

    async def add_follow(
        self,
        *,
        artist: str,
        name: str,
        url: str,
        feed_url: str,
        hub_url: str | None,
        mirror: bool,
        followed_at: str,
    ) -> None:
        """Follow `artist`, or update where it is followed from; an accepted feed is kept."""
        await self._db.execute(
            "INSERT INTO follows (artist, name, url, feed_url, hub_url, mirror, followed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(artist) DO UPDATE SET name = excluded.name,"
            " url = excluded.url, feed_url = excluded.feed_url, hub_url = excluded.hub_url,"
            " mirror = excluded.mirror",
            (artist, name, url, feed_url, hub_url, int(mirror), followed_at),
        )

    async def set_mirror(self, artist: str, mirror: bool) -> None:
        await self._db.execute(
            "UPDATE follows SET mirror = ? WHERE artist = ?", (int(mirror), artist)
        )

    async def remove_follow(self, artist: str) -> None:
        """Forget `artist`: its accepted feed, tracks, status and what its node told us."""
        await self._db.execute("DELETE FROM follows WHERE artist = ?", (artist,))
        await self._db.execute("DELETE FROM known_mirrors WHERE via = ?", (artist,))

    async def accept_feeds(self, replacements: Sequence[FeedReplacement]) -> list[bool]:
        """Store each replacement — the feed's exact bytes and all its tracks instead of the
        ones stored — if its artist is followed and `replacing` is what is stored now; which
        ones were stored, in order. One artist at most once per call."""
        current: dict[str, tuple[int | None, str | None]] = {}
        artists = [r.artist for r in replacements]
        for start in range(0, len(artists), 500):
            chunk = artists[start : start + 500]
            sql = "SELECT artist, sequence, feed_cid FROM follows WHERE artist IN ("
            sql += ", ".join("?" * len(chunk)) + ")"
            current.update({row[0]: (row[1], row[2]) for row in await self._rows(sql, chunk)})
        stored = [
            r.artist in current and current[r.artist] == (r.replacing or (None, None))
            for r in replacements
        ]
        chosen = [r for r, ok in zip(replacements, stored, strict=True) if ok]
        await self._db.executemany(
            "UPDATE follows SET sequence = ?, feed = ?, feed_cid = ?, etag = ?, updated = ?,"
            " expires = ?, accepted_at = ?, name = ? WHERE artist = ?",
            [
                (
                    r.sequence,
                    r.body,
                    r.cid,
                    r.etag,
                    r.updated,
                    r.expires,
                    r.accepted_at,
                    r.name,
                    r.artist,
                )
                for r in chosen
            ],
        )
        for table in ("follow_tracks", "follow_releases"):
            await self._db.executemany(
                f"DELETE FROM {table} WHERE artist = ?",
                [(r.artist,) for r in chosen if r.replacing is not None],
            )
        await self._db.executemany(
            f"INSERT INTO follow_releases ({_FOLLOWED_RELEASE_COLUMNS}, position)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.artist,
                    release["id"],
                    release["revision"],
                    release["title"],
                    release["kind"],
                    release["released"],
                    release["published"],
                    (release.get("cover") or {}).get("cid"),
                    compact_json(release),
                    position,
                )
                for r in chosen
                for position, release in enumerate(r.releases)
            ],
        )
        await self._db.executemany(
            "INSERT INTO follow_tracks (artist, id, position, revision, title, published,"
            " audio_cid, cover_cid, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.artist,
                    manifest["id"],
                    position,
                    manifest["revision"],
                    manifest["title"],
                    manifest["published"],
                    manifest["audio"]["cid"],
                    (manifest.get("cover") or {}).get("cid"),
                    compact_json(manifest),
                )
                for r in chosen
                for position, manifest in enumerate(r.tracks)
            ],
        )
        return stored

    async def accept_feed(self, replacement: FeedReplacement) -> bool:
        """`accept_feeds` for one: False, changing nothing, if it could not be stored."""
        return (await self.accept_feeds([replacement]))[0]

    async def rotate_follow(
        self, previous: str, statements: Sequence[Mapping[str, Any]], at: str
    ) -> str:
        """Re-key the follow of `previous` to the did its rotation `statements` (verified, in
        order, the first by `previous`) lead to, everywhere the artist's did is stored, and
        keep each statement in the follow's history. Returns the new did.

        CatalogError if `previous` is not followed or the new did is followed already.
        """
        current = statements[-1]["next"]
        if await self.follow(previous) is None:
            raise CatalogError(f"{previous}: no longer followed")
        if await self.follow(current) is not None:
            raise CatalogError(f"{current}: already followed on its own; unfollow it first")
        # The did is the key of follows and what the other tables point at: every row moves
        # together, and the foreign keys are checked at the commit.
        await self._db.execute("PRAGMA defer_foreign_keys = ON")
        for sql in (
            "UPDATE follows SET artist = ?1 WHERE artist = ?2",
            "UPDATE follow_tracks SET artist = ?1 WHERE artist = ?2",
            "UPDATE follow_releases SET artist = ?1 WHERE artist = ?2",
            "UPDATE follow_status SET artist = ?1 WHERE artist = ?2",
            "UPDATE follow_rotations SET artist = ?1 WHERE artist = ?2",
            "UPDATE websub_subscriptions SET artist = ?1 WHERE artist = ?2",
            "UPDATE OR REPLACE known_mirrors SET artist = ?1 WHERE artist = ?2",
            "UPDATE OR REPLACE known_mirrors SET via = ?1 WHERE via = ?2",
        ):
            await self._db.execute(sql, (current, previous))
        await self._db.executemany(
            f"INSERT OR REPLACE INTO follow_rotations ({_ROTATION_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            [
                (current, statement["artist"], statement["next"], compact_json(statement), at)
                for statement in statements
            ],
        )
        return str(current)

    async def set_follow_etag(self, artist: str, etag: str | None) -> None:
        await self._db.execute("UPDATE follows SET etag = ? WHERE artist = ?", (etag, artist))

    async def record_sync_status(self, statuses: Sequence[SyncStatus]) -> None:
        """Record how sync attempts went; a failure counts up, a success resets the count."""
        await self._db.executemany(
            "INSERT INTO follow_status (artist, checked_at, synced_at, last_error, error_at,"
            " failures) SELECT ?1, ?2, CASE WHEN ?3 IS NULL THEN ?2 END, ?3,"
            " CASE WHEN ?3 IS NOT NULL THEN ?2 END, CASE WHEN ?3 IS NULL THEN 0 ELSE 1 END"
            " WHERE EXISTS (SELECT 1 FROM follows WHERE artist = ?1)"
            " ON CONFLICT(artist) DO UPDATE SET checked_at = excluded.checked_at,"
            " synced_at = COALESCE(excluded.synced_at, synced_at),"
            " last_error = excluded.last_error, error_at = COALESCE(excluded.error_at, error_at),"
            " failures = CASE WHEN excluded.last_error IS NULL THEN 0 ELSE failures + 1 END",
            [(s.artist, s.checked_at, s.error) for s in statuses],
        )

    async def set_known_mirrors(
        self, via: str, mirrors: Sequence[tuple[str, str]], at: str
    ) -> None:
        """Replace what `via`'s node says it mirrors: (artist, base URL of the mirror) pairs."""
        await self._db.execute("DELETE FROM known_mirrors WHERE via = ?", (via,))
        await self._db.executemany(
            "INSERT OR IGNORE INTO known_mirrors (artist, url, via, seen_at) VALUES (?, ?, ?, ?)",
            [(artist, url, via, at) for artist, url in mirrors],
        )

"""The SQLite catalog: tracks, their signed manifests, and the chain of feed documents.

This module is the only one that opens the catalog database. Schema changes are numbered
migrations applied in order inside one transaction each; `PRAGMA user_version` records the last.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass
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
    # 2: follows (node/federation): artists this node follows, the feed last accepted from each
    # (its exact bytes) and that feed's tracks, sync status kept apart from that accepted state,
    # nodes known to mirror an artist, and WebSub subscriptions in both directions.
    """
    CREATE TABLE follows (
        artist TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        url TEXT NOT NULL,
        feed_url TEXT NOT NULL,
        hub_url TEXT,
        mirror INTEGER NOT NULL DEFAULT 0,
        followed_at TEXT NOT NULL,
        sequence INTEGER,
        feed BLOB,
        feed_cid TEXT,
        etag TEXT,
        updated TEXT,
        expires TEXT,
        accepted_at TEXT
    );
    CREATE TABLE follow_tracks (
        artist TEXT NOT NULL REFERENCES follows(artist) ON DELETE CASCADE,
        id TEXT NOT NULL,
        position INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        title TEXT NOT NULL,
        published TEXT NOT NULL,
        audio_cid TEXT NOT NULL,
        cover_cid TEXT,
        manifest TEXT NOT NULL,
        PRIMARY KEY (artist, id)
    );
    CREATE INDEX follow_tracks_by_published ON follow_tracks(published);
    CREATE INDEX follow_tracks_by_audio ON follow_tracks(audio_cid);
    CREATE TABLE follow_status (
        artist TEXT PRIMARY KEY REFERENCES follows(artist) ON DELETE CASCADE,
        checked_at TEXT,
        synced_at TEXT,
        last_error TEXT,
        error_at TEXT,
        failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE known_mirrors (
        artist TEXT NOT NULL,
        url TEXT NOT NULL,
        via TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (artist, url, via)
    );
    CREATE TABLE websub_subscriptions (
        callback_id TEXT PRIMARY KEY,
        artist TEXT NOT NULL,
        hub_url TEXT NOT NULL,
        topic TEXT NOT NULL,
        secret TEXT NOT NULL,
        mode TEXT NOT NULL,
        requested_at REAL NOT NULL,
        lease_seconds INTEGER,
        expires_at REAL,
        last_error TEXT
    );
    CREATE TABLE websub_subscribers (
        topic TEXT NOT NULL,
        callback TEXT NOT NULL,
        secret TEXT,
        lease_seconds INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        subscribed_at TEXT NOT NULL,
        delivered_sequence INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (topic, callback)
    );
    """,
    # 3: pins (node/pinning): per CID, whether this node wants it pinned in Kubo or unpinned, how
    # far that got and when to retry; and the IPNS record of the latest feed under the artist's key.
    """
    CREATE TABLE pins (
        cid TEXT PRIMARY KEY,
        want TEXT NOT NULL CHECK (want IN ('pinned', 'unpinned')),
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        generation INTEGER NOT NULL DEFAULT 1,
        queued TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX pins_by_state ON pins(state, next_attempt);
    CREATE TABLE ipns (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sequence INTEGER,
        cid TEXT,
        published_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        updated TEXT NOT NULL
    );
    """,
    # 4: key rotations of followed artists (docs/protocol-extensions.md): for each follow, the
    # dids it was known by before and the statement, signed by each, that named its successor.
    """
    CREATE TABLE follow_rotations (
        artist TEXT NOT NULL REFERENCES follows(artist) ON DELETE CASCADE,
        previous_artist TEXT NOT NULL,
        next_artist TEXT NOT NULL,
        statement TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        PRIMARY KEY (artist, previous_artist)
    );
    CREATE INDEX follow_rotations_by_previous ON follow_rotations(previous_artist);
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


# --- follows (node/federation) --------------------------------------------------------------


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


@dataclass(frozen=True)
class WebSubSubscription:
    """A subscription this node asked a hub for (the subscriber side of WebSub)."""

    callback_id: str
    artist: str
    hub_url: str
    topic: str
    secret: str
    mode: str
    requested_at: float
    lease_seconds: int | None
    expires_at: float | None
    last_error: str | None


@dataclass(frozen=True)
class HubSubscriber:
    """A verified subscription to this node's own feed (the hub side of WebSub)."""

    topic: str
    callback: str
    secret: str | None
    lease_seconds: int
    expires_at: float
    subscribed_at: str
    delivered_sequence: int
    attempts: int
    next_attempt_at: float
    last_error: str | None


_FOLLOW_SELECT = (
    "SELECT f.artist, f.name, f.url, f.feed_url, f.hub_url, f.mirror, f.followed_at, f.sequence,"
    " f.feed_cid, f.etag, f.updated, f.expires, f.accepted_at,"
    " (SELECT COUNT(*) FROM follow_tracks t WHERE t.artist = f.artist),"
    " s.checked_at, s.synced_at, s.last_error, s.error_at, COALESCE(s.failures, 0)"
    " FROM follows f LEFT JOIN follow_status s ON s.artist = f.artist"
)
_FOLLOWED_TRACK_COLUMNS = "artist, id, revision, title, published, audio_cid, cover_cid, manifest"
_SUBSCRIPTION_COLUMNS = (
    "callback_id, artist, hub_url, topic, secret, mode, requested_at, lease_seconds, expires_at,"
    " last_error"
)
_SUBSCRIBER_COLUMNS = (
    "topic, callback, secret, lease_seconds, expires_at, subscribed_at, delivered_sequence,"
    " attempts, next_attempt_at, last_error"
)


def _follow(row: Sequence[Any]) -> FollowRecord:
    return FollowRecord(
        artist=row[0],
        name=row[1],
        url=row[2],
        feed_url=row[3],
        hub_url=row[4],
        mirror=bool(row[5]),
        followed_at=row[6],
        sequence=row[7],
        feed_cid=row[8],
        etag=row[9],
        updated=row[10],
        expires=row[11],
        accepted_at=row[12],
        track_count=row[13],
        checked_at=row[14],
        synced_at=row[15],
        last_error=row[16],
        error_at=row[17],
        failures=row[18],
    )


def _followed_track(row: Sequence[Any]) -> FollowedTrack:
    return FollowedTrack(
        artist=row[0],
        id=row[1],
        revision=row[2],
        title=row[3],
        published=row[4],
        audio_cid=row[5],
        cover_cid=row[6],
        manifest=json.loads(row[7]),
    )


# --- pins (node/pinning) --------------------------------------------------------------------

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


_PIN_COLUMNS = "cid, want, state, attempts, next_attempt, last_error, generation, queued, updated"
_IPNS_COLUMNS = (
    "key, name, sequence, cid, published_at, attempts, next_attempt, last_error, updated"
)


class Catalog:
    """An open catalog. Use `async with open_catalog(path) as catalog`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection serves the whole process: its transactions must take turns.
        self._write_lock = asyncio.Lock()

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
        """Every CID the catalog still needs: current audio and covers, feed snapshots, and
        the content of followed artists this node mirrors."""
        cids: set[str] = await self.mirrored_cids()
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

    # --- backup and restore (node/backup.py) ------------------------------------------------

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
        async with self.transaction():
            await self._db.execute("DELETE FROM pins")
            await self._db.execute("DELETE FROM ipns")

    # --- follows (node/federation) ----------------------------------------------------------

    async def follows(self) -> list[FollowRecord]:
        """Every followed artist, by name."""
        async with self._db.execute(_FOLLOW_SELECT + " ORDER BY f.name, f.artist") as cursor:
            return [_follow(row) for row in await cursor.fetchall()]

    async def follow(self, artist: str) -> FollowRecord | None:
        async with self._db.execute(_FOLLOW_SELECT + " WHERE f.artist = ?", (artist,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _follow(row)

    async def followed_feed(self, artist: str) -> FollowedFeed | None:
        """The exact bytes of the feed last accepted from `artist`, if any was."""
        sql = "SELECT artist, sequence, feed, feed_cid, etag FROM follows WHERE artist = ?"
        async with self._db.execute(sql + " AND feed IS NOT NULL", (artist,)) as cursor:
            row = await cursor.fetchone()
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
        async with self._db.execute(sql, params) as cursor:
            return [_followed_track(row) for row in await cursor.fetchall()]

    async def mirrored_cids(self) -> set[str]:
        """Every CID of the current tracks of artists this node mirrors."""
        sql = (
            "SELECT t.audio_cid, t.cover_cid FROM follow_tracks t"
            " JOIN follows f ON f.artist = t.artist WHERE f.mirror = 1"
        )
        cids: set[str] = set()
        async with self._db.execute(sql) as cursor:
            for audio, cover in await cursor.fetchall():
                cids.add(audio)
                if cover:
                    cids.add(cover)
        return cids

    async def followed_media_type(self, cid: str) -> str | None:
        """The media type a followed artist's manifest gives the audio with this CID."""
        sql = "SELECT manifest FROM follow_tracks WHERE audio_cid = ? LIMIT 1"
        async with self._db.execute(sql, (cid,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        media_type = (json.loads(row[0]).get("audio") or {}).get("mediaType")
        return media_type if isinstance(media_type, str) else None

    async def rotated_follow(self, did: str) -> str | None:
        """The did a follow known before as `did` goes by now, after key rotations; None if no
        follow was ever known by it."""
        sql = "SELECT artist FROM follow_rotations WHERE previous_artist = ? LIMIT 1"
        async with self._db.execute(sql, (did,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def follow_rotations(self, artist: str) -> list[FollowRotation]:
        """The key rotations accepted for the follow of `artist`, oldest first."""
        sql = (
            "SELECT artist, previous_artist, next_artist, statement, accepted_at"
            " FROM follow_rotations WHERE artist = ? ORDER BY accepted_at, rowid"
        )
        async with self._db.execute(sql, (artist,)) as cursor:
            return [
                FollowRotation(row[0], row[1], row[2], json.loads(row[3]), row[4])
                for row in await cursor.fetchall()
            ]

    async def known_mirrors(self, artist: str) -> list[str]:
        """Base URLs of other nodes known to mirror `artist`."""
        sql = "SELECT DISTINCT url FROM known_mirrors WHERE artist = ? ORDER BY seen_at DESC, url"
        async with self._db.execute(sql, (artist,)) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def websub_subscription(self, callback_id: str) -> WebSubSubscription | None:
        sql = f"SELECT {_SUBSCRIPTION_COLUMNS} FROM websub_subscriptions WHERE callback_id = ?"
        async with self._db.execute(sql, (callback_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else WebSubSubscription(*row)

    async def websub_subscriptions(self, artist: str | None = None) -> list[WebSubSubscription]:
        where, params = ("WHERE artist = ?", (artist,)) if artist is not None else ("", ())
        sql = f"SELECT {_SUBSCRIPTION_COLUMNS} FROM websub_subscriptions {where}"
        async with self._db.execute(sql + " ORDER BY requested_at", params) as cursor:
            return [WebSubSubscription(*row) for row in await cursor.fetchall()]

    async def hub_subscribers(self, topic: str | None = None) -> list[HubSubscriber]:
        where, params = ("WHERE topic = ?", (topic,)) if topic is not None else ("", ())
        sql = f"SELECT {_SUBSCRIBER_COLUMNS} FROM websub_subscribers {where}"
        async with self._db.execute(sql + " ORDER BY subscribed_at, callback", params) as cursor:
            return [HubSubscriber(*row) for row in await cursor.fetchall()]

    # --- pins (node/pinning) ----------------------------------------------------------------

    async def pin(self, cid: str) -> PinRecord | None:
        """The pin wish for `cid`, if one was ever queued and not yet completed as an unpin."""
        sql = f"SELECT {_PIN_COLUMNS} FROM pins WHERE cid = ?"
        async with self._db.execute(sql, (cid,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else PinRecord(*row)

    async def pins(self, state: str | None = None) -> list[PinRecord]:
        """Every pin wish (or those in `state`), oldest queued first."""
        where, params = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        sql = f"SELECT {_PIN_COLUMNS} FROM pins {where} ORDER BY queued, cid"
        async with self._db.execute(sql, params) as cursor:
            return [PinRecord(*row) for row in await cursor.fetchall()]

    async def due_pins(self, now: float, limit: int = 64) -> list[PinRecord]:
        """Pending wishes whose next attempt is due at `now`, the longest waiting first."""
        sql = (
            f"SELECT {_PIN_COLUMNS} FROM pins WHERE state = 'pending' AND next_attempt <= ?"
            " ORDER BY next_attempt, queued, cid LIMIT ?"
        )
        async with self._db.execute(sql, (now, limit)) as cursor:
            return [PinRecord(*row) for row in await cursor.fetchall()]

    async def next_pin_attempt(self) -> float | None:
        """When the next pending wish is due (a Unix time), None when nothing is pending."""
        sql = "SELECT MIN(next_attempt) FROM pins WHERE state = 'pending'"
        async with self._db.execute(sql) as cursor:
            row = await cursor.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def pin_counts(self) -> dict[tuple[str, str], int]:
        """How many wishes there are of each (want, state)."""
        sql = "SELECT want, state, COUNT(*) FROM pins GROUP BY want, state"
        async with self._db.execute(sql) as cursor:
            return {(row[0], row[1]): row[2] for row in await cursor.fetchall()}

    async def ipns_record(self) -> IpnsRecord | None:
        """The IPNS record of the artist's key, once an attempt to publish one was made."""
        sql = f"SELECT {_IPNS_COLUMNS} FROM ipns ORDER BY updated DESC LIMIT 1"
        async with self._db.execute(sql) as cursor:
            row = await cursor.fetchone()
        return None if row is None else IpnsRecord(*row)


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

    # --- follows (node/federation) ----------------------------------------------------------

    async def follow(self, artist: str) -> FollowRecord | None:
        return await Catalog(self._db).follow(artist)

    async def followed_feed(self, artist: str) -> FollowedFeed | None:
        return await Catalog(self._db).followed_feed(artist)

    async def followed_tracks(self, artist: str) -> list[FollowedTrack]:
        return await Catalog(self._db).followed_tracks(artist)

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
            async with self._db.execute(sql, chunk) as cursor:
                current.update({row[0]: (row[1], row[2]) for row in await cursor.fetchall()})
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
        await self._db.executemany(
            "DELETE FROM follow_tracks WHERE artist = ?",
            [(r.artist,) for r in chosen if r.replacing is not None],
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
                    json.dumps(manifest, ensure_ascii=False, separators=(",", ":")),
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
            "UPDATE follow_status SET artist = ?1 WHERE artist = ?2",
            "UPDATE follow_rotations SET artist = ?1 WHERE artist = ?2",
            "UPDATE websub_subscriptions SET artist = ?1 WHERE artist = ?2",
            "UPDATE OR REPLACE known_mirrors SET artist = ?1 WHERE artist = ?2",
            "UPDATE OR REPLACE known_mirrors SET via = ?1 WHERE via = ?2",
        ):
            await self._db.execute(sql, (current, previous))
        await self._db.executemany(
            "INSERT OR REPLACE INTO follow_rotations"
            " (artist, previous_artist, next_artist, statement, accepted_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (
                    current,
                    statement["artist"],
                    statement["next"],
                    json.dumps(statement, ensure_ascii=False, separators=(",", ":")),
                    at,
                )
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

    async def put_websub_subscription(self, subscription: WebSubSubscription) -> None:
        await self._db.execute(
            f"INSERT OR REPLACE INTO websub_subscriptions ({_SUBSCRIPTION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            astuple(subscription),
        )

    async def remove_websub_subscription(self, callback_id: str) -> None:
        await self._db.execute(
            "DELETE FROM websub_subscriptions WHERE callback_id = ?", (callback_id,)
        )

    async def put_hub_subscriber(self, subscriber: HubSubscriber) -> None:
        """Add a verified subscription, or renew it (its delivery state is kept)."""
        await self._db.execute(
            f"INSERT INTO websub_subscribers ({_SUBSCRIBER_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(topic, callback) DO UPDATE SET"
            " secret = excluded.secret, lease_seconds = excluded.lease_seconds,"
            " expires_at = excluded.expires_at",
            astuple(subscriber),
        )

    async def remove_hub_subscriber(self, topic: str, callback: str) -> None:
        await self._db.execute(
            "DELETE FROM websub_subscribers WHERE topic = ? AND callback = ?", (topic, callback)
        )

    async def remove_expired_hub_subscribers(self, now: float) -> int:
        cursor = await self._db.execute(
            "DELETE FROM websub_subscribers WHERE expires_at <= ?", (now,)
        )
        return cursor.rowcount

    async def record_delivery(
        self,
        topic: str,
        callback: str,
        *,
        delivered_sequence: int,
        attempts: int,
        next_attempt_at: float,
        error: str | None,
    ) -> None:
        await self._db.execute(
            "UPDATE websub_subscribers SET delivered_sequence = ?, attempts = ?,"
            " next_attempt_at = ?, last_error = ? WHERE topic = ? AND callback = ?",
            (delivered_sequence, attempts, next_attempt_at, error, topic, callback),
        )

    # --- pins (node/pinning) ----------------------------------------------------------------

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
        referenced = await Catalog(self._db).referenced_cids()
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
        referenced = await Catalog(self._db).referenced_cids()
        sql = "SELECT cid, want FROM pins"
        async with self._db.execute(sql) as cursor:
            wants = {row[0]: row[1] for row in await cursor.fetchall()}
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
        # 256 KiB of page cache rather than SQLite's 2 MiB, per connection: pages come back
        # from the OS's cache, and two open connections filled theirs in an idle node.
        await db.execute("PRAGMA cache_size = -256")
        await _migrate(db, path)
        yield Catalog(db)
    except sqlite3.DatabaseError as e:
        raise CatalogError(f"{path}: {e}") from e
    finally:
        await db.close()

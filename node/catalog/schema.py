"""The catalog's schema: numbered migrations, applied in order inside one transaction each;
`PRAGMA user_version` records the last. A new area appends one migration; none is ever edited."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from node.errors import CatalogError

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
    # 5: the fediverse (node/catalog/fediverse.py): ActivityPub followers, blocked domains, the
    # post of each track, and the durable queue of outbound activities, one row per inbox.
    """
    CREATE TABLE fediverse_followers (
        actor TEXT PRIMARY KEY,
        inbox TEXT NOT NULL,
        shared_inbox TEXT,
        domain TEXT NOT NULL,
        acct TEXT,
        follow_id TEXT,
        followed_at TEXT NOT NULL
    );
    CREATE INDEX fediverse_followers_by_domain ON fediverse_followers(domain);
    CREATE TABLE fediverse_blocks (
        domain TEXT PRIMARY KEY,
        blocked_at TEXT NOT NULL
    );
    CREATE TABLE fediverse_posts (
        track TEXT PRIMARY KEY,
        object_id TEXT NOT NULL UNIQUE,
        object TEXT NOT NULL,
        revision INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        published TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE fediverse_activities (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        activity_id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        queued TEXT NOT NULL
    );
    CREATE TABLE fediverse_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        activity INTEGER NOT NULL REFERENCES fediverse_activities(id) ON DELETE CASCADE,
        inbox TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        queued TEXT NOT NULL,
        updated TEXT,
        UNIQUE (activity, inbox)
    );
    CREATE INDEX fediverse_deliveries_due ON fediverse_deliveries(state, next_attempt);
    """,
    # 6: releases (node/catalog/releases.py; docs/protocol-extensions.md): each release's current
    # signed document, every revision of it, the tracks it lists; and the releases of the feed
    # last accepted from each followed artist (node/catalog/follows.py).
    """
    CREATE TABLE releases (
        id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        title TEXT NOT NULL,
        kind TEXT NOT NULL,
        released TEXT NOT NULL,
        published TEXT NOT NULL,
        cover_cid TEXT,
        document TEXT NOT NULL,
        added_order INTEGER NOT NULL,
        withdrawn_at TEXT
    );
    CREATE TABLE release_revisions (
        release_id TEXT NOT NULL REFERENCES releases(id),
        revision INTEGER NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (release_id, revision)
    );
    CREATE TABLE release_tracks (
        release_id TEXT NOT NULL REFERENCES releases(id),
        position INTEGER NOT NULL,
        track_id TEXT NOT NULL,
        PRIMARY KEY (release_id, position)
    );
    CREATE INDEX release_tracks_by_track ON release_tracks(track_id);
    CREATE TABLE follow_releases (
        artist TEXT NOT NULL REFERENCES follows(artist) ON DELETE CASCADE,
        id TEXT NOT NULL,
        position INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        title TEXT NOT NULL,
        kind TEXT NOT NULL,
        released TEXT NOT NULL,
        published TEXT NOT NULL,
        cover_cid TEXT,
        document TEXT NOT NULL,
        PRIMARY KEY (artist, id)
    );
    CREATE INDEX follow_releases_by_cover ON follow_releases(cover_cid);
    """,
    # 7: a release is posted to the fediverse once (node/fediverse/outbox.py): a post is of a
    # track or of a release, its `track` column holding the id of either.
    """
    ALTER TABLE fediverse_posts ADD COLUMN kind TEXT NOT NULL DEFAULT 'track'
        CHECK (kind IN ('track', 'release'))
    """,
)


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Apply every migration the catalog at `path` has not had yet; CatalogError if it is newer."""
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

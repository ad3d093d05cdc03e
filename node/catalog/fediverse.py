"""The catalog's fediverse (node/fediverse/): the actors that follow the artist, the domains
the artist blocked, the posts (one per loose track and one per release, the `Note` as served),
and the durable queue of outbound activities, one delivery per inbox, with its retries.

A delivery is `pending` (to send at `next_attempt`, a Unix time), `done`, or `failed` (given up,
`last_error` says why). The worker claims due deliveries by setting `next_attempt` past the time
it will take to send them (a lease), so a node killed mid-send sends them again only after the
lease runs out, and a node that finished a send records it before it claims more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.catalog.db import Area, compact_json

_NOW = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
DELIVERY_STATES = ("pending", "done", "failed")
POST_KINDS = ("track", "release")


@dataclass(frozen=True)
class FediverseFollower:
    """An ActivityPub actor that follows the artist: its id, where to deliver to it (its
    `sharedInbox` when it has one, else its `inbox`), its host and its `acct:` when known."""

    actor: str
    inbox: str
    shared_inbox: str | None
    domain: str
    acct: str | None
    follow_id: str | None
    followed_at: str

    @property
    def delivery_inbox(self) -> str:
        return self.shared_inbox or self.inbox


@dataclass(frozen=True)
class FediversePost:
    """The post of one track or release (`kind`): its object's id, the object as served (a
    `Note`, or a `Tombstone` once it was withdrawn), the revision it was made from (of the
    track's manifest or of the release document). `track` is the track's or release's id."""

    track: str
    object_id: str
    object: dict[str, Any]
    revision: int
    deleted: bool
    published: str
    updated: str
    kind: str = "track"


@dataclass(frozen=True)
class Delivery:
    """One activity to deliver to one inbox, and how far that got."""

    id: int
    activity_id: str
    body: bytes
    inbox: str
    state: str
    attempts: int
    next_attempt: float
    last_error: str | None
    queued: str


_FOLLOWER_COLUMNS = "actor, inbox, shared_inbox, domain, acct, follow_id, followed_at"
_POST_COLUMNS = "track, object_id, object, revision, deleted, published, updated, kind"
_DELIVERY_COLUMNS = (
    "d.id, a.activity_id, a.body, d.inbox, d.state, d.attempts, d.next_attempt, d.last_error,"
    " d.queued"
)


def _post(row: Any) -> FediversePost:
    values = list(row)
    return FediversePost(
        values[0], values[1], json.loads(values[2]), values[3], bool(values[4]), *values[5:]
    )


def _delivery(row: Any) -> Delivery:
    values = list(row)
    values[2] = values[2].encode("utf-8")
    return Delivery(*values)


class FediverseReads(Area):
    """Reading followers, blocks, posts and the delivery queue."""

    async def fediverse_followers(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[FediverseFollower]:
        """Followers ordered by actor id, those after `after` when given, at most `limit`."""
        sql = f"SELECT {_FOLLOWER_COLUMNS} FROM fediverse_followers"
        params: list[Any] = []
        if after is not None:
            sql += " WHERE actor > ?"
            params.append(after)
        sql += " ORDER BY actor"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [FediverseFollower(*row) for row in await self._rows(sql, params)]

    async def fediverse_follower(self, actor: str) -> FediverseFollower | None:
        row = await self._row(
            f"SELECT {_FOLLOWER_COLUMNS} FROM fediverse_followers WHERE actor = ?", (actor,)
        )
        return None if row is None else FediverseFollower(*row)

    async def fediverse_follower_count(self) -> int:
        row = await self._row("SELECT COUNT(*) FROM fediverse_followers")
        return int(row[0]) if row else 0

    async def follower_inboxes(self) -> list[str]:
        """Every inbox to deliver a post to: one per shared inbox, else one per follower."""
        sql = "SELECT DISTINCT COALESCE(shared_inbox, inbox) FROM fediverse_followers ORDER BY 1"
        return [row[0] for row in await self._rows(sql)]

    async def blocked_domains(self) -> list[str]:
        rows = await self._rows("SELECT domain FROM fediverse_blocks ORDER BY domain")
        return [row[0] for row in rows]

    async def is_domain_blocked(self, domain: str) -> bool:
        """Whether `domain` or a domain it is under (`a.b.example` under `b.example`) is
        blocked."""
        labels = domain.lower().rstrip(".").split(".")
        candidates = [".".join(labels[i:]) for i in range(len(labels))]
        marks = ", ".join("?" for _ in candidates)
        row = await self._row(
            f"SELECT 1 FROM fediverse_blocks WHERE domain IN ({marks}) LIMIT 1", candidates
        )
        return row is not None

    async def fediverse_posts(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int | None = None
    ) -> list[FediversePost]:
        """Posts, newest first (by when first published, then track id)."""
        where = "" if include_deleted else "WHERE deleted = 0"
        sql = f"SELECT {_POST_COLUMNS} FROM fediverse_posts {where}"
        sql += " ORDER BY published DESC, track DESC LIMIT ? OFFSET ?"
        rows = await self._rows(sql, (-1 if limit is None else limit, offset))
        return [_post(row) for row in rows]

    async def fediverse_post_count(self) -> int:
        row = await self._row("SELECT COUNT(*) FROM fediverse_posts WHERE deleted = 0")
        return int(row[0]) if row else 0

    async def fediverse_post(self, track: str) -> FediversePost | None:
        row = await self._row(
            f"SELECT {_POST_COLUMNS} FROM fediverse_posts WHERE track = ?", (track,)
        )
        return None if row is None else _post(row)

    async def fediverse_post_by_object(self, object_id: str) -> FediversePost | None:
        row = await self._row(
            f"SELECT {_POST_COLUMNS} FROM fediverse_posts WHERE object_id = ?", (object_id,)
        )
        return None if row is None else _post(row)

    async def tracks_needing_posts(self) -> list[str]:
        """The ids of tracks whose post is missing or behind them, oldest published first: a
        current track with no post or an older revision's, a withdrawn one whose post is not
        yet a Tombstone. Answered from the ids and revisions alone, no manifest read. A track
        a release lists (even a withdrawn one) was announced by the release's post: it gets no
        post of its own, unless it had one before (that post is kept up to date)."""
        sql = (
            "SELECT t.id FROM tracks t LEFT JOIN fediverse_posts p ON p.track = t.id"
            " WHERE (t.withdrawn_at IS NULL"
            "   AND ((p.track IS NULL AND NOT EXISTS"
            "       (SELECT 1 FROM release_tracks r WHERE r.track_id = t.id))"
            "     OR (p.deleted = 0 AND p.revision != t.revision)))"
            " OR (t.withdrawn_at IS NOT NULL AND p.track IS NOT NULL AND p.deleted = 0)"
            " ORDER BY t.published, t.id"
        )
        return [row[0] for row in await self._rows(sql)]

    async def releases_needing_posts(self) -> list[str]:
        """The ids of releases whose post is missing or behind them, oldest published first,
        as `tracks_needing_posts` answers for tracks (from the ids and revisions alone)."""
        sql = (
            "SELECT r.id FROM releases r"
            " LEFT JOIN fediverse_posts p ON p.track = r.id AND p.kind = 'release'"
            " WHERE (r.withdrawn_at IS NULL"
            "   AND (p.track IS NULL OR (p.deleted = 0 AND p.revision != r.revision)))"
            " OR (r.withdrawn_at IS NOT NULL AND p.track IS NOT NULL AND p.deleted = 0)"
            " ORDER BY r.published, r.id"
        )
        return [row[0] for row in await self._rows(sql)]

    async def due_deliveries(self, now: float, limit: int = 64) -> list[Delivery]:
        """Pending deliveries due at `now`, the longest waiting first."""
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM fediverse_deliveries d"
            " JOIN fediverse_activities a ON a.id = d.activity"
            " WHERE d.state = 'pending' AND d.next_attempt <= ?"
            " ORDER BY d.next_attempt, d.id LIMIT ?"
        )
        return [_delivery(row) for row in await self._rows(sql, (now, limit))]

    async def deliveries(self, state: str | None = None) -> list[Delivery]:
        """Every delivery (or those in `state`), oldest first."""
        where, params = ("WHERE d.state = ?", (state,)) if state is not None else ("", ())
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM fediverse_deliveries d"
            f" JOIN fediverse_activities a ON a.id = d.activity {where} ORDER BY d.id"
        )
        return [_delivery(row) for row in await self._rows(sql, params)]

    async def next_delivery_attempt(self) -> float | None:
        """When the next pending delivery is due, None when nothing is pending."""
        row = await self._row(
            "SELECT MIN(next_attempt) FROM fediverse_deliveries WHERE state = 'pending'"
        )
        return None if row is None or row[0] is None else float(row[0])

    async def delivery_counts(self) -> dict[str, int]:
        sql = "SELECT state, COUNT(*) FROM fediverse_deliveries GROUP BY state"
        return {row[0]: row[1] for row in await self._rows(sql)}


class FediverseWrites(FediverseReads):
    """Adding and removing followers and blocks, recording posts, queueing deliveries."""

    async def add_fediverse_follower(self, follower: FediverseFollower) -> bool:
        """Record `follower` (replacing what was known of the same actor); True if new."""
        existed = await self.fediverse_follower(follower.actor) is not None
        await self._db.execute(
            f"INSERT INTO fediverse_followers ({_FOLLOWER_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(actor) DO UPDATE SET inbox = excluded.inbox,"
            " shared_inbox = excluded.shared_inbox, domain = excluded.domain,"
            " acct = COALESCE(excluded.acct, acct), follow_id = excluded.follow_id",
            (
                follower.actor,
                follower.inbox,
                follower.shared_inbox,
                follower.domain.lower(),
                follower.acct,
                follower.follow_id,
                follower.followed_at,
            ),
        )
        return not existed

    async def remove_fediverse_follower(self, actor: str) -> bool:
        """Forget the follower `actor`; True if it was following."""
        cursor = await self._db.execute("DELETE FROM fediverse_followers WHERE actor = ?", (actor,))
        return cursor.rowcount > 0

    async def block_domain(self, domain: str) -> int:
        """Block `domain` (and every domain under it): its followers are removed. Returns how
        many followers were removed."""
        domain = domain.lower().rstrip(".")
        await self._db.execute(
            f"INSERT INTO fediverse_blocks (domain, blocked_at) VALUES (?, {_NOW})"
            " ON CONFLICT(domain) DO NOTHING",
            (domain,),
        )
        cursor = await self._db.execute(
            "DELETE FROM fediverse_followers WHERE domain = ? OR domain LIKE ? ESCAPE '\\'",
            (domain, "%." + domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")),
        )
        return cursor.rowcount

    async def unblock_domain(self, domain: str) -> bool:
        cursor = await self._db.execute(
            "DELETE FROM fediverse_blocks WHERE domain = ?", (domain.lower().rstrip("."),)
        )
        return cursor.rowcount > 0

    async def put_fediverse_post(
        self,
        track: str,
        object_id: str,
        obj: dict[str, Any],
        revision: int,
        *,
        deleted: bool,
        kind: str = "track",
    ) -> None:
        """Record the post of `track` (a track, or a release when `kind` says so) as it is
        served now."""
        await self._db.execute(
            f"INSERT INTO fediverse_posts ({_POST_COLUMNS})"
            f" VALUES (?, ?, ?, ?, ?, {_NOW}, {_NOW}, ?)"
            " ON CONFLICT(track) DO UPDATE SET object_id = excluded.object_id,"
            " object = excluded.object, revision = excluded.revision,"
            " deleted = excluded.deleted, updated = excluded.updated",
            (track, object_id, compact_json(obj), revision, int(deleted), kind),
        )

    async def queue_activity(self, activity_id: str, body: bytes, inboxes: Iterable[str]) -> int:
        """Queue the activity `body` (JSON, sent exactly as given) for each of `inboxes`.
        An activity already queued under `activity_id` is not queued again. Returns how many
        deliveries were queued."""
        targets = list(dict.fromkeys(inboxes))
        cursor = await self._db.execute(
            f"INSERT INTO fediverse_activities (activity_id, body, queued) VALUES (?, ?, {_NOW})"
            " ON CONFLICT(activity_id) DO NOTHING",
            (activity_id, body.decode("utf-8")),
        )
        if not cursor.rowcount or not targets:
            return 0
        row_id = cursor.lastrowid
        await self._db.executemany(
            f"INSERT INTO fediverse_deliveries (activity, inbox, state, next_attempt, queued)"
            f" VALUES (?, ?, 'pending', 0, {_NOW})",
            [(row_id, inbox) for inbox in targets],
        )
        return len(targets)

    async def claim_deliveries(
        self, now: float, lease_seconds: float, limit: int = 64
    ) -> list[Delivery]:
        """The due deliveries (as `due_deliveries`), each leased for `lease_seconds`: no other
        claim takes them before the lease runs out, and a node killed while sending them sends
        them again once it has."""
        due = await self.due_deliveries(now, limit)
        await self._db.executemany(
            "UPDATE fediverse_deliveries SET next_attempt = ? WHERE id = ?",
            [(now + lease_seconds, d.id) for d in due],
        )
        return due

    async def finish_delivery(self, delivery_id: int) -> None:
        """Record that the delivery was accepted by its inbox."""
        await self._db.execute(
            f"UPDATE fediverse_deliveries SET state = 'done', attempts = attempts + 1,"
            f" last_error = NULL, updated = {_NOW} WHERE id = ?",
            (delivery_id,),
        )

    async def retry_delivery(self, delivery_id: int, error: str, next_attempt: float) -> None:
        await self._db.execute(
            f"UPDATE fediverse_deliveries SET attempts = attempts + 1, next_attempt = ?,"
            f" last_error = ?, updated = {_NOW} WHERE id = ? AND state = 'pending'",
            (next_attempt, error, delivery_id),
        )

    async def fail_delivery(self, delivery_id: int, error: str) -> None:
        """Give the delivery up for good, saying why."""
        await self._db.execute(
            f"UPDATE fediverse_deliveries SET state = 'failed', attempts = attempts + 1,"
            f" last_error = ?, updated = {_NOW} WHERE id = ?",
            (error, delivery_id),
        )

    async def drop_deliveries_to(self, inboxes: Iterable[str]) -> int:
        """Give up pending deliveries to `inboxes` (their followers were removed or blocked)."""
        cursor = await self._db.executemany(
            f"UPDATE fediverse_deliveries SET state = 'failed', last_error = 'no longer a"
            f" follower', updated = {_NOW} WHERE inbox = ? AND state = 'pending'",
            [(inbox,) for inbox in dict.fromkeys(inboxes)],
        )
        return cursor.rowcount

    async def prune_deliveries(self, older_than_days: int = 7) -> None:
        """Forget finished deliveries, and activities no delivery needs, older than the days."""
        await self._db.execute(
            "DELETE FROM fediverse_deliveries WHERE state != 'pending'"
            " AND updated < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?)",
            (f"-{older_than_days} days",),
        )
        await self._db.execute(
            "DELETE FROM fediverse_activities WHERE id NOT IN"
            " (SELECT activity FROM fediverse_deliveries)"
            " AND queued < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?)",
            (f"-{older_than_days} days",),
        )

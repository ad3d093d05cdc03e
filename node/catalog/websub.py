"""The catalog's WebSub state (node/federation): subscriptions this node asked hubs for, and
the verified subscribers to this node's own feed with how delivery to each went."""

from __future__ import annotations

from dataclasses import astuple, dataclass

from node.catalog.db import Area


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


# In the order of WebSubSubscription's and HubSubscriber's fields.
_SUBSCRIPTION_COLUMNS = (
    "callback_id, artist, hub_url, topic, secret, mode, requested_at, lease_seconds, expires_at,"
    " last_error"
)
_SUBSCRIBER_COLUMNS = (
    "topic, callback, secret, lease_seconds, expires_at, subscribed_at, delivered_sequence,"
    " attempts, next_attempt_at, last_error"
)


class WebSubReads(Area):
    """Reading WebSub subscriptions and hub subscribers."""

    async def websub_subscription(self, callback_id: str) -> WebSubSubscription | None:
        sql = f"SELECT {_SUBSCRIPTION_COLUMNS} FROM websub_subscriptions WHERE callback_id = ?"
        row = await self._row(sql, (callback_id,))
        return None if row is None else WebSubSubscription(*row)

    async def websub_subscriptions(self, artist: str | None = None) -> list[WebSubSubscription]:
        where, params = ("WHERE artist = ?", (artist,)) if artist is not None else ("", ())
        sql = f"SELECT {_SUBSCRIPTION_COLUMNS} FROM websub_subscriptions {where}"
        rows = await self._rows(sql + " ORDER BY requested_at", params)
        return [WebSubSubscription(*row) for row in rows]

    async def hub_subscribers(self, topic: str | None = None) -> list[HubSubscriber]:
        where, params = ("WHERE topic = ?", (topic,)) if topic is not None else ("", ())
        sql = f"SELECT {_SUBSCRIBER_COLUMNS} FROM websub_subscribers {where}"
        rows = await self._rows(sql + " ORDER BY subscribed_at, callback", params)
        return [HubSubscriber(*row) for row in rows]


class WebSubWrites(WebSubReads):
    """Keeping subscriptions and subscribers, and how delivery to each went."""

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

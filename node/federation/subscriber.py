"""This node as a WebSub subscriber of the artists it follows (W3C WebSub §5, §7, §8).

Each subscription has its own unguessable callback URL and secret. The callback confirms only
the subscriptions this node asked for, and a delivery counts only with a valid
`X-Hub-Signature`; even then it is a hint: the follower verifies the feed exactly as a pulled
one (PROTOCOL §7).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from node.catalog import FollowRecord, WebSubSubscription
from node.errors import FederationError
from node.federation.context import Federation

log = logging.getLogger(__name__)

CALLBACK_PATH = "websub/callback/"
LEASE_SECONDS = 7 * 24 * 3600
# Renew once less than this share of a lease is left.
RENEW_SHARE = 0.25
# Ask again when a hub has not confirmed a request within this many seconds.
PENDING_SECONDS = 300.0
# Forget an unsubscription the hub never confirmed after this long (its lease runs out anyway).
FORGET_SECONDS = 3 * 24 * 3600.0
SIGNATURE_METHODS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def signature_matches(secret: str, header: str | None, body: bytes) -> bool:
    """Whether `header` (`sha256=<hex>`) is the HMAC of `body` under `secret` (WebSub §8)."""
    if not header or "=" not in header:
        return False
    method, _, value = header.partition("=")
    algorithm = SIGNATURE_METHODS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, value.strip().lower())


@dataclass(frozen=True)
class Confirmation:
    """The answer to a hub's verification request: the challenge to echo, or None to refuse."""

    challenge: str | None
    reason: str


class Subscriber:
    """Subscribes to hubs and answers them on the callback routes."""

    def __init__(self, federation: Federation, *, lease_seconds: int = LEASE_SECONDS) -> None:
        self.federation = federation
        self.lease_seconds = lease_seconds

    def callback_url(self, callback_id: str) -> str:
        return self.federation.node.base_url + CALLBACK_PATH + callback_id

    async def subscribe(self, follow: FollowRecord) -> WebSubSubscription:
        """Ask the artist's hub for a subscription (or its renewal); the hub confirms later.

        FederationError if there is no hub or it refuses the request.
        """
        if not follow.hub_url:
            raise FederationError(f"{follow.url}: the node names no WebSub hub")
        catalog = self.federation.catalog
        current = next(
            (
                s
                for s in await catalog.websub_subscriptions(follow.artist)
                if s.mode == "subscribe" and s.hub_url == follow.hub_url
                if s.topic == follow.feed_url
            ),
            None,
        )
        subscription = WebSubSubscription(
            callback_id=current.callback_id if current else secrets.token_urlsafe(18),
            artist=follow.artist,
            hub_url=follow.hub_url,
            topic=follow.feed_url,
            secret=current.secret if current else secrets.token_hex(32),
            mode="subscribe",
            requested_at=time.time(),
            lease_seconds=current.lease_seconds if current else None,
            expires_at=current.expires_at if current else None,
            last_error=None,
        )
        async with self.federation.transaction() as tx:
            await tx.put_websub_subscription(subscription)
        try:
            await self._request(subscription, self.lease_seconds)
        except FederationError as e:
            async with self.federation.transaction() as tx:
                await tx.put_websub_subscription(replace(subscription, last_error=str(e)))
            raise
        return subscription

    async def unsubscribe(self, artist: str) -> None:
        """Ask the hub to end every subscription to `artist`'s feed; failures are only logged."""
        for subscription in await self.federation.catalog.websub_subscriptions(artist):
            ending = replace(subscription, mode="unsubscribe", requested_at=time.time())
            async with self.federation.transaction() as tx:
                await tx.put_websub_subscription(ending)
            try:
                await self._request(ending, None)
            except FederationError as e:
                log.info("websub: unsubscribing from %s: %s", subscription.hub_url, e)

    async def _request(self, subscription: WebSubSubscription, lease: int | None) -> None:
        form = {
            "hub.mode": subscription.mode,
            "hub.topic": subscription.topic,
            "hub.callback": self.callback_url(subscription.callback_id),
            "hub.secret": subscription.secret,
        }
        if lease is not None:
            form["hub.lease_seconds"] = str(lease)
        answer = await self.federation.client.post(subscription.hub_url, data=form)
        if answer.status not in (202, 204):
            detail = answer.body[:200].decode("utf-8", "replace").strip()
            raise FederationError(
                f"{subscription.hub_url}: refused the {subscription.mode} request:"
                f" HTTP {answer.status}" + (f" {detail}" if detail else "")
            )

    async def confirm(self, callback_id: str, query: Mapping[str, str]) -> Confirmation:
        """Answer a hub's intent verification (or denial) for the callback `callback_id`."""
        subscription = await self.federation.catalog.websub_subscription(callback_id)
        if subscription is None:
            return Confirmation(None, "no such subscription")
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        if mode == "denied" and topic == subscription.topic:
            reason = query.get("hub.reason", "no reason given")
            async with self.federation.transaction() as tx:
                await tx.put_websub_subscription(
                    replace(subscription, last_error=f"the hub denied it: {reason}")
                )
            return Confirmation(None, "denial recorded")
        challenge = query.get("hub.challenge")
        if not challenge or mode != subscription.mode or topic != subscription.topic:
            return Confirmation(None, "not a subscription this node asked for")
        if mode == "unsubscribe":
            async with self.federation.transaction() as tx:
                await tx.remove_websub_subscription(callback_id)
            return Confirmation(challenge, "unsubscribed")
        try:
            lease = int(query.get("hub.lease_seconds", ""))
        except ValueError:
            return Confirmation(None, "hub.lease_seconds is missing or not a number")
        if lease <= 0:
            return Confirmation(None, "hub.lease_seconds is not positive")
        async with self.federation.transaction() as tx:
            await tx.put_websub_subscription(
                replace(
                    subscription,
                    lease_seconds=lease,
                    expires_at=time.time() + lease,
                    last_error=None,
                )
            )
        return Confirmation(challenge, "subscribed")

    async def receive(self, callback_id: str, signature: str | None, body: bytes) -> str | None:
        """The followed artist a delivery is for, if it may be used; None to ignore it.

        A delivery is used only on a subscription this node holds, signed with its secret.
        """
        subscription = await self.federation.catalog.websub_subscription(callback_id)
        if subscription is None or subscription.mode != "subscribe":
            return None
        if not signature_matches(subscription.secret, signature, body):
            log.warning(
                "websub: ignored a delivery for %s with a bad signature", subscription.artist
            )
            return None
        return subscription.artist

    async def due(
        self, follows: list[FollowRecord], now: float | None = None
    ) -> list[FollowRecord]:
        """The follows whose subscription is missing, expired or nearly so, and not just asked."""
        moment = time.time() if now is None else now
        by_artist: dict[str, list[WebSubSubscription]] = {}
        for subscription in await self.federation.catalog.websub_subscriptions():
            by_artist.setdefault(subscription.artist, []).append(subscription)
        due = []
        for follow in follows:
            if not follow.hub_url:
                continue
            current = [
                s
                for s in by_artist.get(follow.artist, [])
                if s.mode == "subscribe" and s.hub_url == follow.hub_url
                if s.topic == follow.feed_url
            ]
            if any(moment - s.requested_at < PENDING_SECONDS for s in current):
                continue
            if any(_lasts(s, moment) for s in current):
                continue
            due.append(follow)
        return due

    async def forget_stale(self, followed: set[str], now: float | None = None) -> None:
        """Drop subscriptions of artists no longer followed once their lease or wait is over."""
        moment = time.time() if now is None else now
        for subscription in await self.federation.catalog.websub_subscriptions():
            gone = subscription.artist not in followed or subscription.mode == "unsubscribe"
            over = (subscription.expires_at or 0) < moment and (
                moment - subscription.requested_at > FORGET_SECONDS
            )
            if gone and over:
                async with self.federation.transaction() as tx:
                    await tx.remove_websub_subscription(subscription.callback_id)


def _lasts(subscription: WebSubSubscription, now: float) -> bool:
    """Whether a confirmed lease has more than RENEW_SHARE of its length left."""
    if subscription.expires_at is None or subscription.lease_seconds is None:
        return False
    return subscription.expires_at - now > subscription.lease_seconds * RENEW_SHARE

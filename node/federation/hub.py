"""This node as the WebSub hub of its own feed (W3C WebSub §5.1, §5.3, §7, §8; PROTOCOL §7).

A subscription request is checked at once (400 with the reason when it is malformed or names
another topic) and verified afterwards with a `hub.challenge` GET to the callback; only a
verified subscription is stored, with its lease. Whenever the node's feed changes, every
subscriber whose lease still runs gets the new feed's exact bytes, signed with
`X-Hub-Signature: sha256=…` when it gave a secret, retried with backoff when it fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from yarl import URL

from node.catalog import HubSubscriber
from node.errors import ContentNotFound, FederationError, UsageError
from node.federation.context import Federation, now_text

log = logging.getLogger(__name__)

HUB_PATH = "websub"
MIN_LEASE_SECONDS = 300
MAX_LEASE_SECONDS = 30 * 24 * 3600
DEFAULT_LEASE_SECONDS = 10 * 24 * 3600
MAX_SECRET_BYTES = 199  # WebSub §5.1: "MUST be less than 200 bytes"
MAX_CALLBACK_LENGTH = 2048
MAX_DELIVERY_ATTEMPTS = 6
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 3600.0
MAX_CHALLENGE_ANSWER_BYTES = 4096


def sign_delivery(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature` value for `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SubscriptionRequest:
    """A checked `hub.mode=subscribe|unsubscribe` request, waiting for intent verification."""

    mode: str
    topic: str
    callback: str
    lease_seconds: int
    secret: str | None


@dataclass(frozen=True)
class Delivery:
    """What one delivery attempt to one subscriber did."""

    callback: str
    sequence: int
    delivered: bool
    error: str | None


def retry_delay(attempts: int) -> float:
    """Seconds before the next delivery attempt after `attempts` failures (with jitter)."""
    delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return random.uniform(delay / 2, delay)


class Hub:
    """The hub of this node's feed."""

    def __init__(
        self,
        federation: Federation,
        *,
        min_lease: int = MIN_LEASE_SECONDS,
        max_lease: int = MAX_LEASE_SECONDS,
        default_lease: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.federation = federation
        self.min_lease = min_lease
        self.max_lease = max_lease
        self.default_lease = max(min_lease, min(default_lease, max_lease))

    @property
    def topic(self) -> str:
        return self.federation.node.feed_url

    @property
    def url(self) -> str:
        return self.federation.node.base_url + HUB_PATH

    def check_request(self, form: Mapping[str, str]) -> SubscriptionRequest:
        """The request in `form` if this hub will verify it; UsageError naming what is wrong."""
        mode = form.get("hub.mode")
        if mode not in ("subscribe", "unsubscribe"):
            raise UsageError("hub.mode: must be subscribe or unsubscribe")
        topic = form.get("hub.topic")
        if topic != self.topic:
            raise UsageError(f"hub.topic: this hub only serves {self.topic}")
        callback = form.get("hub.callback", "")
        if len(callback) > MAX_CALLBACK_LENGTH:
            raise UsageError("hub.callback: too long")
        try:
            parsed = URL(callback)
        except ValueError as e:
            raise UsageError("hub.callback: not a URL") from e
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.fragment:
            raise UsageError("hub.callback: must be an http(s) URL without a fragment")
        lease = self.default_lease
        if form.get("hub.lease_seconds"):
            try:
                asked = int(form["hub.lease_seconds"])
            except ValueError as e:
                raise UsageError("hub.lease_seconds: not a whole number") from e
            lease = max(self.min_lease, min(asked, self.max_lease))
        secret = form.get("hub.secret") or None
        if secret is not None and len(secret.encode("utf-8")) > MAX_SECRET_BYTES:
            raise UsageError(f"hub.secret: must be less than {MAX_SECRET_BYTES + 1} bytes")
        return SubscriptionRequest(mode, topic, callback, lease, secret)

    async def verify_intent(self, request: SubscriptionRequest) -> bool:
        """Ask the callback to echo a challenge; on success, store or end the subscription."""
        # Feeds signed from now on are this subscriber's to receive, even one signed while its
        # intent is being verified.
        latest = await self.federation.catalog.latest_feed()
        challenge = secrets.token_urlsafe(32)
        query = {
            "hub.mode": request.mode,
            "hub.topic": request.topic,
            "hub.challenge": challenge,
        }
        if request.mode == "subscribe":
            query["hub.lease_seconds"] = str(request.lease_seconds)
        separator = "&" if "?" in request.callback else "?"
        url = request.callback + separator + urlencode(query)
        try:
            answer = await self.federation.client.get(
                url, max_bytes=MAX_CHALLENGE_ANSWER_BYTES, follow_redirects=False
            )
        except FederationError as e:
            log.info("websub: intent verification of %s failed: %s", request.callback, e)
            return False
        if not 200 <= answer.status < 300 or answer.body.strip() != challenge.encode():
            log.info("websub: %s did not confirm (HTTP %d)", request.callback, answer.status)
            return False
        async with self.federation.transaction() as tx:
            if request.mode == "unsubscribe":
                await tx.remove_hub_subscriber(request.topic, request.callback)
            else:
                await tx.put_hub_subscriber(
                    HubSubscriber(
                        topic=request.topic,
                        callback=request.callback,
                        secret=request.secret,
                        lease_seconds=request.lease_seconds,
                        expires_at=time.time() + request.lease_seconds,
                        subscribed_at=now_text(),
                        delivered_sequence=latest.sequence if latest else 0,
                        attempts=0,
                        next_attempt_at=0.0,
                        last_error=None,
                    )
                )
        log.info("websub: %s %sd to %s", request.callback, request.mode, request.topic)
        return True

    async def subscribers(self, now: float | None = None) -> list[HubSubscriber]:
        """The subscribers whose lease still runs."""
        moment = time.time() if now is None else now
        return [
            s
            for s in await self.federation.catalog.hub_subscribers(self.topic)
            if s.expires_at > moment
        ]

    async def deliver(self, now: float | None = None) -> list[Delivery]:
        """Send the current feed to every subscriber that has not had it and is due; returns
        what each attempt did. Expired leases are removed, not delivered to."""
        moment = time.time() if now is None else now
        everyone = await self.federation.catalog.hub_subscribers(self.topic)
        if any(s.expires_at <= moment for s in everyone):
            async with self.federation.transaction() as tx:
                await tx.remove_expired_hub_subscribers(moment)
        latest = await self.federation.catalog.latest_feed()
        if latest is None:
            return []
        due = [
            s
            for s in everyone
            if s.expires_at > moment
            and s.delivered_sequence < latest.sequence
            and s.next_attempt_at <= moment
        ]
        if not due:
            return []
        try:
            body = await asyncio.to_thread(_read, self.federation, latest.cid)
        except ContentNotFound as e:
            log.error("websub: the current feed %s is not in the store: %s", latest.cid, e)
            return []
        return list(
            await asyncio.gather(*(self._deliver_one(s, latest.sequence, body) for s in due))
        )

    async def _deliver_one(self, subscriber: HubSubscriber, sequence: int, body: bytes) -> Delivery:
        headers = {
            "Content-Type": "application/json",
            "Link": f'<{self.url}>; rel="hub", <{self.topic}>; rel="self"',
        }
        if subscriber.secret:
            headers["X-Hub-Signature"] = sign_delivery(subscriber.secret, body)
        error = None
        try:
            answer = await self.federation.client.post(
                subscriber.callback, data=body, headers=headers
            )
            if answer.status == 410:
                async with self.federation.transaction() as tx:
                    await tx.remove_hub_subscriber(subscriber.topic, subscriber.callback)
                return Delivery(subscriber.callback, sequence, False, "gone (HTTP 410)")
            if not 200 <= answer.status < 300:
                error = f"HTTP {answer.status}"
        except FederationError as e:
            error = str(e)
        attempts = 0 if error is None else subscriber.attempts + 1
        delivered = sequence if error is None else subscriber.delivered_sequence
        next_attempt = 0.0
        if error is not None and attempts >= MAX_DELIVERY_ATTEMPTS:
            log.warning("websub: gave up delivering feed %d to %s", sequence, subscriber.callback)
            delivered, attempts = sequence, 0
        elif error is not None:
            next_attempt = time.time() + retry_delay(attempts)
        async with self.federation.transaction() as tx:
            await tx.record_delivery(
                subscriber.topic,
                subscriber.callback,
                delivered_sequence=delivered,
                attempts=attempts,
                next_attempt_at=next_attempt,
                error=error,
            )
        return Delivery(subscriber.callback, sequence, error is None, error)


def _read(federation: Federation, cid: str) -> bytes:
    with federation.node.store.open(cid) as source:
        return source.read()

"""The actor's inbox: who may talk to the node, and what their activities change.

Every POST is judged at the door before any handler sees it (Mastodon's `signed_request.rb`
order): a JSON object with a `type` and an `actor`; the actor's host not blocked; under the
per-host rate limit; a body digest (`Digest` or `Content-Digest`) that matches; a signature
(draft-cavage-12 or RFC 9421) not seen before, by a key whose owner is the activity's actor,
made within the window. A refused request changes nothing and gets one line saying why.

Then one handler per activity type: `Follow` of the artist (record the follower, queue a
signed `Accept` to its inbox), `Undo` of a `Follow` (remove), `Delete` of a following actor
(remove). Anything else is accepted with 202 and ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from node.catalog.fediverse import FediverseFollower
from node.errors import FederationError, Gone, SignatureError, excerpt
from node.federation.context import Federation, now_text
from node.fediverse.digest import check_content_digest, check_digest
from node.fediverse.documents import AS_CONTEXT, ActorUrls
from node.fediverse.httpsig import VerifiedSignature, signature_key_id, verify_request
from node.fediverse.remote import RemoteActor, RemoteActors

MAX_BODY_BYTES = 256 * 1024
MAX_REQUESTS_PER_MINUTE = 300
MAX_TRACKED_HOSTS = 10_000
MAX_SEEN_SIGNATURES = 50_000
KEY_REFRESH_SECONDS = 60.0  # a key that did not verify is fetched afresh at most this often
MAX_REFRESHED = 4096


@dataclass(frozen=True)
class InboxResult:
    """The answer to one inbox POST: an HTTP status and a one-line reason or outcome."""

    status: int
    message: str


@dataclass(frozen=True)
class Inbound:
    """An activity that passed the door: its JSON, its actor's id and the signer."""

    activity: dict[str, Any]
    actor: str
    signer: RemoteActor | None


class Refused(Exception):
    """A refusal at the door (kept inside this module; `receive` turns it into a result)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _id_of(value: object) -> str | None:
    """An ActivityStreams reference as an id: the string itself, or an object's `id`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class RateLimit:
    """At most `per_minute` requests per host in any calendar minute; bounded in hosts."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._counts: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def allow(self, host: str) -> bool:
        minute = int(self._clock() // 60)
        start, count = self._counts.get(host, (minute, 0))
        if start != minute:
            start, count = minute, 0
        self._counts[host] = (start, count + 1)
        self._counts.move_to_end(host)
        while len(self._counts) > MAX_TRACKED_HOSTS:
            self._counts.popitem(last=False)
        return count < self.per_minute


class SeenSignatures:
    """The (keyId, signature) pairs accepted within the window, to refuse a replay of one."""

    def __init__(self, window_seconds: int, clock: Callable[[], float]) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _expire(self) -> None:
        horizon = self._clock() - 2 * self.window_seconds
        while self._seen and (next(iter(self._seen.values())) < horizon):
            self._seen.popitem(last=False)
        while len(self._seen) > MAX_SEEN_SIGNATURES:
            self._seen.popitem(last=False)

    def __contains__(self, mark: tuple[str, str]) -> bool:
        self._expire()
        return mark in self._seen

    def add(self, mark: tuple[str, str]) -> None:
        self._seen[mark] = self._clock()
        self._expire()


Handler = Callable[["InboxService", Inbound], Awaitable[InboxResult]]
HANDLERS: dict[str, Handler] = {}


def handles(activity_type: str) -> Callable[[Handler], Handler]:
    """Register the handler of one activity type."""

    def register(handler: Handler) -> Handler:
        HANDLERS[activity_type] = handler
        return handler

    return register


class InboxService:
    """The inbox of one node's actor (its own inbox and the shared inbox alike)."""

    def __init__(
        self,
        federation: Federation,
        *,
        window_seconds: int = 300,
        max_requests_per_minute: int = MAX_REQUESTS_PER_MINUTE,
        on_queued: Callable[[], None] | None = None,
        remote: RemoteActors | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.federation = federation
        self.window_seconds = window_seconds
        self.on_queued = on_queued
        self.remote = remote or RemoteActors(federation)
        self.urls = ActorUrls.of(federation.node.base_url)
        self._clock = clock
        self.rate_limit = RateLimit(max_requests_per_minute, clock)
        self.seen = SeenSignatures(window_seconds, clock)
        self._refreshed: dict[str, float] = {}  # key id: when it was last fetched afresh

    async def receive(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, peer: str | None
    ) -> InboxResult:
        """Judge one inbox request and, if it passes, act on its activity. Never raises for
        anything the sender controls: every refusal is a status and a one-line reason."""
        try:
            inbound = await self._admit(method, url, headers, body)
        except Refused as refusal:
            return InboxResult(refusal.status, refusal.message)
        handler = HANDLERS.get(str(inbound.activity["type"]))
        if handler is None:
            return InboxResult(202, f"accepted; {excerpt(inbound.activity['type'])} is ignored")
        return await handler(self, inbound)

    # ---- the door ----

    async def _admit(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Inbound:
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
        activity = _activity(body)
        actor = str(activity["actor"])
        host = _host(actor)
        if await self.federation.catalog.is_domain_blocked(host):
            raise Refused(403, f"{host} is blocked")
        try:
            key_id = signature_key_id(headers)
        except SignatureError as e:
            raise Refused(401, "no signature" if "no Signature" in str(e) else str(e)) from None
        _check_body_digest(headers, body)
        signature = _signature_value(headers)
        if (key_id, signature) in self.seen:
            raise Refused(401, "the signature was already used (a replay)")
        try:
            key = await self.remote.key(key_id)
        except Gone as e:
            if _deletes_itself(activity) and await self._actor_is_gone(actor):
                return Inbound(activity, actor, None)
            raise Refused(401, f"the key {excerpt(key_id)} cannot be fetched: {e}") from None
        except FederationError as e:
            raise Refused(401, f"the key {excerpt(key_id)} cannot be fetched: {e}") from None
        if key.owner.id != actor:
            raise Refused(
                401, f"the key {excerpt(key_id)} belongs to {excerpt(key.owner.id)}, not the actor"
            )
        verified = await self._verify(method, url, headers, body, key_id, key.public_key)
        # Counted once the request is known to be the host's: a forged one cannot spend a real
        # server's allowance.
        if not self.rate_limit.allow(host):
            raise Refused(
                429, f"too many requests from {host}: at most {self.rate_limit.per_minute} a minute"
            )
        self.seen.add((verified.key_id, signature))
        return Inbound(activity, actor, key.owner)

    async def _verify(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        key_id: str,
        public_key: Any,
    ) -> VerifiedSignature:
        now = self._clock()
        try:
            return verify_request(
                method, url, headers, body, public_key, now=now, window_seconds=self.window_seconds
            )
        except SignatureError as e:
            if "does not verify" not in str(e):
                raise Refused(401, str(e)) from None
        # The key may have been rotated since it was cached: fetch it once more, at most once
        # a minute per key, so forged requests naming a real key cannot each cost a fetch.
        last = self._refreshed.get(key_id)
        if last is not None and now - last < KEY_REFRESH_SECONDS:
            raise Refused(401, f"the signature by {excerpt(key_id)} does not verify")
        if len(self._refreshed) >= MAX_REFRESHED:
            self._refreshed.clear()
        self._refreshed[key_id] = now
        try:
            key = await self.remote.key(key_id, refresh=True)
            return verify_request(
                method,
                url,
                headers,
                body,
                key.public_key,
                now=now,
                window_seconds=self.window_seconds,
            )
        except (SignatureError, FederationError) as e:
            raise Refused(401, str(e)) from None

    async def _actor_is_gone(self, actor: str) -> bool:
        """Whether the actor's own server answers 404/410 for it now. Mastodon signs the
        `Delete` of an account with the account's key, which is gone with it, so that Delete
        cannot be verified; our own fetch of the actor is the proof instead, and a request
        admitted this way reaches only the `Delete` handler, which can only remove."""
        try:
            await self.remote.actor(actor, refresh=True)
        except Gone:
            self.remote.forget(actor)
            return True
        except FederationError:
            return False
        return False

    # ---- what handlers share ----

    async def follower(self, actor: str) -> FediverseFollower | None:
        return await self.federation.catalog.fediverse_follower(actor)

    async def remove(self, actor: str, why: str) -> InboxResult:
        async with self.federation.transaction() as tx:
            removed = await tx.remove_fediverse_follower(actor)
        if not removed:
            return InboxResult(202, f"accepted; {excerpt(actor)} was not following")
        return InboxResult(202, f"{excerpt(actor)} {why}")


def _activity(body: bytes) -> dict[str, Any]:
    try:
        activity = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(activity, dict):
        raise Refused(400, "the body is not a JSON object")
    if not isinstance(activity.get("type"), str):
        raise Refused(400, "the activity has no type")
    actor = _id_of(activity.get("actor"))
    if actor is None or urlsplit(actor).scheme not in ("http", "https") or not _host(actor):
        raise Refused(400, "the activity has no http(s) actor")
    activity["actor"] = actor
    return activity


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _check_body_digest(headers: Mapping[str, str], body: bytes) -> None:
    digest, content_digest = _header(headers, "digest"), _header(headers, "content-digest")
    if digest is None and content_digest is None:
        raise Refused(400, "no Digest or Content-Digest header")
    try:
        if digest is not None:
            check_digest(digest, body)
        if content_digest is not None:
            check_content_digest(content_digest, body)
    except SignatureError as e:
        raise Refused(400, str(e)) from None


def _signature_value(headers: Mapping[str, str]) -> str:
    value = _header(headers, "signature") or _header(headers, "authorization") or ""
    return value.strip()


def _deletes_itself(activity: dict[str, Any]) -> bool:
    return activity.get("type") == "Delete" and _id_of(activity.get("object")) == activity["actor"]


# ---- the handlers, one per activity type ----


@handles("Follow")
async def follow(service: InboxService, inbound: Inbound) -> InboxResult:
    activity, signer = inbound.activity, inbound.signer
    if _id_of(activity.get("object")) != service.urls.actor or signer is None:
        return InboxResult(202, "accepted; the Follow is not of this actor and is ignored")
    follower = FediverseFollower(
        actor=signer.id,
        inbox=signer.inbox,
        shared_inbox=signer.shared_inbox,
        domain=signer.domain,
        acct=signer.acct,
        follow_id=_id_of(activity.get("id")),
        followed_at=now_text(),
    )
    accept_id = service.urls.activity(str(uuid.uuid4()))
    accept = {
        "@context": AS_CONTEXT,
        "id": accept_id,
        "type": "Accept",
        "actor": service.urls.actor,
        "to": [signer.id],
        "object": activity,
    }
    body = json.dumps(accept, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    async with service.federation.transaction() as tx:
        await tx.add_fediverse_follower(follower)
        await tx.queue_activity(accept_id, body, [signer.inbox])
    if service.on_queued is not None:
        service.on_queued()
    return InboxResult(202, f"{excerpt(signer.acct or signer.id)} follows; Accept queued")


@handles("Undo")
async def undo(service: InboxService, inbound: Inbound) -> InboxResult:
    undone = inbound.activity.get("object")
    if isinstance(undone, dict):
        if undone.get("type") != "Follow":
            return InboxResult(202, "accepted; only an Undo of a Follow is acted on")
        if _id_of(undone.get("actor")) != inbound.actor:
            return InboxResult(202, "accepted; the Follow undone is not the actor's own")
        return await service.remove(inbound.actor, "no longer follows")
    follower = await service.follower(inbound.actor)
    if follower is None or follower.follow_id is None or _id_of(undone) != follower.follow_id:
        return InboxResult(202, "accepted; nothing to undo")
    return await service.remove(inbound.actor, "no longer follows")


@handles("Delete")
async def delete(service: InboxService, inbound: Inbound) -> InboxResult:
    if _id_of(inbound.activity.get("object")) != inbound.actor:
        return InboxResult(202, "accepted; only a Delete of the actor itself is acted on")
    return await service.remove(inbound.actor, "was deleted and no longer follows")

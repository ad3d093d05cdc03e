"""Remote ActivityPub actors and their keys, fetched with a signed GET and kept in a bounded cache.

Fetches are signed with the node's actor key (draft-cavage-12 `rsa-sha256` over
`(request-target) host date`, keyId `{base}actor#main-key`), because servers in Mastodon's
"authorized fetch" mode refuse unsigned ones. They go through the guarded `OutboundClient`
(http(s) only, private addresses refused unless allowed, size and time caps); redirects are
followed here, a few hops at most, so that each hop is signed for its own host.

A document is trusted only for what it says about itself: an actor's `id` must be the URL it
was fetched from (after redirects), its inbox an http(s) URL, and each of its keys owned by it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from node.errors import FederationError, Gone, SignatureError, excerpt
from node.federation.context import Federation
from node.fediverse.documents import AP_MEDIA_TYPE, AS_PROFILE, ActorUrls
from node.fediverse.httpsig import PublicKey, load_public_key, sign_cavage

ACCEPT = f'{AP_MEDIA_TYPE}, application/ld+json; profile="{AS_PROFILE}"'
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
CACHE_ENTRIES = 1000
CACHE_SECONDS = 3600.0
GONE_STATUSES = (404, 410)
ED25519_MULTICODEC = b"\xed\x01"


@dataclass(frozen=True)
class RemoteActor:
    """What the node needs of a remote actor: where to deliver to it, its name, its keys."""

    id: str
    inbox: str
    shared_inbox: str | None
    preferred_username: str | None
    keys: dict[str, PublicKey] = field(repr=False)

    @property
    def domain(self) -> str:
        return (urlsplit(self.id).hostname or "").lower()

    @property
    def acct(self) -> str | None:
        """`preferredUsername@host`, when the actor names itself."""
        if not self.preferred_username:
            return None
        return f"{self.preferred_username}@{self.domain}"


@dataclass(frozen=True)
class RemoteKey:
    """A public key and the actor that owns it."""

    id: str
    public_key: PublicKey = field(repr=False)
    owner: RemoteActor


class RemoteActors:
    """Fetching and caching remote actors and keys for one node (LRU, with a time to live)."""

    def __init__(
        self,
        federation: Federation,
        *,
        max_entries: int = CACHE_ENTRIES,
        ttl_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.federation = federation
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._actors: OrderedDict[str, tuple[float, RemoteActor]] = OrderedDict()

    # ---- the cache ----

    def _cached(self, url: str) -> RemoteActor | None:
        entry = self._actors.get(url)
        if entry is None:
            return None
        at, actor = entry
        if self._clock() - at > self.ttl_seconds:
            del self._actors[url]
            return None
        self._actors.move_to_end(url)
        return actor

    def _remember(self, url: str, actor: RemoteActor) -> None:
        self._actors[url] = (self._clock(), actor)
        self._actors.move_to_end(url)
        while len(self._actors) > self.max_entries:
            self._actors.popitem(last=False)

    def forget(self, url: str) -> None:
        """Drop what is cached of the actor at `url` (or of the key `url`'s actor)."""
        self._actors.pop(urldefrag(url)[0], None)

    def __len__(self) -> int:
        return len(self._actors)

    # ---- looking up ----

    async def actor(self, url: str, *, refresh: bool = False) -> RemoteActor:
        """The actor at `url` (its id is the URL it was found at after redirects);
        FederationError (Gone for 404/410) naming the reason."""
        if not refresh and (cached := self._cached(url)) is not None:
            return cached
        final, document = await self.fetch(url)
        actor = parse_actor(document, final)
        self._remember(url, actor)
        return actor

    async def key(self, key_id: str, *, refresh: bool = False) -> RemoteKey:
        """The key `key_id` and its owner. Its URL without the fragment is fetched; the answer is
        either the owner itself (Mastodon's `actor#main-key`) or a key whose `owner` is fetched
        in turn and must list it. FederationError (Gone for 404/410) naming the reason."""
        url = urldefrag(key_id)[0]
        if not refresh and (cached := self._cached(url)) is not None and key_id in cached.keys:
            return RemoteKey(key_id, cached.keys[key_id], cached)
        final, document = await self.fetch(url)
        if "inbox" in document:
            actor = parse_actor(document, final)
            self._remember(url, actor)
        else:
            owner = document.get("owner")
            if document.get("id") not in (key_id, url) or not isinstance(owner, str):
                raise FederationError(f"{excerpt(key_id)}: not an actor or a key it owns")
            actor = await self.actor(owner, refresh=refresh)
            self._remember(url, actor)  # a key id without a fragment is looked up by its URL
        if key_id not in actor.keys:
            raise FederationError(
                f"{excerpt(key_id)}: the actor {excerpt(actor.id)} has no such key"
            )
        return RemoteKey(key_id, actor.keys[key_id], actor)

    async def fetch(self, url: str) -> tuple[str, dict[str, Any]]:
        """GET `url` signed, following at most MAX_REDIRECTS redirects: the final URL and the
        JSON object it answered."""
        node = self.federation.node
        urls = ActorUrls.of(node.base_url)
        private_key = node.actor_key.private_key
        target = url
        for _hop in range(MAX_REDIRECTS + 1):
            headers = {"Accept": ACCEPT}
            try:
                headers.update(sign_cavage("GET", target, headers, b"", urls.main_key, private_key))
            except SignatureError as e:
                raise FederationError(f"{excerpt(target)}: {e}") from None
            answer = await self.federation.client.get(
                target, max_bytes=MAX_DOCUMENT_BYTES, headers=headers, follow_redirects=False
            )
            if answer.status in (301, 302, 303, 307, 308):
                location = answer.headers.get("Location")
                if not location:
                    raise FederationError(f"{excerpt(target)}: redirect without a Location")
                following = urljoin(target, location)
                if urlsplit(target).scheme == "https" and urlsplit(following).scheme != "https":
                    raise FederationError(f"{excerpt(target)}: refused a redirect from https")
                target = following
                continue
            if answer.status in GONE_STATUSES:
                raise Gone(f"{excerpt(target)}: answered {answer.status}")
            if answer.status != 200:
                raise FederationError(f"{excerpt(target)}: answered {answer.status}")
            return target, _json_object(target, answer.body)
        raise FederationError(f"{excerpt(url)}: more than {MAX_REDIRECTS} redirects")


def _json_object(url: str, body: bytes) -> dict[str, Any]:
    import json

    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise FederationError(f"{excerpt(url)}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise FederationError(f"{excerpt(url)}: the answer is not a JSON object")
    return document


def _http_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.hostname else None


def _entries(value: object) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _multikey(multibase: object) -> PublicKey | None:
    """The Ed25519 key of a FEP-521a `publicKeyMultibase` (`z` + base58btc(0xed01 ‖ key))."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from node.cid.multibase import base58_decode

    if not isinstance(multibase, str) or not multibase.startswith("z") or len(multibase) > 64:
        return None
    try:
        raw = base58_decode(multibase[1:])
    except ValueError:
        return None
    if len(raw) != 34 or not raw.startswith(ED25519_MULTICODEC):
        return None
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def parse_actor(document: dict[str, Any], fetched_url: str) -> RemoteActor:
    """The actor in `document`, fetched from `fetched_url` (after redirects); FederationError
    unless its id is that URL, its inbox is http(s) and every key it lists is its own."""
    actor_id = document.get("id")
    if actor_id != fetched_url:
        raise FederationError(
            f"{excerpt(fetched_url)}: the document's id is {excerpt(actor_id)}, not its URL"
        )
    inbox = _http_url(document.get("inbox"))
    if inbox is None:
        raise FederationError(f"{excerpt(actor_id)}: the actor has no http(s) inbox")
    endpoints = document.get("endpoints")
    shared = _http_url(endpoints.get("sharedInbox")) if isinstance(endpoints, dict) else None
    keys: dict[str, PublicKey] = {}
    for entry in _entries(document.get("publicKey")):
        key_id, pem = entry.get("id"), entry.get("publicKeyPem")
        if not isinstance(key_id, str) or not isinstance(pem, str):
            continue
        if entry.get("owner") != actor_id:
            raise FederationError(f"{excerpt(key_id)}: the key's owner is not {excerpt(actor_id)}")
        try:
            keys[key_id] = load_public_key(pem)
        except SignatureError as e:
            raise FederationError(f"{excerpt(key_id)}: {e}") from None
    for entry in _entries(document.get("assertionMethod")):
        key_id = entry.get("id")
        if entry.get("type") != "Multikey" or not isinstance(key_id, str):
            continue
        if entry.get("controller") != actor_id:
            raise FederationError(
                f"{excerpt(key_id)}: the key's controller is not {excerpt(actor_id)}"
            )
        if (multikey := _multikey(entry.get("publicKeyMultibase"))) is not None:
            keys.setdefault(key_id, multikey)
    username = document.get("preferredUsername")
    return RemoteActor(
        actor_id,
        inbox,
        shared,
        username if isinstance(username, str) and 0 < len(username) <= 100 else None,
        keys,
    )

"""Following artists: follow, unfollow, mirror on or off, find a follow; syncing is `FeedSync`'s.

Following records the artist's did from the node's signed document: every later feed must be
signed by that key, or by one its key rotation statements lead to (docs/protocol-extensions.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from node.catalog import FollowRecord
from node.datadir import open_node
from node.errors import FederationError, UsageError, VerificationError
from node.federation.context import Federation, now_text
from node.federation.discovery import NodeDocument, fetch_node_document, node_urls
from node.federation.http import OutboundClient
from node.federation.mirror import ProgressCallback
from node.federation.outcomes import FollowOutcome
from node.federation.subscriber import Subscriber
from node.federation.sync import FeedSync
from node.feed import parse_json

log = logging.getLogger(__name__)

MAX_MIRRORS_BYTES = 1024 * 1024


class FollowService(FeedSync):
    """The follow use cases of one node: follow, unfollow, mirror on or off, and sync."""

    def __init__(self, federation: Federation, *, subscriber: Subscriber | None = None) -> None:
        super().__init__(federation)
        self.subscriber = subscriber or Subscriber(federation)

    async def follow(
        self, url: str, *, mirror: bool = False, progress: ProgressCallback | None = None
    ) -> FollowOutcome:
        """Follow the node at `url`: record its artist's did (every later feed must be signed
        by that key), subscribe to its hub, and sync once. Following again updates the URLs
        and the mirror choice and keeps what was accepted."""
        catalog = self.federation.catalog
        document = await fetch_node_document(self.federation.client, url)
        if document.artist == self.federation.node.identity.did:
            raise UsageError(f"{url}: that is this node's own artist")
        existing = await catalog.follow(document.artist) or await self._rotated(document)
        limit = self.federation.node.config["federation.max_follows"]
        if existing is None and len(await catalog.follows()) >= limit:
            raise UsageError(f"{url}: already following {limit} artists (federation.max_follows)")
        async with self.federation.transaction() as tx:
            await tx.add_follow(
                artist=document.artist,
                name=document.name,
                url=document.base_url,
                feed_url=document.feed_url,
                hub_url=document.hub_url,
                mirror=mirror,
                followed_at=existing.followed_at if existing else now_text(),
            )
        follow = await self._require(document.artist)
        await self.learn_mirrors(follow)
        subscription_error = None
        try:
            await self.subscriber.subscribe(follow)
        except FederationError as e:
            subscription_error = str(e)
        outcome = await self.sync(follow.artist, progress=progress)
        if existing is not None and existing.mirror and not mirror:
            await self._drop_content(follow.artist)
        return FollowOutcome(await self._require(follow.artist), outcome, subscription_error)

    async def _rotated(self, document: NodeDocument) -> FollowRecord | None:
        """When the node at an already followed URL now names another artist: the follow, once a
        sync took it through that artist's key rotation; UsageError if none leads there (a
        new key is trusted only through a statement by the followed one, even on following)."""
        follow = next(
            (
                f
                for f in await self.federation.catalog.follows()
                if f.url == document.base_url and f.artist != document.artist
            ),
            None,
        )
        if follow is None:
            return None
        outcome = await self.sync(follow.artist, follow=follow)
        if outcome.artist != document.artist:
            raise UsageError(
                f"{document.base_url}: the node now names {document.artist}, not the followed"
                f" {follow.artist}: {outcome.reason or 'its feed is still by the followed key'}"
                f" (unfollow {follow.artist} first to follow the new key)"
            )
        return await self._require(document.artist)

    async def set_mirror(
        self, artist: str, mirror: bool, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Turn mirroring of a followed artist on (fetching its content now) or off (removing it).

        Returns one line per file that could not be fetched.
        """
        follow = await self._require(artist)
        async with self.federation.transaction() as tx:
            await tx.set_mirror(artist, mirror)
        if not mirror:
            await self._drop_content(artist)
            return []
        tracks = await self.federation.catalog.followed_tracks(artist)
        return await self.mirror.fetch(replace(follow, mirror=True), tracks, progress)

    async def mirror_followed(
        self, did_or_url: str, progress: ProgressCallback | None = None
    ) -> tuple[FollowRecord, list[str]]:
        """`stave follow DID --mirror`: start mirroring an artist already followed. Returns the
        follow and one line per file that could not be fetched."""
        follow = await self.find(did_or_url)
        return follow, await self.set_mirror(follow.artist, True, progress)

    async def unfollow(self, did_or_url: str) -> FollowRecord:
        """Stop following an artist (by did or node URL): unsubscribe, forget, remove content."""
        follow = await self.find(did_or_url)
        await self.subscriber.unsubscribe(follow.artist)
        tracks = await self.federation.catalog.followed_tracks(follow.artist)
        async with self.federation.transaction() as tx:
            await tx.remove_follow(follow.artist)
        if follow.mirror:
            cids = [c for t in tracks for c in (t.audio_cid, t.cover_cid) if c]
            await self.mirror.remove_unreferenced(cids)
        return follow

    async def find(self, did_or_url: str) -> FollowRecord:
        """A followed artist by did (also one it had before a key rotation), or by its node's
        base, feed or well-known URL."""
        follows = await self.federation.catalog.follows()
        for follow in follows:
            if follow.artist == did_or_url:
                return follow
        rotated = await self.federation.catalog.rotated_follow(did_or_url)
        for follow in follows:
            if follow.artist == rotated:
                return follow
        if "://" in did_or_url:
            base, _ = node_urls(did_or_url)
            for follow in follows:
                if base in (follow.url, node_urls(follow.feed_url)[0]):
                    return follow
        raise UsageError(f"{did_or_url}: not a followed artist (see `stave following`)")

    async def _drop_content(self, artist: str) -> None:
        tracks = await self.federation.catalog.followed_tracks(artist)
        await self.mirror.remove_unreferenced(
            [c for t in tracks for c in (t.audio_cid, t.cover_cid) if c]
        )

    async def learn_mirrors(self, follow: FollowRecord) -> None:
        """Record which artists `follow`'s node mirrors (its `GET /mirrors`), best effort."""
        url = follow.url + "mirrors"
        try:
            answer = await self.federation.client.get(url, max_bytes=MAX_MIRRORS_BYTES)
            listing = parse_json(answer.body, "mirror list") if answer.status == 200 else []
        except (FederationError, VerificationError) as e:
            log.info("mirrors of %s: %s", follow.url, e)
            return
        if not isinstance(listing, list):
            return
        mirrored = [
            (entry["artist"], follow.url)
            for entry in listing
            if isinstance(entry, dict) and isinstance(entry.get("artist"), str)
            if entry["artist"] != follow.artist
        ]
        async with self.federation.transaction() as tx:
            await tx.set_known_mirrors(follow.artist, mirrored, now_text())


@asynccontextmanager
async def open_follows(root: Path) -> AsyncIterator[FollowService]:
    """The follow service of the node in data directory `root`, for one command."""
    async with open_node(root) as node:
        allow_private = node.config["federation.allow_private_addresses"]
        try:
            async with OutboundClient(allow_private=allow_private) as client:
                service = FollowService(Federation(node, node.catalog, client))
                try:
                    yield service
                finally:
                    service.close()
        finally:
            node.store.close()

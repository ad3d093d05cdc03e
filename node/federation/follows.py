"""Following artists: follow, unfollow, and sync — verify a feed and accept it, all or nothing.

A feed is accepted only as PROTOCOL §6 says (`node.feed.verify_feed`) and only if every track it
lists can be stored (ids, titles, CIDs of the right types, no track twice). An accepted feed
replaces the stored one — its exact bytes and its tracks — in one transaction; a rejected one
changes nothing but the sync status, which records why. For a mirrored artist, content the new
feed no longer lists is removed from the store and content it adds is fetched.

A feed signed by another key than the followed one is accepted only through key rotation
statements (docs/protocol-extensions.md) served at the followed node's recorded origin; the
follow is then re-keyed to the new did in the same transaction as the feed is accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.catalog import (
    FeedReplacement,
    FollowedFeed,
    FollowedTrack,
    FollowRecord,
    SyncStatus,
)
from node.cid import UnixFSImporter
from node.datadir import open_node
from node.errors import CatalogError, FederationError, UsageError, VerificationError
from node.federation.context import Federation, now_text
from node.federation.discovery import NodeDocument, fetch_node_document, node_urls
from node.federation.http import OutboundClient
from node.federation.mirror import Mirror, ProgressCallback
from node.federation.subscriber import Subscriber
from node.federation.verifier import BULK, FeedVerifier, claimed_artist, verify_accepted
from node.feed import FollowState, parse_json, parse_timestamp
from node.rotation import MAX_ROTATION_BYTES, ROTATION_PATH

log = logging.getLogger(__name__)

ACCEPTED, UNCHANGED, REJECTED = "accepted", "unchanged", "rejected"
MAX_MIRRORS_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync of one followed artist did."""

    artist: str
    name: str
    verdict: str
    sequence: int | None
    reason: str | None = None
    source: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    mirror_errors: tuple[str, ...] = ()
    rotated_from: str | None = None
    checked_at: str = field(default_factory=now_text)

    @property
    def error(self) -> str | None:
        """The line the sync status records: why the feed was rejected, or what failed."""
        if self.verdict == REJECTED:
            return self.reason
        if self.mirror_errors:
            return f"mirror: could not fetch {len(self.mirror_errors)} file(s): " + "; ".join(
                self.mirror_errors
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "artist": self.artist,
            "name": self.name,
            "verdict": self.verdict,
            "sequence": self.sequence,
            "reason": self.reason,
            "source": self.source,
            "added": list(self.added),
            "removed": list(self.removed),
            "mirrorErrors": list(self.mirror_errors),
            "rotatedFrom": self.rotated_from,
            "checkedAt": self.checked_at,
        }


@dataclass(frozen=True)
class FollowOutcome:
    """What `follow` did: the follow as recorded, its first sync, and the WebSub subscription."""

    follow: FollowRecord
    sync: SyncOutcome
    subscription_error: str | None


def follow_json(follow: FollowRecord, now: datetime | None = None) -> dict[str, Any]:
    """A followed artist as `stave following --json` and the API show it."""
    moment = now or datetime.now(UTC)
    stale = follow.expires is not None and parse_timestamp(follow.expires, "expires") <= moment
    return {
        "did": follow.artist,
        "name": follow.name,
        "url": follow.url,
        "feed": follow.feed_url,
        "hub": follow.hub_url,
        "sequence": follow.sequence,
        "tracks": follow.track_count,
        "mirror": follow.mirror,
        "followedAt": follow.followed_at,
        "lastSync": follow.synced_at,
        "lastChecked": follow.checked_at,
        "lastError": follow.last_error,
        "expires": follow.expires,
        "stale": stale,
    }


def _etag(headers: Any) -> str | None:
    value = headers.get("ETag")
    return value if isinstance(value, str) and value.startswith(('"', 'W/"')) else None


class FollowService:
    """The follow use cases of one node: follow, unfollow, mirror on or off, sync."""

    def __init__(
        self,
        federation: Federation,
        *,
        subscriber: Subscriber | None = None,
        mirror: Mirror | None = None,
        verifier: FeedVerifier | None = None,
    ) -> None:
        self.federation = federation
        self.verifier = verifier or FeedVerifier()
        self._writer = FeedWriter(federation, more_coming=self.verifier.busy)
        self.subscriber = subscriber or Subscriber(federation)
        self.mirror = mirror or Mirror(federation)
        self._locks: dict[str, asyncio.Lock] = {}

    def close(self) -> None:
        """Stop the verifier's worker processes, if it started any."""
        self.verifier.close()

    # --- follow, unfollow, mirror ---------------------------------------------------------------

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

    async def _require(self, artist: str) -> FollowRecord:
        follow = await self.federation.catalog.follow(artist)
        if follow is None:
            raise UsageError(f"{artist}: not a followed artist")
        return follow

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

    # --- sync -----------------------------------------------------------------------------------

    async def sync_all(self) -> list[SyncOutcome]:
        """One sync round of every followed artist; statuses are recorded together at the end."""
        follows = await self.federation.catalog.follows()
        if len(follows) >= BULK:
            self.verifier.start()  # the workers start while the feeds are fetched
        outcomes = await asyncio.gather(
            *(self.sync(f.artist, follow=f, record=False) for f in follows)
        )
        await self.record(outcomes)
        return list(outcomes)

    async def record(self, outcomes: Sequence[SyncOutcome]) -> None:
        """Record how syncs went (the status `stave following` shows), in one transaction."""
        if outcomes:
            async with self.federation.transaction() as tx:
                await tx.record_sync_status(
                    [SyncStatus(o.artist, o.checked_at, o.error) for o in outcomes]
                )

    async def sync(
        self,
        artist: str,
        *,
        pushed: bytes | None = None,
        follow: FollowRecord | None = None,
        progress: ProgressCallback | None = None,
        record: bool = True,
    ) -> SyncOutcome:
        """Sync one followed artist: pull its feed (conditional GET), or take a pushed one,
        verify it, and accept it or reject it whole. Never raises for a bad feed or an
        unreachable node: the outcome says why."""
        lock = self._locks.setdefault(artist, asyncio.Lock())
        async with lock:
            current = follow or await self._require(artist)
            try:
                outcome = await self._sync(current, pushed, progress)
            except (FederationError, VerificationError) as e:
                outcome = SyncOutcome(artist, current.name, REJECTED, current.sequence, str(e))
        if record:
            await self.record([outcome])
        return outcome

    async def _sync(
        self, follow: FollowRecord, pushed: bytes | None, progress: ProgressCallback | None
    ) -> SyncOutcome:
        if pushed is not None:
            return await self._take(follow, pushed, None, "push", progress)
        headers = {"Accept": "application/json"}
        if follow.etag and follow.sequence is not None:
            headers["If-None-Match"] = follow.etag
        try:
            answer = await self.federation.client.get(
                follow.feed_url, max_bytes=self.federation.max_feed_bytes, headers=headers
            )
        except FederationError:
            fallback = await self._from_mirrors(follow, progress)
            if fallback is None:
                raise
            return fallback
        if answer.status == 304 and follow.sequence is not None:
            return await self._unchanged(follow, progress, "origin")
        if answer.status != 200:
            raise FederationError(f"{follow.feed_url}: HTTP {answer.status}")
        return await self._take(follow, answer.body, _etag(answer.headers), "origin", progress)

    async def _from_mirrors(
        self, follow: FollowRecord, progress: ProgressCallback | None
    ) -> SyncOutcome | None:
        """When the artist's node is unreachable: the feed as a known mirror re-serves it."""
        for base in await self.mirror.sources(follow):
            if base == follow.url:
                continue
            url = f"{base}mirrors/{follow.artist}/feed.json"
            try:
                answer = await self.federation.client.get(
                    url, max_bytes=self.federation.max_feed_bytes
                )
                if answer.status != 200:
                    continue
                return await self._take(follow, answer.body, follow.etag, url, progress)
            except (FederationError, VerificationError) as e:
                log.info("feed of %s from mirror %s: %s", follow.artist, base, e)
        return None

    async def _unchanged(
        self, follow: FollowRecord, progress: ProgressCallback | None, source: str
    ) -> SyncOutcome:
        errors: list[str] = []
        if follow.mirror:
            tracks = await self.federation.catalog.followed_tracks(follow.artist)
            if self.mirror.missing(tracks):
                errors = await self.mirror.fetch(follow, tracks, progress)
        return SyncOutcome(
            follow.artist,
            follow.name,
            UNCHANGED,
            follow.sequence,
            source=source,
            mirror_errors=tuple(errors),
        )

    async def _take(
        self,
        follow: FollowRecord,
        body: bytes,
        etag: str | None,
        source: str,
        progress: ProgressCallback | None,
    ) -> SyncOutcome:
        """Verify `body` against what was accepted before and accept it, or raise why not."""
        catalog = self.federation.catalog
        # A snapshot saying nothing was accepted yet saves two reads; if it is out of date,
        # the conditional replacement below notices and this is done again from the catalog.
        stored = None if follow.sequence is None else await catalog.followed_feed(follow.artist)
        before = [] if stored is None else await catalog.followed_tracks(follow.artist)
        now = datetime.now(UTC)
        max_bytes = self.federation.max_feed_bytes
        try:
            feed = await self.verifier.verify(body, _state(follow.artist, stored), max_bytes, now)
        except VerificationError as refused:
            target = await asyncio.to_thread(claimed_artist, body, max_bytes)
            if target is None or target == follow.artist:
                raise
            return await self._take_rotated(follow, body, target, refused, etag, source, progress)
        if stored is not None and body == stored.body:
            if etag is not None and etag != stored.etag:
                async with self.federation.transaction() as tx:
                    await tx.set_follow_etag(follow.artist, etag)
            return await self._unchanged(follow, progress, source)
        cid, accepted_at = cid_of_bytes(body), now_text()

        def replacement(stored: FollowedFeed | None, feed: dict[str, Any]) -> FeedReplacement:
            return _replacement(follow.artist, stored, feed, body, cid, etag, accepted_at)

        if not await self._writer.accept(replacement(stored, feed)):
            # Unfollowed, or another sync (say, another process) accepted a feed meanwhile:
            # look again, and verify against what is stored now.
            try:
                async with self.federation.transaction() as tx:
                    if await tx.follow(follow.artist) is None:
                        raise FederationError(f"{follow.artist}: no longer followed")
                    stored = await tx.followed_feed(follow.artist)
                    if stored is not None and body == stored.body:
                        raise _AlreadyAccepted
                    feed = verify_accepted(body, _state(follow.artist, stored), max_bytes, now)
                    before = await tx.followed_tracks(follow.artist)
                    if not await tx.accept_feed(replacement(stored, feed)):
                        raise FederationError(
                            f"{follow.artist}: the catalog changed during the sync"
                        )
            except _AlreadyAccepted:
                return await self._unchanged(follow, progress, source)
        return await self._accepted(follow, before, feed, source, progress)

    async def _take_rotated(
        self,
        follow: FollowRecord,
        body: bytes,
        target: str,
        refused: VerificationError,
        etag: str | None,
        source: str,
        progress: ProgressCallback | None,
    ) -> SyncOutcome:
        """A feed signed as `target`, not the followed did: accept it only through rotation
        statements served at the followed node's recorded origin (never a URL the feed names),
        re-keying the follow in the same transaction; else raise why not, changing nothing."""
        catalog = self.federation.catalog
        url = follow.url + ROTATION_PATH
        unrotated = f"{refused}; no valid rotation statement leads from {follow.artist} to {target}"
        if target == self.federation.node.identity.did:
            raise VerificationError(f"{unrotated}: that is this node's own artist")
        try:
            answer = await self.federation.client.get(
                url, max_bytes=MAX_ROTATION_BYTES, headers={"Accept": "application/json"}
            )
        except FederationError as e:
            raise VerificationError(f"{unrotated}: {e}") from e
        if answer.status != 200:
            raise VerificationError(f"{unrotated}: {url} answered HTTP {answer.status}")
        stored = await catalog.followed_feed(follow.artist)
        before = await catalog.followed_tracks(follow.artist)
        max_bytes = self.federation.max_feed_bytes
        try:
            feed, chain = await self.verifier.verify_rotated(
                body, answer.body, _state(follow.artist, stored), max_bytes, datetime.now(UTC)
            )
        except VerificationError as e:
            raise VerificationError(f"{refused}; {e}") from e
        accepted_at = now_text()
        replacement = _replacement(
            target, stored, feed, body, cid_of_bytes(body), etag, accepted_at
        )
        async with self.federation.transaction() as tx:
            now_stored = await tx.followed_feed(follow.artist)
            if _version(now_stored) != _version(stored):
                raise FederationError(f"{follow.artist}: the catalog changed during the sync")
            try:
                await tx.rotate_follow(follow.artist, chain, accepted_at)
            except CatalogError as e:
                raise FederationError(f"rotation from {follow.artist} to {target}: {e}") from e
            if not await tx.accept_feed(replacement):
                raise FederationError(f"{follow.artist}: the catalog changed during the sync")
        log.info("followed artist %s rotated its key to %s", follow.artist, target)
        rotated = replace(follow, artist=target)
        return await self._accepted(rotated, before, feed, source, progress, follow.artist)

    async def _accepted(
        self,
        follow: FollowRecord,
        before: list[FollowedTrack],
        feed: dict[str, Any],
        source: str,
        progress: ProgressCallback | None,
        rotated_from: str | None = None,
    ) -> SyncOutcome:
        """The outcome of an accepted feed, once its content is mirrored (if it is)."""
        catalog = self.federation.catalog
        old = {(t.id, t.revision) for t in before}
        new = {(t["id"], t["revision"]) for t in feed["tracks"]}
        now_ids = {t["id"] for t in feed["tracks"]}
        added = tuple(sorted(i for i, r in new - old))
        removed = tuple(sorted({t.id for t in before} - now_ids))
        errors: list[str] = []
        if follow.mirror:
            kept = {c for t in feed["tracks"] for c in _cids_of(t)}
            gone = [c for t in before for c in (t.audio_cid, t.cover_cid) if c and c not in kept]
            await self.mirror.remove_unreferenced(gone)
            tracks = await catalog.followed_tracks(follow.artist)
            errors = await self.mirror.fetch(follow, tracks, progress)
        log.info(
            "accepted feed %d of %s from %s (+%d -%d)",
            feed["sequence"],
            follow.artist,
            source,
            len(added),
            len(removed),
        )
        return SyncOutcome(
            follow.artist,
            feed["name"],
            ACCEPTED,
            feed["sequence"],
            source=source,
            added=added,
            removed=removed,
            mirror_errors=tuple(errors),
            rotated_from=rotated_from,
        )


class FeedWriter:
    """Stores accepted feeds, many to a transaction when they come together (group commit).

    Each feed's replacement is whole inside one transaction; feeds verified while a transaction
    is being written wait and go together in the next, so a first sync of many follows costs a
    few transactions, not one each. When `more_coming()` says other feeds are still being
    verified, the writer lingers a moment for them before it writes: verified feeds come one by
    one, and without that a bulk sync writes a transaction for every few feeds, which costs
    the event loop more than the verification it waits for.
    """

    MAX_BATCH = 256
    LINGER = 0.05  # seconds

    def __init__(
        self, federation: Federation, more_coming: Callable[[], bool] = lambda: False
    ) -> None:
        self.federation = federation
        self.more_coming = more_coming
        self._pending: list[tuple[FeedReplacement, asyncio.Future[bool]]] = []
        self._writing = asyncio.Lock()

    async def accept(self, replacement: FeedReplacement) -> bool:
        """Whether the replacement was stored (see `CatalogWrite.accept_feeds`)."""
        mine: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((replacement, mine))
        while not mine.done():
            async with self._writing:
                if mine.done():
                    break
                if len(self._pending) < self.MAX_BATCH and self.more_coming():
                    await asyncio.sleep(self.LINGER)
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                try:
                    async with self.federation.transaction() as tx:
                        stored = await tx.accept_feeds([item for item, _ in batch])
                except asyncio.CancelledError:
                    # Rolled back; the others' feeds go in the next writer's transaction.
                    self._pending[:0] = [(item, f) for item, f in batch if f is not mine]
                    raise
                except Exception as e:
                    for _, waiting in batch:
                        waiting.set_exception(e)
                        waiting.exception()  # retrieved: each waiter raises it itself
                else:
                    for (_, waiting), ok in zip(batch, stored, strict=True):
                        waiting.set_result(ok)
        return mine.result()


class _AlreadyAccepted(Exception):
    """Another sync accepted this very feed while it was being verified."""


def _replacement(
    artist: str,
    stored: FollowedFeed | None,
    feed: dict[str, Any],
    body: bytes,
    cid: str,
    etag: str | None,
    accepted_at: str,
) -> FeedReplacement:
    """The verified `feed` to store for `artist` in place of `stored`."""
    return FeedReplacement(
        artist=artist,
        replacing=_version(stored),
        sequence=feed["sequence"],
        body=body,
        cid=cid,
        etag=etag,
        updated=feed["updated"],
        expires=feed["expires"],
        accepted_at=accepted_at,
        name=feed["name"],
        tracks=feed["tracks"],
    )


def _version(stored: FollowedFeed | None) -> tuple[int, str] | None:
    """Which accepted feed `stored` is: its sequence and CID."""
    return None if stored is None else (stored.sequence, stored.cid)


def _state(artist: str, stored: FollowedFeed | None) -> FollowState:
    if stored is None:
        return FollowState(artist=artist)
    return FollowState(artist=artist, sequence=stored.sequence, feed_bytes=stored.body)


def _cids_of(manifest: dict[str, Any]) -> list[str]:
    cids = [manifest["audio"]["cid"]]
    if manifest.get("cover"):
        cids.append(manifest["cover"]["cid"])
    return cids


def cid_of_bytes(body: bytes) -> str:
    """The CID of a document's exact bytes (PROTOCOL §3)."""
    importer = UnixFSImporter()
    importer.update(body)
    return str(importer.finish().root)


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

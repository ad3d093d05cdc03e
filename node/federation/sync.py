"""Syncing followed artists: pull a feed or take a pushed one, verify it, accept it all or nothing.

A feed is accepted only if `node.feed.judge_feed` accepts it (PROTOCOL §6, and every track it
lists can be stored). An accepted feed replaces the stored one — its exact bytes and its tracks
— in one transaction; a rejected one changes nothing but the sync status, which records why.
For a mirrored artist, content the new feed no longer lists is removed from the store and
content it adds is fetched.

A feed signed by another key than the followed one is accepted only through key rotation
statements (docs/protocol-extensions.md) served at the followed node's recorded origin; the
follow is then re-keyed to the new did in the same transaction as the feed is accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from node.catalog import (
    Catalog,
    CatalogWrite,
    FeedReplacement,
    FollowedFeed,
    FollowedTrack,
    FollowRecord,
    SyncStatus,
)
from node.cid import cid_of_bytes
from node.errors import CatalogError, FederationError, UsageError, VerificationError
from node.federation.context import Federation, now_text
from node.federation.mirror import Mirror, ProgressCallback
from node.federation.outcomes import ACCEPTED, REJECTED, UNCHANGED, SyncOutcome
from node.federation.verifier import BULK, FeedVerifier
from node.federation.writer import FeedWriter
from node.feed import FollowState, claimed_artist, judge_feed
from node.rotation import MAX_ROTATION_BYTES, ROTATION_PATH

log = logging.getLogger(__name__)


class FeedSync:
    """Syncs the followed artists of one node: one, on a push or a poll, or all in a round."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.verifier = FeedVerifier()
        self._writer = FeedWriter(federation, more_coming=self.verifier.busy)
        self.mirror = Mirror(federation)
        self._locks: dict[str, asyncio.Lock] = {}

    def close(self) -> None:
        """Stop the verifier's worker processes, if it started any."""
        self.verifier.close()

    async def _require(self, artist: str) -> FollowRecord:
        follow = await self.federation.catalog.follow(artist)
        if follow is None:
            raise UsageError(f"{artist}: not a followed artist")
        return follow

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
            releases = await self.federation.catalog.followed_releases(follow.artist)
            if self.mirror.missing(tracks, releases):
                errors = await self.mirror.fetch(follow, tracks, progress, releases)
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
        covers = [] if stored is None else await _release_covers(catalog, follow.artist)
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
                    feed = judge_feed(
                        body, _state(follow.artist, stored), max_bytes=max_bytes, now=now
                    )
                    before = await tx.followed_tracks(follow.artist)
                    covers = await _release_covers(tx, follow.artist)
                    if not await tx.accept_feed(replacement(stored, feed)):
                        raise FederationError(
                            f"{follow.artist}: the catalog changed during the sync"
                        )
            except _AlreadyAccepted:
                return await self._unchanged(follow, progress, source)
        return await self._accepted(follow, before, covers, feed, source, progress)

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
        covers = await _release_covers(catalog, follow.artist)
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
        return await self._accepted(rotated, before, covers, feed, source, progress, follow.artist)

    async def _accepted(
        self,
        follow: FollowRecord,
        before: list[FollowedTrack],
        covers_before: list[str],
        feed: dict[str, Any],
        source: str,
        progress: ProgressCallback | None,
        rotated_from: str | None = None,
    ) -> SyncOutcome:
        """The outcome of an accepted feed, once its content is mirrored (if it is);
        `before` and `covers_before` are the tracks and release covers it replaced."""
        catalog = self.federation.catalog
        old = {(t.id, t.revision) for t in before}
        new = {(t["id"], t["revision"]) for t in feed["tracks"]}
        now_ids = {t["id"] for t in feed["tracks"]}
        added = tuple(sorted(i for i, r in new - old))
        removed = tuple(sorted({t.id for t in before} - now_ids))
        errors: list[str] = []
        if follow.mirror:
            kept = {c for t in feed["tracks"] for c in _cids_of(t)}
            kept.update(r["cover"]["cid"] for r in feed.get("releases", []) if r.get("cover"))
            gone = [c for t in before for c in _cids_of(t.manifest) if c not in kept]
            gone += [c for c in covers_before if c not in kept]
            await self.mirror.remove_unreferenced(gone)
            tracks = await catalog.followed_tracks(follow.artist)
            releases = await catalog.followed_releases(follow.artist)
            errors = await self.mirror.fetch(follow, tracks, progress, releases)
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
        releases=feed.get("releases", []),
    )


async def _release_covers(catalog: Catalog | CatalogWrite, artist: str) -> list[str]:
    """The covers of the releases accepted from `artist` so far."""
    return [r.cover_cid for r in await catalog.followed_releases(artist) if r.cover_cid]


def _version(stored: FollowedFeed | None) -> tuple[int, str] | None:
    """Which accepted feed `stored` is: its sequence and CID."""
    return None if stored is None else (stored.sequence, stored.cid)


def _state(artist: str, stored: FollowedFeed | None) -> FollowState:
    if stored is None:
        return FollowState(artist=artist)
    return FollowState(artist=artist, sequence=stored.sequence, feed_bytes=stored.body)


def _cids_of(manifest: dict[str, Any]) -> list[str]:
    """The content a track manifest (one `judge_feed` accepted) names: audio, cover and
    listening renditions."""
    cids = [manifest["audio"]["cid"]]
    if manifest.get("cover"):
        cids.append(manifest["cover"]["cid"])
    cids += [rendition["cid"] for rendition in manifest.get("renditions", [])]
    return cids


def _etag(headers: Any) -> str | None:
    value = headers.get("ETag")
    return value if isinstance(value, str) and value.startswith(('"', 'W/"')) else None

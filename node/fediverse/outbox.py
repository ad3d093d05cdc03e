"""The artist's posts on the fediverse, kept in step with the published tracks and releases.

`queue_post_changes` runs inside every transaction that signs a feed (node/publish.py) and once
when the web app starts: a new loose track or a new release gets a post and a `Create`, a new
revision an `Update`, a withdrawn one a `Delete` of a `Tombstone`. A release is posted once, as
one Note; the tracks it lists get no posts of their own, not even once it is withdrawn (a track
posted before it joined a release keeps its post; one a revision leaves out is loose again).
Each post is recorded as it is served, and each activity queued for every follower inbox (one
per shared inbox) in the same transaction, so a track or release and its announcement are
published together or not at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from node.catalog import CatalogWrite, FediversePost, ReleaseRecord, TrackRecord
from node.datadir import Node
from node.fediverse.documents import ActorUrls
from node.fediverse.notes import activity, signed_note, signed_release_note, tombstone
from node.signing import now_timestamp
from node.terms import Terms

# (activity type, object, deleted): what announces a post's change.
Change = tuple[str, dict[str, Any], bool]


def activity_body(document: dict[str, Any]) -> bytes:
    """An activity as the compact UTF-8 JSON bytes that are queued and sent."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Announcer:
    """Records posts in one transaction and queues their activities for every inbox (read
    once, and only if something changed)."""

    def __init__(self, tx: CatalogWrite, urls: ActorUrls) -> None:
        self.tx = tx
        self.urls = urls
        self.inboxes: list[str] | None = None
        self.queued = 0

    async def announce(self, subject: str, kind: str, revision: int, change: Change) -> None:
        verb, obj, deleted = change
        await self.tx.put_fediverse_post(
            subject, str(obj["id"]), obj, revision, deleted=deleted, kind=kind
        )
        if self.inboxes is None:
            self.inboxes = await self.tx.follower_inboxes()
        if self.inboxes:
            document = activity(verb, self.urls, obj, revision, now_timestamp())
            await self.tx.queue_activity(str(document["id"]), activity_body(document), self.inboxes)
            self.queued += 1


async def queue_post_changes(tx: CatalogWrite, node: Node) -> int:
    """Bring the posts in `tx` up to date with the tracks and releases; returns how many
    activities were queued (none when nobody follows: the posts are still recorded)."""
    urls = ActorUrls.of(node.base_url)
    announcer = _Announcer(tx, urls)
    # Oldest first, so followers' timelines get a batch of new posts in order. Only what
    # changed is read: a start or a feed leaves the rest, and memory, alone.
    for track_id in await tx.tracks_needing_posts():
        track = await tx.track(track_id)
        change = _track_change(track, await tx.fediverse_post(track_id), urls, node)
        if change is not None:
            await announcer.announce(track.id, "track", track.revision, change)
    for release_id in await tx.releases_needing_posts():
        release = await tx.release(release_id)
        change = await _release_change(tx, release, await tx.fediverse_post(release_id), node)
        if change is not None:
            await announcer.announce(release.id, "release", release.revision, change)
    return announcer.queued


def _track_change(
    track: TrackRecord, post: FediversePost | None, urls: ActorUrls, node: Node
) -> Change | None:
    """What announces the track's change since its post."""
    if track.withdrawn_at is not None:
        if post is None or post.deleted:
            return None  # never posted, or already deleted
        return "Delete", tombstone(post.object_id, track.withdrawn_at), True
    if post is not None and (post.deleted or post.revision == track.revision):
        return None
    updated = None if post is None else now_timestamp()
    note = signed_note(track.manifest, urls, node.identity, updated=updated)
    return ("Create" if post is None else "Update"), note, False


async def _release_change(
    tx: CatalogWrite, release: ReleaseRecord, post: FediversePost | None, node: Node
) -> Change | None:
    """What announces the release's change since its post."""
    if release.withdrawn_at is not None:
        if post is None or post.deleted:
            return None
        return "Delete", tombstone(post.object_id, release.withdrawn_at), True
    if post is not None and (post.deleted or post.revision == release.revision):
        return None
    document = release.document
    manifests: list[dict[str, Any]] = []
    for entry in document["tracks"]:
        # The manifest revision the release was made from (the catalog keeps every one).
        manifest = await tx.manifest(str(entry["id"]), int(entry["revision"]))
        manifests.append(manifest or (await tx.track(str(entry["id"]))).manifest)
    terms = Terms.from_json(document["terms"]) if "terms" in document else feed_terms(node)
    updated = None if post is None else now_timestamp()
    urls = ActorUrls.of(node.base_url)
    note = signed_release_note(document, manifests, terms, urls, node.identity, updated=updated)
    return ("Create" if post is None else "Update"), note, False


def feed_terms(node: Node) -> Terms:
    """The terms the node's feed carries, which a release without its own is under: the
    configured terms, the copyright defaulting to this year and the artist's name (as
    `Publisher.default_terms` makes them for the feed)."""
    terms = Terms.from_config(node.config)
    if not terms.copyright and node.config["node.name"]:
        year = datetime.now(UTC).year
        terms = terms.with_choices(copyright=f"{year} {node.config['node.name']}")
    return terms

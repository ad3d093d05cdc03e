"""The artist's posts on the fediverse, kept in step with the published tracks.

`queue_post_changes` runs inside every transaction that signs a feed (node/publish.py) and once
when the web app starts: a new track gets a post and a `Create`, a new revision an `Update`, a
withdrawn track a `Delete` of a `Tombstone`. Each post is recorded as it is served, and each
activity queued for every follower inbox (one per shared inbox) in the same transaction, so a
track and its announcement are published together or not at all.
"""

from __future__ import annotations

import json
from typing import Any

from node.catalog import CatalogWrite, FediversePost, TrackRecord
from node.datadir import Node
from node.fediverse.documents import ActorUrls
from node.fediverse.notes import activity, signed_note, tombstone
from node.signing import now_timestamp


def activity_body(document: dict[str, Any]) -> bytes:
    """An activity as the compact UTF-8 JSON bytes that are queued and sent."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def queue_post_changes(tx: CatalogWrite, node: Node) -> int:
    """Bring the posts in `tx` up to date with the tracks; returns how many activities were
    queued (none when nobody follows: the posts are still recorded)."""
    urls = ActorUrls.of(node.base_url)
    inboxes: list[str] | None = None
    queued = 0
    # Oldest first, so followers' timelines get a batch of new tracks in order. Only the
    # tracks that changed are read: a start or a feed leaves the rest, and memory, alone.
    for track_id in await tx.tracks_needing_posts():
        track = await tx.track(track_id)
        change = _change(track, await tx.fediverse_post(track_id), urls, node)
        if change is None:
            continue
        kind, obj, deleted = change
        await tx.put_fediverse_post(track.id, str(obj["id"]), obj, track.revision, deleted=deleted)
        if inboxes is None:
            inboxes = await tx.follower_inboxes()
        if inboxes:
            document = activity(kind, urls, obj, track.revision, now_timestamp())
            await tx.queue_activity(str(document["id"]), activity_body(document), inboxes)
            queued += 1
    return queued


def _change(
    track: TrackRecord, post: FediversePost | None, urls: ActorUrls, node: Node
) -> tuple[str, dict[str, Any], bool] | None:
    """What announces the track's change since its post: (activity type, object, deleted)."""
    if track.withdrawn_at is not None:
        if post is None or post.deleted:
            return None  # never posted, or already deleted
        return "Delete", tombstone(post.object_id, track.withdrawn_at), True
    if post is not None and (post.deleted or post.revision == track.revision):
        return None
    updated = None if post is None else now_timestamp()
    note = signed_note(track.manifest, urls, node.identity, updated=updated)
    return ("Create" if post is None else "Update"), note, False

"""The listener's timeline: followed artists' tracks, newest first, each playable from here or
from the artist's node."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from node.catalog import Catalog, FollowedTrack, FollowRecord
from node.errors import StaveError
from node.feed import parse_timestamp
from node.store import Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


@dataclass(frozen=True)
class TimelineEntry:
    """One track of a followed artist, with where to play it."""

    track: FollowedTrack
    follow: FollowRecord
    audio_url: str
    cover_url: str | None
    mirrored: bool
    stale: bool

    def to_json(self) -> dict[str, Any]:
        manifest = self.track.manifest
        terms = manifest.get("terms") or {}
        mining = terms.get("dataMining") or {}
        return {
            "artist": self.track.artist,
            "artistName": self.follow.name,
            "id": self.track.id,
            "revision": self.track.revision,
            "title": self.track.title,
            "published": self.track.published,
            "durationSeconds": manifest.get("durationSeconds"),
            "mediaType": (manifest.get("audio") or {}).get("mediaType"),
            "audio": self.audio_url,
            "cover": self.cover_url,
            "audioCid": self.track.audio_cid,
            "mirrored": self.mirrored,
            "stale": self.stale,
            "license": terms.get("license"),
            "aiTraining": mining.get("aiTraining"),
            "manifest": manifest,
        }


def _stale(follow: FollowRecord, now: datetime) -> bool:
    if follow.expires is None:
        return False
    try:
        return parse_timestamp(follow.expires, "expires") <= now
    except StaveError:
        return True


async def timeline(
    catalog: Catalog, store: Store, base_url: str, *, limit: int = DEFAULT_LIMIT
) -> list[TimelineEntry]:
    """Followed artists' current tracks, newest first; each plays from this node's mirror when
    it holds the file, otherwise from the artist's node."""
    follows = {f.artist: f for f in await catalog.follows()}
    now = datetime.now(UTC)
    entries = []
    for track in await catalog.followed_tracks(limit=max(1, min(limit, MAX_LIMIT))):
        follow = follows.get(track.artist)
        if follow is None:
            continue
        local = follow.mirror and store.has(track.audio_cid)
        audio = (base_url if local else follow.url) + "ipfs/" + track.audio_cid
        cover = None
        if track.cover_cid:
            cover_here = follow.mirror and store.has(track.cover_cid)
            cover = (base_url if cover_here else follow.url) + "ipfs/" + track.cover_cid
        entries.append(TimelineEntry(track, follow, audio, cover, local, _stale(follow, now)))
    return entries

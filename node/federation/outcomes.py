"""What following reports: the outcome of one sync or one follow, and a followed artist as JSON
(`stave following --json`, the admin API, the timeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from node.catalog import FollowRecord
from node.federation.context import now_text
from node.feed import parse_timestamp

ACCEPTED, UNCHANGED, REJECTED = "accepted", "unchanged", "rejected"


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

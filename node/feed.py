"""Feed and node documents (PROTOCOL §6, §7): build them, serialise them, verify them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from node.errors import VerificationError, excerpt
from node.manifest import verify_manifest
from node.signing import verify_document
from node.terms import Terms

FEED_TYPE = "StaveFeed"
NODE_TYPE = "StaveNode"


# RFC 3339 §5.6 `date-time`: an offset or Z is required, and T and Z may be lower case (§5.6
# note). `datetime.fromisoformat` alone would also take ISO 8601 forms RFC 3339 does not
# ("20261126T160000Z", week dates, no time zone).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_timestamp(value: Any, what: str) -> datetime:
    """An RFC 3339 date-time with its offset; VerificationError naming `what` otherwise."""
    if not isinstance(value, str):
        raise VerificationError(f"{what} is not a timestamp")
    if not _RFC3339.fullmatch(value):
        raise VerificationError(f"{what} {excerpt(value)} is not an RFC 3339 timestamp")
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as e:  # a month 13, a 25th hour, …
        raise VerificationError(f"{what} {excerpt(value)} is not an RFC 3339 timestamp") from e


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry(updated: datetime, days: int) -> str:
    return format_timestamp(updated + timedelta(days=days))


def build_feed(
    *,
    artist: str,
    name: str,
    url: str,
    sequence: int,
    previous: str | None,
    updated: datetime,
    expires_days: int,
    terms: Terms,
    tracks: list[dict[str, Any]],
    withdrawn: list[tuple[str, str]],
    rotation: str | None = None,
) -> dict[str, Any]:
    """An unsigned feed document; `tracks` are signed manifests, newest first. `rotation` is the
    URL of the artist's key rotation statements, once there are any (docs/protocol-extensions.md).
    """
    document: dict[str, Any] = {
        "type": FEED_TYPE,
        "artist": artist,
        "name": name,
        "url": url,
        "sequence": sequence,
        "previous": previous,
        "updated": format_timestamp(updated),
        "expires": expiry(updated, expires_days),
        "terms": terms.to_json(),
        "tracks": tracks,
        "withdrawn": [{"id": track_id, "at": at} for track_id, at in withdrawn],
    }
    if rotation is not None:
        document["rotation"] = rotation
    return document


def serialize(document: Mapping[str, Any]) -> bytes:
    """The bytes a signed document is stored, served and addressed (by CID) as."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class FollowState:
    """What a follower last accepted from an artist."""

    artist: str
    sequence: int | None = None
    feed_bytes: bytes | None = None


def parse_json(body: bytes, what: str = "feed") -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise VerificationError(f"{what} is not valid UTF-8 JSON ({e})") from e
    except RecursionError as e:
        raise VerificationError(f"{what} nests too deeply to be read as JSON") from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def verify_feed(
    body: bytes,
    state: FollowState,
    *,
    max_bytes: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The feed document in `body` if a follower in `state` may accept it (PROTOCOL §6).

    Raises VerificationError with the reason otherwise; never returns a partly checked feed.
    """
    if len(body) > max_bytes:
        raise VerificationError(f"feed is {len(body)} bytes, over the limit of {max_bytes}")
    feed = parse_json(body)
    if not isinstance(feed, dict):
        raise VerificationError("feed is not a JSON object")
    if feed.get("type") != FEED_TYPE:
        raise VerificationError(f"feed type {excerpt(feed.get('type'))} is not {FEED_TYPE}")
    if feed.get("artist") != state.artist:
        raise VerificationError(
            f"feed is by {excerpt(feed.get('artist'))}, not the followed {state.artist}"
        )
    simple = verify_document(feed, state.artist)
    sequence = feed.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise VerificationError("feed sequence is not a non-negative integer")
    if state.sequence is not None:
        if sequence < state.sequence:
            raise VerificationError(
                f"feed sequence {sequence} is older than the accepted {state.sequence} (rollback)"
            )
        if sequence == state.sequence and body != state.feed_bytes:
            raise VerificationError(
                f"feed sequence {sequence} was already accepted with different content"
            )
    moment = now or datetime.now(UTC)
    expires = parse_timestamp(feed.get("expires"), "feed expires")
    if expires <= moment:
        raise VerificationError(f"feed expired at {format_timestamp(expires)}")
    parse_timestamp(feed.get("updated"), "feed updated")
    tracks = feed.get("tracks")
    withdrawn = feed.get("withdrawn", [])
    if not isinstance(tracks, list) or not isinstance(withdrawn, list):
        raise VerificationError("feed tracks or withdrawn is not a list")
    for manifest in tracks:
        verify_manifest(manifest, state.artist, within_simple=simple)
    for entry in withdrawn:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise VerificationError("feed has a malformed withdrawn entry")
    return feed


def build_node_document(
    *,
    artist: str,
    name: str,
    base_url: str,
    ipns: str | None,
    software_version: str,
    rotation: str | None = None,
) -> dict[str, Any]:
    """The unsigned `/.well-known/stave` document; `rotation` as in `build_feed`."""
    document: dict[str, Any] = {
        "type": NODE_TYPE,
        "artist": artist,
        "name": name,
        "feed": base_url + "feed.json",
        "rss": base_url + "feed.rss",
        "hub": base_url + "websub",
        "ipns": ipns,
        "software": {"name": "stave", "version": software_version},
    }
    if rotation is not None:
        document["rotation"] = rotation
    return document

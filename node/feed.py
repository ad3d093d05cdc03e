"""Feed and node documents (PROTOCOL §6, §7): build them, serialise them, verify them.

`judge_feed` is the one judge of a feed: a follower (pulled or pushed, from the origin or a
mirror), `stave verify` and `stave check` all accept exactly what it accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from node.cid import CID
from node.errors import InvalidCID, VerificationError, excerpt
from node.manifest import verify_manifest
from node.release import check_release_tracks, track_versions, verify_release
from node.signing import require_value, verify_document
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
    releases: list[dict[str, Any]] | None = None,
    withdrawn_releases: list[dict[str, str]] | None = None,
    support: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An unsigned feed document; `tracks` are signed manifests, newest first. `rotation` is the
    URL of the artist's key rotation statements, once there are any (docs/protocol-extensions.md).
    `releases` are signed release documents, newest first, and `withdrawn_releases` their
    tombstones ({"id", "at"}), as "Releases" in docs/protocol-extensions.md gives them.
    `support` is the optional `support` member (node/support.py), left out when None.
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
        "releases": list(releases or []),
        "withdrawnReleases": [{"id": w["id"], "at": w["at"]} for w in withdrawn_releases or []],
    }
    if rotation is not None:
        document["rotation"] = rotation
    if support:
        document["support"] = support
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
    """The feed document in `body` if a follower in `state` may accept it (PROTOCOL §6): the
    protocol's part of `judge_feed`, which is what every judge of a feed calls.

    Raises VerificationError with the reason otherwise; never returns a partly checked feed.
    """
    if len(body) > max_bytes:
        raise VerificationError(f"feed is {len(body)} bytes, over the limit of {max_bytes}")
    feed = parse_json(body)
    if not isinstance(feed, dict):
        raise VerificationError("feed is not a JSON object")
    require_value(feed.get("type"), FEED_TYPE, "feed type")
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
    _verify_releases(feed, state.artist, simple)
    return feed


def _verify_releases(feed: dict[str, Any], artist: str, simple: bool) -> None:
    """Raise unless every release of the feed is signed by `artist`, well formed, and made of
    the feed's own tracks at their current revision and audio; and its tombstones are well
    formed (docs/protocol-extensions.md, "Releases"). A feed without releases passes."""
    releases = feed.get("releases", [])
    withdrawn = feed.get("withdrawnReleases", [])
    if not isinstance(releases, list) or not isinstance(withdrawn, list):
        raise VerificationError("feed releases or withdrawnReleases is not a list")
    versions = track_versions(feed["tracks"]) if releases else {}
    seen: set[str] = set()
    for release in releases:
        verify_release(release, artist, within_simple=simple)
        if release["id"] in seen:
            raise VerificationError(f"release {excerpt(release['id'])}: listed twice in the feed")
        seen.add(release["id"])
        check_release_tracks(release, versions)
    for entry in withdrawn:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), str)
            or not isinstance(entry.get("at"), str)
        ):
            raise VerificationError("feed has a malformed withdrawnReleases entry")
        if entry["id"] in seen:
            raise VerificationError(
                f"release {excerpt(entry['id'])}: both listed and withdrawn in the feed"
            )


def judge_feed(
    body: bytes,
    state: FollowState,
    *,
    max_bytes: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The feed document in `body` if it is acceptable to a follower in `state`: what
    `verify_feed` checks (signatures, sequence, expiry, every track signed) and the types the
    catalog and the gateway rely on. Raises VerificationError with the reason otherwise.
    """
    feed = verify_feed(body, state, max_bytes=max_bytes, now=now)
    _check_storable(feed)
    return feed


def _check_storable(feed: dict[str, Any]) -> None:
    """Raise why the signed feed's tracks cannot be stored as they are; else return.

    These are the types the catalog and the gateway rely on, so that a signed but malformed
    feed is rejected whole, never half-stored.
    """
    if not isinstance(feed.get("name"), str):
        raise VerificationError("feed name is not a string")
    seen: set[str] = set()
    for manifest in feed["tracks"]:
        label = f"track {repr(manifest.get('id'))[:80]}"
        for key in ("id", "title", "published"):
            if not isinstance(manifest.get(key), str):
                raise VerificationError(f"{label}: {key} is not a string")
        revision = manifest.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise VerificationError(f"{label}: revision is not an integer")
        if manifest["id"] in seen:
            raise VerificationError(f"{label}: listed twice in the feed")
        seen.add(manifest["id"])
        refs = [("audio", manifest["audio"])]
        if manifest.get("cover") is not None:
            refs.append(("cover", manifest["cover"]))
        refs += [("rendition", ref) for ref in manifest.get("renditions", [])]
        for what, ref in refs:
            if not isinstance(ref, dict) or not isinstance(ref.get("cid"), str):
                raise VerificationError(f"{label}: {what} has no CID")
            try:
                CID.parse(ref["cid"])
            except InvalidCID as e:
                raise VerificationError(f"{label}: {what} CID is not valid ({e})") from e


def claimed_artist(body: bytes, max_bytes: int) -> str | None:
    """The `artist` a feed (within the size limit) names, if it is a feed naming one at all."""
    if len(body) > max_bytes:
        return None
    try:
        feed = parse_json(body)
    except VerificationError:
        return None
    if not isinstance(feed, dict) or feed.get("type") != FEED_TYPE:
        return None
    artist = feed.get("artist")
    return artist if isinstance(artist, str) else None


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

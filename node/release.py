"""Release documents (docs/protocol-extensions.md, "Releases (proposed §12)"): build one, check
one, and keep one in step with the tracks it lists.

A release is an album, an EP, a single or a compilation: its tracks in play order, each entry
naming the manifest revision and audio CID it was made from, signed `eddsa-jcs-2022` by the
artist like every Stave document (PROTOCOL §2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from node.cid import CID
from node.errors import InvalidCID, VerificationError, excerpt
from node.signing import require_value, verify_document
from node.terms import Terms

RELEASE_TYPE = "StaveRelease"
RELEASE_KINDS = ("album", "ep", "single", "compilation")
_REQUIRED = ("id", "revision", "artist", "title", "kind", "released", "published", "tracks")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# RFC 3339 §5.6 date-time, as node/feed.py reads it.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def release_track_entry(manifest: Mapping[str, Any], disc: int, number: int) -> dict[str, Any]:
    """The `tracks` entry of a release for this signed track manifest, at disc/number."""
    return {
        "id": manifest["id"],
        "revision": manifest["revision"],
        "cid": manifest["audio"]["cid"],
        "disc": disc,
        "number": number,
    }


def build_release(
    *,
    release_id: str,
    revision: int,
    artist: str,
    title: str,
    kind: str,
    released: str,
    published: str,
    tracks: Sequence[Mapping[str, Any]],
    cover: Mapping[str, Any] | None = None,
    credits: Sequence[Mapping[str, str]] | None = None,
    description: str | None = None,
    upc: str | None = None,
    terms: Terms | None = None,
) -> dict[str, Any]:
    """An unsigned release document; `tracks` are `release_track_entry` results in play order,
    `cover` a content reference ({cid, mediaType, size}), `terms` only when they differ from
    the feed's. Optional members that are None (or empty) are left out."""
    document: dict[str, Any] = {
        "type": RELEASE_TYPE,
        "id": release_id,
        "revision": revision,
        "artist": artist,
        "title": title,
        "kind": kind,
        "released": released,
        "published": published,
        "tracks": [dict(entry) for entry in tracks],
    }
    if cover is not None:
        document["cover"] = dict(cover)
    if credits:
        document["credits"] = [{"role": c["role"], "name": c["name"]} for c in credits]
    if description:
        document["description"] = description
    if upc:
        document["upc"] = upc
    if terms is not None:
        document["terms"] = terms.to_json()
    return document


def revise_release(
    document: Mapping[str, Any], manifests: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The next revision of a signed release (unsigned) whose track entries name the manifests
    given by track id (the current ones), or None when every entry already names them. A track
    missing from `manifests` keeps its entry."""
    entries = []
    changed = False
    for entry in document["tracks"]:
        manifest = manifests.get(entry["id"])
        if manifest is not None and (
            manifest["revision"] != entry["revision"] or manifest["audio"]["cid"] != entry["cid"]
        ):
            entry = release_track_entry(manifest, entry["disc"], entry["number"])
            changed = True
        entries.append(dict(entry))
    if not changed:
        return None
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    unsigned.update(revision=document["revision"] + 1, tracks=entries)
    return unsigned


def verify_release(document: Any, artist: str, *, within_simple: bool = False) -> None:
    """Return if `document` is a well-formed StaveRelease signed by `artist`; else raise why.

    `within_simple`: as for `verify_document`, when the release is in a feed just verified.
    """
    if not isinstance(document, Mapping):
        raise VerificationError("release is not a JSON object")
    release_id = document.get("id", "?")
    plain = isinstance(release_id, str) and len(release_id) <= 80 and release_id.isprintable()
    label = f"release {release_id if plain else excerpt(release_id)}"
    try:
        require_value(document.get("type"), RELEASE_TYPE, "type")
        missing = [key for key in _REQUIRED if key not in document]
        if missing:
            raise VerificationError(f"lacks {', '.join(missing)}")
        if document["artist"] != artist:
            raise VerificationError(f"artist {excerpt(document['artist'])} is not {artist}")
        verify_document(document, artist, within_simple=within_simple)
        _check_members(document)
    except VerificationError as e:
        raise VerificationError(f"{label}: {e}") from e


def _check_members(document: Mapping[str, Any]) -> None:
    """Raise why a signed release's members do not have the types and values §12 gives."""
    if not isinstance(document["id"], str) or not document["id"].startswith("urn:uuid:"):
        raise VerificationError("id is not a urn:uuid")
    if not _positive(document["revision"]):
        raise VerificationError("revision is not a positive integer")
    if not isinstance(document["title"], str) or not document["title"].strip():
        raise VerificationError("title is not a non-empty string")
    if document["kind"] not in RELEASE_KINDS:
        raise VerificationError(
            f"kind {excerpt(document['kind'])} is not one of {', '.join(RELEASE_KINDS)}"
        )
    _check_date(document["released"])
    _check_timestamp(document["published"])
    _check_tracks(document["tracks"])
    if "cover" in document:
        cover = document["cover"]
        if not isinstance(cover, Mapping):
            raise VerificationError("cover is not a JSON object")
        _check_cid(cover.get("cid"), "cover")
        if not isinstance(cover.get("mediaType"), str):
            raise VerificationError("cover mediaType is not a string")
        if not _count(cover.get("size")):
            raise VerificationError("cover size is not a non-negative integer")
    credits = document.get("credits", [])
    if not isinstance(credits, list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("role"), str) and isinstance(c.get("name"), str)
        for c in credits
    ):
        raise VerificationError("credits is not a list of {role, name} strings")
    for key in ("description", "upc"):
        if key in document and not isinstance(document[key], str):
            raise VerificationError(f"{key} is not a string")
    if "terms" in document:
        Terms.from_json(document["terms"])


def _check_tracks(tracks: Any) -> None:
    if not isinstance(tracks, list) or not tracks:
        raise VerificationError("tracks is not a non-empty list")
    seen: set[str] = set()
    places: set[tuple[int, int]] = set()
    for entry in tracks:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            raise VerificationError("a tracks entry has no id")
        shown = excerpt(entry["id"])
        if entry["id"] in seen:
            raise VerificationError(f"track {shown} is listed twice")
        seen.add(entry["id"])
        for key in ("revision", "disc", "number"):
            if not _positive(entry.get(key)):
                raise VerificationError(f"track {shown}: {key} is not a positive integer")
        _check_cid(entry.get("cid"), f"track {shown}")
        place = (entry["disc"], entry["number"])
        if place in places:
            raise VerificationError(f"track {shown}: disc {place[0]} number {place[1]} is taken")
        places.add(place)


def _check_cid(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise VerificationError(f"{what} has no CID")
    try:
        CID.parse(value)
    except InvalidCID as e:
        raise VerificationError(f"{what} CID is not valid ({e})") from e


def _check_date(value: Any) -> None:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
            return
        except ValueError:
            pass
    raise VerificationError(f"released {excerpt(value)} is not a date (YYYY-MM-DD)")


def _check_timestamp(value: Any) -> None:
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        try:
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            return
        except ValueError:
            pass
    raise VerificationError(f"published {excerpt(value)} is not an RFC 3339 timestamp")


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def track_versions(tracks: Sequence[Any]) -> dict[Any, tuple[Any, Any]]:
    """What `check_release_tracks` compares against: each signed manifest's id, mapped to its
    revision and audio CID."""
    return {
        manifest.get("id"): (manifest.get("revision"), (manifest.get("audio") or {}).get("cid"))
        for manifest in tracks
        if isinstance(manifest, Mapping)
    }


def check_release_tracks(
    release: Mapping[str, Any], versions: Mapping[Any, tuple[Any, Any]]
) -> None:
    """Raise unless every track entry of a verified `release` names one of a feed's tracks
    (`track_versions` of its manifests) with that manifest revision and audio CID."""
    for entry in release["tracks"]:
        found = versions.get(entry["id"])
        label = f"release {excerpt(release['id'])}: track {excerpt(entry['id'])}"
        if found is None:
            raise VerificationError(f"{label} is not in the feed")
        if found != (entry["revision"], entry["cid"]):
            raise VerificationError(
                f"{label}: revision {entry['revision']} with audio {entry['cid']} is not the"
                f" feed's (revision {excerpt(found[0])}, audio {excerpt(found[1])})"
            )

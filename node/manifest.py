"""Track manifests (PROTOCOL §5): build one, check one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.errors import VerificationError, excerpt
from node.signing import verify_document
from node.terms import Terms

MANIFEST_TYPE = "StaveTrack"
_REQUIRED = ("id", "revision", "artist", "title", "published", "audio", "terms")


def content_ref(cid: str, media_type: str, size: int) -> dict[str, Any]:
    return {"cid": cid, "mediaType": media_type, "size": size}


def build_manifest(
    *,
    track_id: str,
    revision: int,
    artist: str,
    title: str,
    published: str,
    duration_seconds: float,
    audio: dict[str, Any],
    cover: dict[str, Any] | None,
    terms: Terms,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An unsigned manifest; `extra` holds optional members (album, trackNumber, …)."""
    manifest: dict[str, Any] = {
        "type": MANIFEST_TYPE,
        "id": track_id,
        "revision": revision,
        "artist": artist,
        "title": title,
        "published": published,
        "durationSeconds": round(duration_seconds, 3),
        "audio": audio,
    }
    if cover is not None:
        manifest["cover"] = cover
    manifest["terms"] = terms.to_json()
    for key, value in (extra or {}).items():
        manifest.setdefault(key, value)
    return manifest


def verify_manifest(manifest: Any, artist: str, *, within_simple: bool = False) -> None:
    """Return if `manifest` is a well-formed StaveTrack signed by `artist`; else raise why.

    `within_simple`: as for `verify_document`, when the manifest is in a feed just verified.
    """
    if not isinstance(manifest, Mapping):
        raise VerificationError("track manifest is not a JSON object")
    track_id = manifest.get("id", "?")
    shown = track_id if isinstance(track_id, str) and _plain(track_id) else excerpt(track_id)
    label = f"track {shown}"
    if manifest.get("type") != MANIFEST_TYPE:
        raise VerificationError(f"{label}: type is not {MANIFEST_TYPE}")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise VerificationError(f"{label}: lacks {', '.join(missing)}")
    if manifest["artist"] != artist:
        raise VerificationError(f"{label}: artist {excerpt(manifest['artist'])} is not {artist}")
    audio = manifest["audio"]
    if not isinstance(audio, Mapping) or not isinstance(audio.get("cid"), str):
        raise VerificationError(f"{label}: audio has no CID")
    _check_renditions(manifest.get("renditions", []), label)
    try:
        verify_document(manifest, artist, within_simple=within_simple)
    except VerificationError as e:
        raise VerificationError(f"{label}: {e}") from e
    Terms.from_json(manifest["terms"])


def _check_renditions(renditions: Any, label: str) -> None:
    """`renditions` (node/renditions.py): listening copies, each a CID, a media type, a size
    and a bitrate in bits per second, so that a follower can mirror and serve them."""
    if not isinstance(renditions, list):
        raise VerificationError(f"{label}: renditions is not a list")
    for entry in renditions:
        ok = isinstance(entry, Mapping) and isinstance(entry.get("cid"), str)
        ok = ok and isinstance(entry.get("mediaType"), str)
        ok = ok and all(_count(entry.get(key)) for key in ("size", "bitrate"))
        if not ok:
            raise VerificationError(
                f"{label}: a rendition lacks a CID, media type, size or bitrate: {excerpt(entry)}"
            )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _plain(text: str) -> bool:
    """Whether an id can go into a message as it is: short, one line, printable."""
    return len(text) <= 80 and text.isprintable()

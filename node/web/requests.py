"""What handlers read of a request beyond its route: the track a URL segment names, the
encodings a client accepts and its conditional `If-None-Match`."""

from __future__ import annotations

import uuid

from aiohttp import web

from node.errors import TrackNotFound


def track_id_from_path(raw: str) -> str:
    """The full `urn:uuid:…` id named by a URL segment (full id or bare UUID).

    TrackNotFound when it is neither, so a malformed id reads like an unknown one.
    """
    bare = raw.removeprefix("urn:uuid:")
    try:
        parsed = uuid.UUID(bare)
    except ValueError as e:
        raise TrackNotFound(f"track {raw}: no such track") from e
    if str(parsed) != bare.lower():
        raise TrackNotFound(f"track {raw}: no such track")
    return f"urn:uuid:{parsed}"


def accepts_gzip(request: web.BaseRequest) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110 §12.5.3), `q=0` meaning no."""
    for entry in request.headers.get("Accept-Encoding", "").lower().split(","):
        coding, _, params = entry.strip().partition(";")
        if coding.strip() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def etag_matches(request: web.BaseRequest, etag: str) -> bool:
    """If-None-Match against our ETag, by weak comparison (RFC 9110 §13.1.2)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))

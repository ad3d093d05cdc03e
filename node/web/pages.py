"""The public HTML pages: the artist page, one page per track, the terms page, and the
embeddable one-track player.

Server-rendered, readable without JavaScript; web/static/stave.js then adds the player and
checks the artist's signatures in the browser. Content is linked by CID under /ipfs/.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.catalog import TrackRecord
from node.errors import TrackNotFound
from node.terms import DATA_MINING_USES, Terms
from node.web import csp
from node.web.signals import policy_url
from node.web.state import NODE, PUBLISHER
from node.web.templates import STATIC_PREFIX, render, static_dir

_USE_LABELS = {
    "aiTraining": "Training AI models",
    "aiGenerativeTraining": "Training generative AI models",
    "aiInference": "Use as input to AI models",
    "dataMining": "Text and data mining",
}
_USE_VALUES = {
    "allowed": "Allowed",
    "notAllowed": "Not allowed without permission",
    "constrained": "Only on the artist's conditions",
}


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


def no_ai_words(terms: Terms) -> str:
    """The uses the terms refuse, as one sentence beside the "Not for AI training" mark."""
    refused = [
        _USE_LABELS[use][0].lower() + _USE_LABELS[use][1:]
        for use in DATA_MINING_USES
        if terms.data_mining[use] == "notAllowed"
    ]
    return (
        "Without the artist's permission this recording may not be used for "
        + ", ".join(refused)
        + ". These terms are also written into the file and signed by the artist."
    )


def _size_in_words(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} bytes"


@dataclass(frozen=True)
class TrackView:
    """What a page shows of one published track."""

    id: str
    uuid: str
    url: str
    title: str
    artist: str
    revision: int
    published: str
    published_date: str
    duration_seconds: float | None
    album: str | None
    audio_cid: str
    media_type: str
    size_words: str
    cover_cid: str | None
    cover_type: str
    license_words: str
    license_url: str
    copyright: str
    no_ai_training: bool
    no_ai_words: str
    terms: Terms
    terms_words: str
    manifest_json: str
    manifest_compact: str

    @classmethod
    def of(cls, track: TrackRecord) -> TrackView:
        manifest: dict[str, Any] = track.manifest
        terms = Terms.from_json(manifest["terms"])
        bare = track.id.removeprefix("urn:uuid:")
        return cls(
            id=track.id,
            uuid=bare,
            url=f"/tracks/{bare}",
            title=track.title,
            artist=str(manifest["artist"]),
            revision=track.revision,
            published=track.published,
            published_date=track.published[:10],
            duration_seconds=manifest.get("durationSeconds"),
            album=manifest.get("album"),
            audio_cid=track.audio_cid,
            media_type=str(manifest["audio"]["mediaType"]),
            size_words=_size_in_words(int(manifest["audio"]["size"])),
            cover_cid=track.cover_cid,
            cover_type=str((manifest.get("cover") or {}).get("mediaType", "")),
            license_words=terms.license_in_words(),
            license_url=terms.license_url,
            copyright=terms.copyright,
            no_ai_training=terms.ai_training == "notAllowed",
            no_ai_words=no_ai_words(terms),
            terms=terms,
            terms_words=terms.in_words(),
            manifest_json=json.dumps(manifest, indent=2, ensure_ascii=False),
            manifest_compact=json.dumps(manifest, separators=(",", ":"), ensure_ascii=False),
        )


async def artist_page(request: web.Request) -> web.Response:
    """`GET /`: the artist's name, terms and every published track, newest first."""
    node = request.config_dict[NODE]
    terms = request.config_dict[PUBLISHER].default_terms()
    tracks = [TrackView.of(t) for t in await node.catalog.tracks()]
    return render(
        request,
        "artist.html",
        {
            "terms": terms,
            "no_ai_training": terms.ai_training == "notAllowed",
            "tracks": tracks,
            "follow_url": node.base_url,
        },
    )


async def track_page(request: web.Request) -> web.Response:
    """`GET /tracks/{id}`: one track; 404 when unknown, 410 once withdrawn."""
    track_id = track_id_from_path(request.match_info["id"])
    track = await request.config_dict[NODE].catalog.track(track_id)
    if track.withdrawn_at is not None:
        return render(
            request,
            "withdrawn.html",
            {
                "title": track.title,
                "withdrawn_at": track.withdrawn_at,
                "withdrawn_date": track.withdrawn_at[:10],
            },
            status=410,
        )
    view = TrackView.of(track)
    embed_url = f"{request.config_dict[NODE].base_url}embed/{view.uuid}"
    return render(request, "track.html", {"track": view, "embed_url": embed_url})


async def embed_page(request: web.Request) -> web.Response:
    """`GET /embed/{id}`: one track's player with minimal chrome, for other sites to frame.

    The only page that may be framed (CSP `frame-ancestors *`); 404 unknown, 410 withdrawn.
    """
    track_id = track_id_from_path(request.match_info["id"])
    track = await request.config_dict[NODE].catalog.track(track_id)
    if track.withdrawn_at is not None:
        response = render(
            request,
            "embed_withdrawn.html",
            {"title": track.title, "withdrawn_date": track.withdrawn_at[:10]},
            status=410,
        )
    else:
        response = render(request, "embed.html", {"track": TrackView.of(track)})
    csp.allow_framing(response)
    return response


def _contact_href(contact: str) -> str | None:
    if contact.startswith(("https://", "http://", "mailto:")):
        return contact
    if "@" in contact and " " not in contact:
        return "mailto:" + contact
    return None


async def terms_page(request: web.Request) -> web.Response:
    """`GET /terms`: the node's terms in words, its TDMRep signals, and whom to ask."""
    node = request.config_dict[NODE]
    terms = request.config_dict[PUBLISHER].default_terms()
    contact: str = node.config["node.contact"].strip()
    own_terms = [
        view
        for view in (TrackView.of(t) for t in await node.catalog.tracks())
        if view.terms.data_mining != terms.data_mining or view.terms.license != terms.license
    ]
    uses = [
        {"label": _USE_LABELS[use], "value": _USE_VALUES[terms.data_mining[use]]}
        for use in DATA_MINING_USES
    ]
    return render(
        request,
        "terms.html",
        {
            "terms": terms,
            "no_ai_training": terms.ai_training == "notAllowed",
            "uses": uses,
            "own_terms": own_terms,
            "tdm_policy": policy_url(terms, node.base_url),
            "contact": contact,
            "contact_href": _contact_href(contact),
        },
    )


def setup_routes(app: web.Application) -> None:
    """Add the public pages, the embeddable player, their assets (under /static/), the
    browser security headers of every page, and the admin pages to `app`."""
    app.router.add_get("/", artist_page)
    app.router.add_get("/tracks/{id}", track_page)
    app.router.add_get("/terms", terms_page)
    app.router.add_get("/embed/{id}", embed_page)
    app.router.add_static(STATIC_PREFIX, static_dir())
    csp.setup(app)
    # Imported here, not at the top: the admin pages build on this module (TrackView).
    from node.web import admin

    admin.setup_routes(app)

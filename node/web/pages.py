"""The public HTML pages: the artist page (releases, then singles), one page per track, the
terms page, and the embeddable one-track player. A release's own page is node/web/releases.py.

Server-rendered, readable without JavaScript; web/static/stave.js then adds the player and
checks the artist's signatures in the browser. Content is linked by CID under /ipfs/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from node.fediverse.documents import ActorUrls, acct
from node.offers import track_anchor
from node.support import Support
from node.terms import DATA_MINING_USES, Terms
from node.web.csp import allow_framing
from node.web.csp import setup as setup_csp
from node.web.discography import ReleaseLink, discography
from node.web.requests import track_id_from_path
from node.web.signals import policy_url
from node.web.state import NODE, PUBLISHER
from node.web.templates import STATIC_PREFIX, render, static_dir
from node.web.views import USE_LABELS, USE_VALUES, TrackView


def _render_terms(
    request: web.Request, name: str, terms: Terms, context: Mapping[str, Any]
) -> web.Response:
    """A page that shows the node's default terms, and the "Not for AI training" mark by them."""
    no_ai_training = terms.ai_training == "notAllowed"
    return render(request, name, {"terms": terms, "no_ai_training": no_ai_training, **context})


async def artist_page(request: web.Request) -> web.Response:
    """`GET /`: the artist's name and terms, the releases with their covers, the singles
    (published tracks in no release), each list newest first, and how to support the artist."""
    node = request.config_dict[NODE]
    terms = request.config_dict[PUBLISHER].default_terms()
    releases, singles = await discography(node.catalog)
    account = acct(node.config["fediverse.handle"], ActorUrls.of(node.base_url))
    context = {
        "releases": releases,
        "tracks": singles,
        "follow_url": node.base_url,
        "fediverse_account": "@" + account,
        "support": Support.from_config(node.config),
    }
    return _render_terms(request, "artist.html", terms, context)


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
    node = request.config_dict[NODE]
    embed_url = f"{node.base_url}embed/{view.uuid}"
    release = await node.catalog.release_of_track(track.id)
    context = {
        "track": view,
        "embed_url": embed_url,
        "release": None if release is None else ReleaseLink.of(release.document),
    }
    return render(request, "track.html", context)


async def manifest_json(request: web.Request) -> web.Response:
    """`GET /tracks/{id}/manifest.json`: the track's current signed manifest (what its
    fediverse post links to); 404 when unknown, 410 once withdrawn."""
    track_id = track_id_from_path(request.match_info["id"])
    track = await request.config_dict[NODE].catalog.track(track_id)
    if track.withdrawn_at is not None:
        raise web.HTTPGone(text=f"track {track.id}: withdrawn at {track.withdrawn_at}\n")
    body = json.dumps(track.manifest, ensure_ascii=False, separators=(",", ":"))
    return web.Response(
        text=body,
        content_type="application/json",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


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
    allow_framing(response)
    return response


def _contact_href(contact: str) -> str | None:
    if contact.startswith(("https://", "http://", "mailto:")):
        return contact
    if "@" in contact and " " not in contact:
        return "mailto:" + contact
    return None


def _offers(terms: Terms, anchor: str = "") -> list[dict[str, Any]]:
    """Each use's offer as the terms page lays it out: what use, what price, for what, the
    credit words, whom to ask, the conditions; "Not offered" for a use without one."""
    views = []
    for use in DATA_MINING_USES:
        offer = terms.offer(use)
        view: dict[str, Any] = {"id": f"{anchor}offer-{use}", "label": USE_LABELS[use]}
        if offer is None:
            refused = terms.data_mining[use] != "allowed"
            view["words"] = "Not offered." + (" Not allowed without permission." if refused else "")
            view["rows"] = []
        else:
            price = offer.price
            amount = f"{price.amount} {price.currency}" if price else "Agreed on request"
            credit = offer.attribution or "Not required"
            view["words"] = " ".join(offer.in_words(use))
            view["rows"] = [
                ("Use", USE_LABELS[use], None),
                ("Price", amount, None),
                ("Per", PRICE_PER[price.per] if price else "—", None),
                ("Attribution", credit, None),
                ("Contact", offer.contact.removeprefix("mailto:"), offer.contact),
                ("Conditions", offer.conditions or "None beyond these terms", None),
            ]
        views.append(view)
    return views


PRICE_PER = {"track": "Each track", "catalog": "The whole catalog"}


async def terms_page(request: web.Request) -> web.Response:
    """`GET /terms`: the node's terms in words, each use's offer, its TDMRep signals, whom to
    ask, and the tracks with terms of their own (each at its `track_anchor`)."""
    node = request.config_dict[NODE]
    terms = request.config_dict[PUBLISHER].default_terms()
    contact: str = node.config["node.contact"].strip()
    own_terms = [
        {"track": view, "id": track_anchor(view.uuid), "offers": _offers(view.terms, anchor)}
        for view in (TrackView.of(t) for t in await node.catalog.tracks())
        if view.terms.data_mining != terms.data_mining
        or view.terms.license != terms.license
        or view.terms.offers != terms.offers
        for anchor in [track_anchor(view.uuid) + "-"]
    ]
    uses = [
        {"label": USE_LABELS[use], "value": USE_VALUES[terms.data_mining[use]]}
        for use in DATA_MINING_USES
    ]
    context = {
        "uses": uses,
        "offers": _offers(terms),
        "own_terms": own_terms,
        "tdm_policy": policy_url(terms, node.base_url),
        "contact": contact,
        "contact_href": _contact_href(contact),
    }
    return _render_terms(request, "terms.html", terms, context)


def setup(app: web.Application) -> None:
    """Add the public pages, the embeddable player, their assets (under /static/) and the
    browser security headers of every page to `app`."""
    app.router.add_get("/", artist_page)
    app.router.add_get("/tracks/{id}", track_page)
    app.router.add_get("/tracks/{id}/manifest.json", manifest_json)
    app.router.add_get("/terms", terms_page)
    app.router.add_get("/embed/{id}", embed_page)
    app.router.add_static(STATIC_PREFIX, static_dir())
    setup_csp(app)

"""Routes: one release's page (`/releases/{id}`), which plays the whole release in order and
checks its signatures in the browser, and its own RSS feed (`/releases/{id}/feed.rss`).

A malformed or unknown id is a 404, a withdrawn release a 410, like tracks.
"""

from __future__ import annotations

import hashlib
import uuid

from aiohttp import web

from node.errors import ReleaseNotFound
from node.web.discography import ReleaseView, current_tracks
from node.web.requests import etag_matches
from node.web.rss import CONTENT_TYPE as RSS_TYPE
from node.web.rss import render_release_rss
from node.web.state import NODE, PUBLISHER
from node.web.templates import render

RSS_CACHE_CONTROL = "public, max-age=60"


def release_id_from_path(raw: str) -> str:
    """The full `urn:uuid:…` id named by a URL segment (full id or bare UUID).

    ReleaseNotFound when it is neither, so a malformed id reads like an unknown one.
    """
    bare = raw.removeprefix("urn:uuid:")
    try:
        parsed = uuid.UUID(bare)
    except ValueError as e:
        raise ReleaseNotFound(f"release {raw}: no such release") from e
    if str(parsed) != bare.lower():
        raise ReleaseNotFound(f"release {raw}: no such release")
    return f"urn:uuid:{parsed}"


async def _current(request: web.Request) -> ReleaseView | web.Response:
    """The release the URL names, or the 410 page when it was withdrawn."""
    node = request.config_dict[NODE]
    record = await node.catalog.release(release_id_from_path(request.match_info["id"]))
    if record.withdrawn_at is not None:
        return render(
            request,
            "withdrawn.html",
            {
                "title": record.title,
                "withdrawn_at": record.withdrawn_at,
                "withdrawn_date": record.withdrawn_at[:10],
            },
            status=410,
        )
    return ReleaseView.of(record.document, await current_tracks(node.catalog))


async def release_page(request: web.Request) -> web.Response:
    """`GET /releases/{id}`: the release's cover, credits and terms, and its tracks in order."""
    release = await _current(request)
    if isinstance(release, web.Response):
        return release
    feed_terms = request.config_dict[PUBLISHER].default_terms()
    terms = release.terms(feed_terms)
    context = {
        "release": release,
        "release_terms": terms,
        "release_no_ai": terms.ai_training == "notAllowed",
        "release_no_ai_words": release.no_ai_words(feed_terms),
    }
    return render(request, "release.html", context)


async def release_rss(request: web.Request) -> web.Response:
    """`GET /releases/{id}/feed.rss`: the release as a podcast feed of `podcast:medium` music."""
    node = request.config_dict[NODE]
    record = await node.catalog.release(release_id_from_path(request.match_info["id"]))
    if record.withdrawn_at is not None:
        raise web.HTTPGone(text=f"release {record.id}: withdrawn at {record.withdrawn_at}\n")
    manifests = {t.id: t.manifest for t in (await current_tracks(node.catalog)).values()}
    name = node.config["node.name"] or "Stave"
    feed_terms = request.config_dict[PUBLISHER].default_terms()
    body = render_release_rss(record.document, manifests, name, feed_terms, node.base_url)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": RSS_CACHE_CONTROL}
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers={**headers, "Content-Type": RSS_TYPE})


def setup(app: web.Application) -> None:
    """Add the release page and the release RSS feed to `app`."""
    app.router.add_get("/releases/{id}", release_page)
    app.router.add_get("/releases/{id}/feed.rss", release_rss)

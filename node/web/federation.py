"""Federation on the web: the WebSub hub and callbacks, mirrors, the listener's timeline.

Routes:
- `POST /websub`: the hub of this node's feed (W3C WebSub §5.1); 202, then intent verification;
- `GET|POST /websub/callback/{id}`: this node's subscriptions — confirm the ones it asked for,
  take signed deliveries (a hint: the feed is verified as a pulled one, PROTOCOL §7);
- `GET /mirrors`, `GET /mirrors/{did}/feed.json`: what this node mirrors, and each mirrored
  artist's signed feed re-served byte for byte (a did the artist had before a key rotation
  redirects to its current one);
- `GET /api/timeline` (admin token) and `GET /timeline`: followed artists' tracks, newest first.

The background sync starts and stops with the app (a cleanup_ctx) and has its own catalog
connection, so its transactions never meet the publishing ones on the app's connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from node.catalog import open_catalog
from node.errors import UsageError
from node.federation.context import Federation
from node.federation.http import OutboundClient
from node.federation.hub import HUB_PATH
from node.federation.outcomes import follow_json
from node.federation.runtime import FederationRuntime
from node.federation.subscriber import CALLBACK_PATH
from node.federation.timeline import DEFAULT_LIMIT, MAX_LIMIT, timeline
from node.web.auth import AdminToken
from node.web.requests import etag_matches
from node.web.state import FEDERATION, METRICS, NODE
from node.web.templates import render

ADMIN = web.AppKey("federation_admin", AdminToken)
READ_CHUNK = 64 * 1024


def runtime_of(request: web.Request) -> FederationRuntime:
    return request.config_dict[FEDERATION]


# --- the hub ------------------------------------------------------------------------------------


async def hub(request: web.Request) -> web.Response:
    """`POST /websub`: a subscription request; 202 and verification later, or 400 and why."""
    runtime = runtime_of(request)
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    subscription = runtime.hub.check_request(fields)
    if runtime.verify_intent(subscription) is None:
        raise web.HTTPServiceUnavailable(
            text="The hub is verifying too many subscriptions; try again later.\n",
            headers={"Retry-After": "60"},
        )
    return web.Response(status=202, text="Accepted; the callback will be asked to confirm.\n")


# --- this node's subscriptions ----------------------------------------------------------------


async def confirm(request: web.Request) -> web.Response:
    """`GET /websub/callback/{id}`: echo the hub's challenge, for requests this node made."""
    answer = await runtime_of(request).subscriber.confirm(
        request.match_info["id"], dict(request.query)
    )
    if answer.challenge is None:
        status = 200 if answer.reason == "denial recorded" else 404
        return web.Response(status=status, text=answer.reason + "\n")
    return web.Response(text=answer.challenge, content_type="text/plain")


async def delivery(request: web.Request) -> web.Response:
    """`POST /websub/callback/{id}`: a delivered feed; used only if its signature holds."""
    runtime = runtime_of(request)
    callback_id = request.match_info["id"]
    if await runtime.federation.catalog.websub_subscription(callback_id) is None:
        raise web.HTTPGone(text="no such subscription\n")  # a hub drops it (WebSub practice)
    limit = runtime.federation.max_feed_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    artist = await runtime.subscriber.receive(
        callback_id, request.headers.get("X-Hub-Signature"), bytes(body)
    )
    if artist is not None:
        runtime.pushed(artist, bytes(body))
    # Acknowledged either way: a bad signature is ignored without telling (WebSub §8).
    return web.Response(status=202, text="Received.\n")


# --- mirrors ------------------------------------------------------------------------------------


async def mirrors(request: web.Request) -> web.Response:
    """`GET /mirrors`: the artists this node mirrors, and where their feed is re-served."""
    runtime = runtime_of(request)
    base = runtime.federation.node.base_url
    listing = [
        {
            "artist": f.artist,
            "name": f.name,
            "origin": f.url,
            "originFeed": f.feed_url,
            "feed": f"{base}mirrors/{f.artist}/feed.json",
            "sequence": f.sequence,
            "tracks": f.track_count,
            "updated": f.updated,
            "expires": f.expires,
        }
        for f in await runtime.federation.catalog.follows()
        if f.mirror and f.sequence is not None
    ]
    return web.json_response(listing, headers={"Cache-Control": "no-cache"})


async def mirrored_feed(request: web.Request) -> web.Response:
    """`GET /mirrors/{did}/feed.json`: the artist's signed feed, exactly as it was accepted."""
    catalog = runtime_of(request).federation.catalog
    artist = request.match_info["did"]
    follow = await catalog.follow(artist)
    rotated = await catalog.rotated_follow(artist) if follow is None else None
    if rotated is not None:  # the artist's key was rotated: its feed is under the new did now
        raise web.HTTPMovedPermanently(f"/mirrors/{rotated}/feed.json")
    stored = await catalog.followed_feed(artist) if follow is not None and follow.mirror else None
    if follow is None or stored is None:
        raise web.HTTPNotFound(text=f"{artist}: not mirrored here\n")
    etag = f'"{stored.cid}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "Link": f'<{follow.feed_url}>; rel="canonical"',
    }
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=stored.body, content_type="application/json", headers=headers)


# --- the timeline -------------------------------------------------------------------------------


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise UsageError(f"limit: must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


async def api_timeline(request: web.Request) -> web.Response:
    """`GET /api/timeline`: followed artists' tracks, newest first, and the follows (token)."""
    request.config_dict[ADMIN].authorize(request)
    runtime = runtime_of(request)
    node = runtime.federation.node
    entries = await timeline(
        runtime.federation.catalog, node.store, node.base_url, limit=_limit(request)
    )
    follows = await runtime.federation.catalog.follows()
    return web.json_response(
        {
            "tracks": [entry.to_json() for entry in entries],
            "following": [follow_json(f) for f in follows],
        }
    )


async def timeline_page(request: web.Request) -> web.Response:
    """`GET /timeline`: the same as a page, each track with a player."""
    runtime = runtime_of(request)
    node = runtime.federation.node
    entries = await timeline(runtime.federation.catalog, node.store, "/", limit=_limit(request))
    follows = await runtime.federation.catalog.follows()
    context: dict[str, Any] = {
        "entries": [entry.to_json() for entry in entries],
        "following": [follow_json(f) for f in follows],
    }
    response = render(request, "timeline.html", context)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- lifecycle ----------------------------------------------------------------------------------


async def federation_context(app: web.Application) -> AsyncIterator[None]:
    """Open federation's catalog connection and client, run the background sync, then stop."""
    node = app[NODE]
    async with (
        open_catalog(node.data.catalog_path) as catalog,
        OutboundClient(allow_private=node.config["federation.allow_private_addresses"]) as client,
    ):
        runtime = FederationRuntime(Federation(node, catalog, client))
        app[FEDERATION] = runtime

        async def follows_count() -> float:
            return float(len(await catalog.follows()))

        app[METRICS].set_gauge("stave_follows", "Artists this node follows.", follows_count)
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()


def setup(app: web.Application) -> None:
    """Add federation's routes and its background sync to `app` (after the node's context)."""
    admin = AdminToken()  # the admin API's own token check, for /api/timeline
    app[ADMIN] = admin
    app.cleanup_ctx.append(federation_context)
    app.on_startup.append(admin.on_startup)
    router = app.router
    router.add_post("/" + HUB_PATH, hub)
    router.add_get("/" + CALLBACK_PATH + "{id}", confirm, allow_head=False)
    router.add_post("/" + CALLBACK_PATH + "{id}", delivery)
    router.add_get("/mirrors", mirrors)
    router.add_get("/mirrors/{did}/feed.json", mirrored_feed)
    router.add_get("/api/timeline", api_timeline, allow_head=False)
    router.add_get("/timeline", timeline_page)

"""The fediverse on the web: how ActivityPub servers find the artist, read its posts and
follow it.

Routes (URLs of the actor relative to `node.url`, node/fediverse/documents.py):
- `GET /.well-known/webfinger?resource=` (RFC 7033): `acct:HANDLE@HOST` or the actor's URL;
- `GET /.well-known/nodeinfo`, `GET /nodeinfo/2.1`: NodeInfo 2.1;
- `GET /actor`: the `Person` for ActivityPub clients, the artist page for browsers;
- `GET /actor/followers`, `GET /actor/outbox`: `OrderedCollection`s, paged;
- `GET /posts/{uuid}`: a track's `Note` as stored (its `Tombstone` with 410 once withdrawn);
- `POST /actor/inbox`, `POST /inbox`: activities for the artist (node/fediverse/inbox.py).

The inbox service and the delivery worker start and stop with the app (a cleanup_ctx after
federation's, whose catalog connection and client they share).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from html import escape
from typing import Any

from aiohttp import web

from node import __version__
from node.errors import UsageError
from node.fediverse.documents import (
    AP_MEDIA_TYPE,
    AS_CONTEXT,
    JRD_MEDIA_TYPE,
    NODEINFO_MEDIA_TYPE,
    ActorUrls,
    nodeinfo,
    nodeinfo_links,
    parse_resource,
    person,
    subject_of,
    wants_activitypub,
    webfinger,
)
from node.fediverse.notes import activity, release_page
from node.fediverse.runtime import FediverseRuntime
from node.web.requests import track_id_from_path
from node.web.state import FEDERATION, FEDIVERSE, METRICS, NODE, PUBLISHER

log = logging.getLogger(__name__)

MAX_INBOX_BYTES = 256 * 1024
READ_CHUNK = 64 * 1024
FOLLOWERS_PAGE = 50
OUTBOX_PAGE = 20
FIRST_PAGE = "first"


def _urls(request: web.Request) -> ActorUrls:
    return ActorUrls.of(request.config_dict[NODE].base_url)


def _json(
    document: Any, content_type: str, *, status: int = 200, vary: bool = False
) -> web.Response:
    headers = {"Content-Type": content_type, "Access-Control-Allow-Origin": "*"}
    if vary:
        headers["Vary"] = "Accept"
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(status=status, body=body, headers=headers)


def _ap(document: Any, *, status: int = 200) -> web.Response:
    return _json(document, AP_MEDIA_TYPE, status=status, vary=True)


def _wants_ap(request: web.Request) -> bool:
    return wants_activitypub(request.headers.get("Accept", ""))


def _to_page(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers={"Vary": "Accept", "Cache-Control": "no-cache"})


# --- discovery ----------------------------------------------------------------------------------


async def webfinger_handler(request: web.Request) -> web.Response:
    """`GET /.well-known/webfinger`: the actor's JRD; 400 malformed, 404 someone else."""
    node = request.config_dict[NODE]
    urls = _urls(request)
    handle: str = node.config["fediverse.handle"]
    try:
        parse_resource(request.query.get("resource"), urls, handle)
    except LookupError as e:
        raise web.HTTPNotFound(text=f"{e.args[0]}\n") from e
    return _json(webfinger(subject_of(handle, urls), urls, handle), JRD_MEDIA_TYPE)


async def nodeinfo_links_handler(request: web.Request) -> web.Response:
    """`GET /.well-known/nodeinfo`: where the NodeInfo document is."""
    return _json(nodeinfo_links(_urls(request)), "application/json")


async def nodeinfo_handler(request: web.Request) -> web.Response:
    """`GET /nodeinfo/2.1`: the software, its protocol and the counts."""
    node = request.config_dict[NODE]
    document = nodeinfo(
        version=__version__,
        name=node.config["node.name"],
        local_posts=await node.catalog.fediverse_post_count(),
    )
    return _json(document, NODEINFO_MEDIA_TYPE)


# --- the actor and its collections --------------------------------------------------------------


def _summary(request: web.Request) -> str:
    node = request.config_dict[NODE]
    terms = request.config_dict[PUBLISHER].default_terms()
    name = escape(node.config["node.name"] or node.config["fediverse.handle"])
    words = escape(terms.license_in_words()) + "."
    if terms.ai_training == "notAllowed":
        words += " Not for AI training."
    return f"<p>Music by {name}, signed and published with Stave. {words}</p>"


async def actor_handler(request: web.Request) -> web.Response:
    """`GET /actor`: the `Person` (ActivityPub clients) or a 303 to the artist page."""
    urls = _urls(request)
    if not _wants_ap(request):
        raise _to_page(urls.artist_page)
    node = request.config_dict[NODE]
    document = person(
        urls,
        handle=node.config["fediverse.handle"],
        name=node.config["node.name"],
        summary=_summary(request),
        did=node.identity.did,
        public_key_pem=node.actor_key.public_key_pem,
    )
    return _ap(document)


def _cursor(text: str) -> str | None:
    """The follower a followers page starts after (None: from the first)."""
    if text == FIRST_PAGE:
        return None
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"page {text[:40]}: not a page of this collection") from e


def _encode_cursor(actor: str) -> str:
    return base64.urlsafe_b64encode(actor.encode("utf-8")).decode("ascii").rstrip("=")


async def followers_handler(request: web.Request) -> web.Response:
    """`GET /actor/followers`: how many follow, and (unless kept private) who, paged."""
    node = request.config_dict[NODE]
    urls = _urls(request)
    total = await node.catalog.fediverse_follower_count()
    page = request.query.get("page")
    if page is None:
        collection = {
            "@context": AS_CONTEXT,
            "id": urls.followers,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": f"{urls.followers}?page={FIRST_PAGE}",
        }
        return _ap(collection)
    after = _cursor(page)
    rows = []
    if not node.config["fediverse.followers_private"]:
        rows = await node.catalog.fediverse_followers(after=after, limit=FOLLOWERS_PAGE + 1)
    document: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": f"{urls.followers}?page={page}",
        "type": "OrderedCollectionPage",
        "partOf": urls.followers,
        "totalItems": total,
        "orderedItems": [f.actor for f in rows[:FOLLOWERS_PAGE]],
    }
    if len(rows) > FOLLOWERS_PAGE:
        document["next"] = f"{urls.followers}?page={_encode_cursor(rows[FOLLOWERS_PAGE - 1].actor)}"
    return _ap(document)


async def outbox_handler(request: web.Request) -> web.Response:
    """`GET /actor/outbox`: the `Create` of every current post, newest first, paged."""
    node = request.config_dict[NODE]
    urls = _urls(request)
    total = await node.catalog.fediverse_post_count()
    page = request.query.get("page")
    if page is None:
        collection = {
            "@context": AS_CONTEXT,
            "id": urls.outbox,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": f"{urls.outbox}?page=1",
        }
        return _ap(collection)
    if not page.isdigit() or not 1 <= int(page) <= 1_000_000:
        raise UsageError(f"page {page[:40]}: must be a whole number from 1")
    number = int(page)
    posts = await node.catalog.fediverse_posts(
        offset=(number - 1) * OUTBOX_PAGE, limit=OUTBOX_PAGE + 1
    )
    items = [
        activity("Create", urls, post.object, post.revision, str(post.object["published"]))
        for post in posts[:OUTBOX_PAGE]
    ]
    document: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": f"{urls.outbox}?page={number}",
        "type": "OrderedCollectionPage",
        "partOf": urls.outbox,
        "totalItems": total,
        "orderedItems": items,
    }
    if len(posts) > OUTBOX_PAGE:
        document["next"] = f"{urls.outbox}?page={number + 1}"
    if number > 1:
        document["prev"] = f"{urls.outbox}?page={number - 1}"
    return _ap(document)


async def post_handler(request: web.Request) -> web.Response:
    """`GET /posts/{uuid}`: the Note as stored, 410 and its Tombstone once withdrawn; a
    browser goes to the track's (or the release's) page."""
    node = request.config_dict[NODE]
    urls = _urls(request)
    track_id = track_id_from_path(request.match_info["uuid"])
    post = await node.catalog.fediverse_post_by_object(urls.post(track_id))
    if post is None:
        raise web.HTTPNotFound(text=f"post {request.match_info['uuid']}: no such post\n")
    if not _wants_ap(request):
        release = post.kind == "release"
        raise _to_page(release_page(urls, track_id) if release else urls.track_page(track_id))
    return _ap(post.object, status=410 if post.deleted else 200)


# --- the inbox ----------------------------------------------------------------------------------


async def _body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 (and why) past `limit` bytes."""
    too_large = f"activity: larger than the inbox's limit of {limit} bytes\n"
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit, actual_size=request.content_length, text=too_large
        )
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(
                max_size=limit, actual_size=len(body), text=too_large
            )
    return bytes(body)


async def inbox_handler(request: web.Request) -> web.Response:
    """`POST /actor/inbox` and `POST /inbox`: an activity, verified and handled by the inbox
    service; its status and one-line reason are the answer."""
    body = await _body(request, MAX_INBOX_BYTES)
    node = request.config_dict[NODE]
    # The URL as the sender signed it: the node's public address, whatever the proxy's Host.
    url = node.base_url + request.rel_url.path_qs.lstrip("/")
    result = await request.config_dict[FEDIVERSE].inbox.receive(
        request.method, url, request.headers, body, request.remote or ""
    )
    return web.Response(status=result.status, text=result.message.strip() + "\n")


# --- lifecycle ----------------------------------------------------------------------------------


async def fediverse_context(app: web.Application) -> AsyncIterator[None]:
    """Start the inbox service and the delivery worker over federation's connection; give
    tracks without a post theirs; stop the worker when the app stops."""
    runtime = FediverseRuntime(app[FEDERATION].federation)
    app[FEDIVERSE] = runtime
    catalog = runtime.federation.catalog

    async def followers_count() -> float:
        return float(await catalog.fediverse_follower_count())

    app[METRICS].set_gauge(
        "stave_fediverse_followers", "Fediverse actors following the artist.", followers_count
    )
    queued = await runtime.catch_up()
    if queued:
        log.info("fediverse: %d activities queued for tracks without a post", queued)
    runtime.start()
    try:
        yield
    finally:
        await runtime.close()


def setup(app: web.Application) -> None:
    """Add the fediverse routes and lifecycle to `app` (after federation's)."""
    app.cleanup_ctx.append(fediverse_context)
    router = app.router
    router.add_get("/.well-known/webfinger", webfinger_handler)
    router.add_get("/.well-known/nodeinfo", nodeinfo_links_handler)
    router.add_get("/nodeinfo/2.1", nodeinfo_handler)
    router.add_get("/actor", actor_handler)
    router.add_get("/actor/followers", followers_handler)
    router.add_get("/actor/outbox", outbox_handler)
    router.add_get("/posts/{uuid}", post_handler)
    router.add_post("/actor/inbox", inbox_handler)
    router.add_post("/inbox", inbox_handler)

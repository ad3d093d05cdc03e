"""The admin API under /api/: JSON, bearer token, the same use cases as the `stave` command.

Every route but `/api/openapi.json` needs `Authorization: Bearer <admin token>`; the token is
read at startup, read again whenever its file changes (so `stave admin-token --rotate` takes
effect at once) and compared in constant time. Wrong tokens are counted per client address and
answered 429 beyond a limit (node/web/limits.py). Errors are raised (StaveError subclasses or
aiohttp HTTP exceptions) and turned into `{"error": {"code", "message"}}` by the app's error
middleware. Uploads are received by node/web/tracks.py, shared with the admin pages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from node import __version__
from node.catalog import TrackRecord
from node.datadir import Node
from node.errors import UsageError
from node.publish import TrackChoices
from node.web.openapi import openapi_document
from node.web.requests import track_id_from_path
from node.web.state import NODE, PUBLISHER
from node.web.tracks import TRACK_FIELDS, TrackUploads, track_choices, track_json


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"request body: not valid JSON ({e})") from e
    if not isinstance(body, dict):
        raise UsageError("request body: must be a JSON object")
    return body


class AdminAPI(TrackUploads):
    """The admin routes of one app, each behind the bearer token."""

    async def status(self, request: web.Request) -> web.Response:
        """`GET /api/status`: the node's identity, catalog, feed and store at a glance."""
        self.authorize(request)
        node = request.config_dict[NODE]
        tracks = await node.catalog.tracks(include_withdrawn=True)
        feed = await node.catalog.latest_feed()
        files, size = await asyncio.to_thread(_store_usage, node)
        return web.json_response(
            {
                "did": node.identity.did,
                "name": node.config["node.name"],
                "url": node.base_url,
                "version": __version__,
                "tracks": sum(1 for t in tracks if t.withdrawn_at is None),
                "withdrawn": sum(1 for t in tracks if t.withdrawn_at is not None),
                "feed": None
                if feed is None
                else {
                    "sequence": feed.sequence,
                    "cid": feed.cid,
                    "updated": feed.updated,
                    "expires": feed.expires,
                },
                "store": {"files": files, "bytes": size},
            }
        )

    async def list_tracks(self, request: web.Request) -> web.Response:
        """`GET /api/tracks`: every track, withdrawn ones included, newest first."""
        self.authorize(request)
        node = request.config_dict[NODE]
        tracks = await node.catalog.tracks(include_withdrawn=True)
        return web.json_response({"tracks": [track_json(node, t) for t in tracks]})

    async def get_track(self, request: web.Request) -> web.Response:
        """`GET /api/tracks/{id}`: one track by its full id or bare UUID."""
        self.authorize(request)
        node = request.config_dict[NODE]
        track = await node.catalog.track(track_id_from_path(request.match_info["id"]))
        return web.json_response(track_json(node, track))

    async def edit_track(self, request: web.Request) -> web.Response:
        """`PATCH /api/tracks/{id}`: publish the track's next revision with the given changes."""
        self.authorize(request)
        node = request.config_dict[NODE]
        track = await node.catalog.track(track_id_from_path(request.match_info["id"]))
        body = await _json_object(request)
        unknown = sorted(set(body) - set(TRACK_FIELDS))
        if unknown:
            raise UsageError(
                f"{unknown[0]}: unknown field; expected one of {', '.join(TRACK_FIELDS)}"
            )
        choices = track_choices(body, empty_is_absent=False)
        if choices == TrackChoices():
            raise UsageError(f"nothing to change; give one of {', '.join(TRACK_FIELDS)}")
        async with self._writing:
            _refuse_withdrawn(track)
            await request.config_dict[PUBLISHER].edit(track.id, choices)
        return web.json_response(track_json(node, await node.catalog.track(track.id)))

    async def withdraw_track(self, request: web.Request) -> web.Response:
        """`DELETE /api/tracks/{id}`: withdraw the track; 409 if it already is."""
        self.authorize(request)
        node = request.config_dict[NODE]
        track = await node.catalog.track(track_id_from_path(request.match_info["id"]))
        async with self._writing:
            _refuse_withdrawn(await node.catalog.track(track.id))
            record = await request.config_dict[PUBLISHER].withdraw(track.id)
        return web.json_response(track_json(node, record))


def _refuse_withdrawn(track: TrackRecord) -> None:
    if track.withdrawn_at is not None:
        raise web.HTTPConflict(text=f"track {track.id}: was withdrawn at {track.withdrawn_at}")


def _store_usage(node: Node) -> tuple[int, int]:
    files = size = 0
    for cid in node.store.roots():
        files += 1
        size += node.store.size(cid)
    return files, size


async def openapi_json(request: web.Request) -> web.Response:
    """`GET /api/openapi.json`: the OpenAPI 3.1 document of this API (public)."""
    return web.json_response(openapi_document())


def setup(app: web.Application) -> None:
    """Add the admin API's routes to `app`, and read the admin token when it starts."""
    api = AdminAPI()
    app.on_startup.append(api.on_startup)
    router = app.router
    router.add_get("/api/openapi.json", openapi_json, allow_head=False)
    router.add_get("/api/status", api.status, allow_head=False)
    router.add_get("/api/tracks", api.list_tracks, allow_head=False)
    router.add_post("/api/tracks", api.add_tracks)
    router.add_get("/api/tracks/{id}", api.get_track, allow_head=False)
    router.add_patch("/api/tracks/{id}", api.edit_track)
    router.add_delete("/api/tracks/{id}", api.withdraw_track)

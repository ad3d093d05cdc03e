"""The listener's side on the web: `/api/timeline` (admin token), the `/timeline` page and
`/mirrors`, on two real nodes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.datadir import DataDir
from tests.support.federation import RunningNode
from tests.support.shared import FIXTURES


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    artist = await RunningNode.create(tmp_path / "artist", "Ada Example")
    listener = await RunningNode.create(tmp_path / "listener", "Lee Listener")
    try:
        yield artist, listener
    finally:
        await listener.stop()
        await artist.stop()


async def get_json(session: aiohttp.ClientSession, url: str, status: int, **headers: str) -> Any:
    async with session.get(url, headers=headers) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def test_timeline_plays_from_the_origin_then_from_the_mirror(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    artist, listener = pair
    first = await artist.publisher.add(FIXTURES / "tone.mp3")
    second = await artist.publisher.add(FIXTURES / "tone.ogg")
    await listener.runtime.follows.follow(artist.url)
    token = DataDir(listener.root).admin_token()
    auth = {"Authorization": f"Bearer {token}"}
    api = listener.url + "api/timeline"

    async with aiohttp.ClientSession() as session:
        body = await get_json(session, api, 401)
        assert body["error"]["code"] == "unauthorized"
        body = await get_json(session, api, 401, Authorization="Bearer wrong")
        body = await get_json(session, api + "?limit=0", 400, **auth)
        assert "limit" in body["error"]["message"]

        body = await get_json(session, api, 200, **auth)
        assert [t["id"] for t in body["tracks"]] == [second["id"], first["id"]]  # newest first
        entry = body["tracks"][1]
        assert entry["artist"] == artist.did and entry["artistName"] == "Ada Example"
        assert entry["audio"] == f"{artist.url}ipfs/{first['audio']['cid']}"
        assert entry["mirrored"] is False and entry["stale"] is False
        assert entry["manifest"] == first
        [following] = body["following"]
        assert (following["did"], following["tracks"], following["mirror"]) == (
            artist.did,
            2,
            False,
        )
        assert await get_json(session, listener.url + "mirrors", 200) == []

        assert await listener.runtime.follows.set_mirror(artist.did, True) == []
        body = await get_json(session, api + "?limit=1", 200, **auth)
        [entry] = body["tracks"]
        assert entry["audio"] == f"{listener.url}ipfs/{second['audio']['cid']}"
        assert entry["mirrored"] is True
        async with session.get(entry["audio"]) as response:
            assert response.status == 200
            assert len(await response.read()) == second["audio"]["size"]
            # served as what the artist's manifest says it is, as the artist's node does
            assert response.headers["Content-Type"] == second["audio"]["mediaType"] == "audio/ogg"
        [mirrored] = await get_json(session, listener.url + "mirrors", 200)
        assert mirrored["artist"] == artist.did
        assert mirrored["feed"] == f"{listener.url}mirrors/{artist.did}/feed.json"

        async with session.get(listener.url + "timeline") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            page = await response.text()
        assert f'src="/ipfs/{second["audio"]["cid"]}"' in page  # relative: played from here
        assert second["title"] in page and "Ada Example" in page
        assert '<meta name="robots" content="noindex">' in page


async def test_mirrored_feed_is_not_served_for_artists_not_mirrored(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    artist, listener = pair
    await listener.runtime.follows.follow(artist.url)
    async with aiohttp.ClientSession() as session:
        for did in (artist.did, "did:key:z6MkNothingHere"):
            async with session.get(f"{listener.url}mirrors/{did}/feed.json") as response:
                assert response.status == 404
        await listener.runtime.follows.set_mirror(artist.did, True)
        url = f"{listener.url}mirrors/{artist.did}/feed.json"
        async with session.get(url) as response:
            assert response.status == 200
            etag = response.headers["ETag"]
            body = await response.read()
        async with session.get(url, headers={"If-None-Match": etag}) as response:
            assert response.status == 304
        async with session.get(artist.url + "feed.json") as response:
            assert await response.read() == body

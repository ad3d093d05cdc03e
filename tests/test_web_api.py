"""The admin API: bearer token, streamed uploads under a cap, edit, withdraw, status, OpenAPI."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from node.datadir import DataDir
from node.web.openapi import documented_operations
from node.web.state import NODE
from node.web.tracks import upload_name
from tests.support.node import WEB_ARTIST, WEB_URL, write_node_config
from tests.support.shared import BAD_FIXTURES, FIXTURES
from tests.test_web_pages import make_app

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

MP3 = FIXTURES / "tone.mp3"
FLAC = FIXTURES / "tone.flac"
WAV = FIXTURES / "tone.wav"
OPENAPI = "/api/openapi.json"


@pytest.fixture
async def client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    return await aiohttp_client(make_app(web_data_dir))


@pytest.fixture
def auth(web_data_dir: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {DataDir(web_data_dir).admin_token()}"}


def upload(*files: Path, names: list[str] | None = None, **fields: str) -> FormData:
    # Names unquoted, as browsers send them (aiohttp's default percent-encodes them).
    form = FormData(quote_fields=False, default_to_multipart=True)
    for index, path in enumerate(files):
        name = names[index] if names else path.name
        form.add_field(
            "file", path.read_bytes(), filename=name, content_type="application/octet-stream"
        )
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def json_of(response: Any, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


def assert_error(body: Any, code: str, *words: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message


def snapshot(root: Path) -> tuple[list[str], list[str]]:
    """The names of everything under the store (files and tmp/), the catalog aside."""
    store = root / "store"
    names = sorted(
        str(p.relative_to(store)) for p in store.rglob("*") if not p.name.startswith("index.")
    )
    return names, sorted(p.name for p in (store / "tmp").iterdir())


async def catalog_state(client: Client) -> tuple[list[Any], Any]:
    catalog = client.server.app[NODE].catalog
    tracks = [
        (t.id, t.revision, t.withdrawn_at) for t in await catalog.tracks(include_withdrawn=True)
    ]
    return tracks, await catalog.latest_feed()


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }


# --- the token and the document ----------------------------------------------------------------


async def test_openapi_document_matches_the_router(client: Client) -> None:
    routes = api_routes(client.server.app)
    assert ("POST", "/api/tracks") in routes
    assert routes == documented_operations()

    response = await client.get(OPENAPI)  # public: no token
    document = await json_of(response, 200)
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["adminToken"]["description"],
    }
    assert document["security"] == [{"adminToken": []}]
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert described == routes
    # Every $ref points at a schema the document defines.
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', await response.text()))
    assert refs and refs <= set(document["components"]["schemas"])


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "{token}"],
    ids=["none", "wrong", "empty", "basic", "no-scheme"],
)
async def test_every_api_route_needs_the_token(
    client: Client, web_data_dir: Path, authorization: str | None
) -> None:
    token = DataDir(web_data_dir).admin_token()
    headers = {} if authorization is None else {"Authorization": authorization.format(token=token)}
    routes = api_routes(client.server.app) - {("GET", OPENAPI)}
    assert {("POST", "/api/tracks"), ("DELETE", "/api/tracks/{id}")} <= routes
    before = snapshot(web_data_dir), await catalog_state(client)
    for method, path in sorted(routes):
        url = path.replace("{id}", str(uuid.uuid4()))
        response = await client.request(method, url, headers=headers, data=b"{}")
        body = await json_of(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        assert_error(body, "unauthorized")
    assert (snapshot(web_data_dir), await catalog_state(client)) == before


# --- uploads -----------------------------------------------------------------------------------


async def test_upload_one_file_publishes_it(
    client: Client, auth: dict[str, str], web_data_dir: Path
) -> None:
    feed_before = (await catalog_state(client))[1]
    form = upload(
        MP3, license="CC-BY-NC-4.0", copyright="2025 Ada Example", aiTraining="notAllowed"
    )

    response = await client.post("/api/tracks", data=form, headers=auth)

    body = await json_of(response, 201)
    [track] = body["tracks"]
    manifest = track["manifest"]
    assert track["title"] == manifest["title"] == "Tone in A"
    assert track["withdrawn"] is False and track["revision"] == 1
    assert manifest["terms"]["license"] == "CC-BY-NC-4.0"
    assert manifest["terms"]["copyright"] == "2025 Ada Example"
    assert manifest["terms"]["dataMining"]["aiTraining"] == "notAllowed"
    assert manifest["audio"]["mediaType"] == "audio/mpeg"
    assert response.headers["Location"] == f"/api/tracks/{track['id'].removeprefix('urn:uuid:')}"
    assert track["page"] == f"{WEB_URL}tracks/{track['id'].removeprefix('urn:uuid:')}"
    node = client.server.app[NODE]
    assert node.store.has(manifest["audio"]["cid"])
    assert (await catalog_state(client))[1].sequence == feed_before.sequence + 1
    assert snapshot(web_data_dir)[1] == []  # no upload left in tmp/

    served = await client.get(f"/ipfs/{manifest['audio']['cid']}")
    assert served.status == 200
    assert len(await served.read()) == manifest["audio"]["size"]
    listed = await json_of(await client.get("/api/tracks", headers=auth), 200)
    assert [t["id"] for t in listed["tracks"]] == [track["id"]]


async def test_upload_two_files_at_once_in_one_feed(
    client: Client, auth: dict[str, str], web_data_dir: Path
) -> None:
    feed_before = (await catalog_state(client))[1]

    response = await client.post("/api/tracks", data=upload(FLAC, WAV), headers=auth)

    body = await json_of(response, 201)
    assert [t["manifest"]["audio"]["mediaType"] for t in body["tracks"]] == [
        "audio/flac",
        "audio/wav",
    ]
    tracks, feed = await catalog_state(client)
    assert len(tracks) == 2
    assert feed.sequence == feed_before.sequence + 1
    assert snapshot(web_data_dir)[1] == []


async def test_concurrent_uploads_each_get_their_own_feed(
    client: Client, auth: dict[str, str]
) -> None:
    feed_before = (await catalog_state(client))[1]

    responses = await asyncio.gather(
        *(client.post("/api/tracks", data=upload(path), headers=auth) for path in (MP3, FLAC, WAV))
    )

    for response in responses:
        await json_of(response, 201)
    tracks, feed = await catalog_state(client)
    assert len(tracks) == 3
    assert feed.sequence == feed_before.sequence + 3


async def test_upload_without_a_title_tag_takes_the_file_name(
    client: Client, auth: dict[str, str]
) -> None:
    form = upload(WAV, names=["../Night Drive.WAV"])
    body = await json_of(await client.post("/api/tracks", data=form, headers=auth), 201)
    assert body["tracks"][0]["title"] == "Night Drive"


async def test_upload_over_the_size_cap_is_refused_and_leaves_nothing(
    aiohttp_client: ClientFactory, web_data_dir: Path, auth: dict[str, str]
) -> None:
    write_node_config(web_data_dir, server__max_upload_bytes=100_000)
    client = await aiohttp_client(make_app(web_data_dir))
    before = snapshot(web_data_dir), await catalog_state(client)

    # A small file first, then one that crosses the cap while it streams in.
    response = await client.post("/api/tracks", data=upload(MP3, WAV), headers=auth)

    body = await json_of(response, 413)
    assert_error(body, "request_entity_too_large", "100000 bytes", "server.max_upload_bytes")
    assert (snapshot(web_data_dir), await catalog_state(client)) == before
    # Within the cap it works.
    await json_of(await client.post("/api/tracks", data=upload(MP3), headers=auth), 201)


async def streamed_form(
    boundary: str, filename: str, size: int, chunk: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """A multipart body with one file part of `size` bytes, sent without a Content-Length."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()
    for start in range(0, size, chunk):
        yield bytes(min(chunk, size - start))
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_large_upload_is_cut_off_at_the_cap(
    aiohttp_client: ClientFactory, web_data_dir: Path, auth: dict[str, str], chunked: bool
) -> None:
    write_node_config(web_data_dir, server__max_upload_bytes=100_000)
    client = await aiohttp_client(make_app(web_data_dir))
    before = snapshot(web_data_dir), await catalog_state(client)
    boundary = uuid.uuid4().hex
    size = 3 * 1024 * 1024
    body: Any = streamed_form(boundary, "big.wav", size)
    if not chunked:
        body = io.BytesIO(b"".join([part async for part in body]))
    headers = dict(auth, **{"Content-Type": f"multipart/form-data; boundary={boundary}"})

    response = await client.post("/api/tracks", data=body, headers=headers)

    assert ("Content-Length" in response.request_info.headers) is not chunked
    assert_error(await json_of(response, 413), "request_entity_too_large", "100000 bytes")
    assert (snapshot(web_data_dir), await catalog_state(client)) == before


@pytest.mark.parametrize("bad", BAD_FIXTURES, ids=[p.name for p in BAD_FIXTURES])
async def test_a_bad_file_changes_nothing(
    client: Client, auth: dict[str, str], web_data_dir: Path, bad: Path
) -> None:
    before = snapshot(web_data_dir), await catalog_state(client)

    # Next to a good file: all or nothing.
    response = await client.post("/api/tracks", data=upload(MP3, bad), headers=auth)

    body = await json_of(response, 415)
    assert_error(body, "unsupported_media", bad.name)
    assert (snapshot(web_data_dir), await catalog_state(client)) == before


@pytest.mark.parametrize(
    ("fields", "files", "words"),
    [
        ({"license": "not a licence!"}, [MP3], ["license:", "SPDX"]),
        ({"copyright": "Ada"}, [MP3], ["copyright:", "year"]),
        ({"aiTraining": "sure"}, [MP3], ["aiTraining:", "notAllowed"]),
        ({"title": "One title"}, [MP3, FLAC], ["title:", "one file only"]),
        ({"genre": "ambient"}, [MP3], ["genre:", "unknown form field"]),
        ({"title": "x"}, [], ["file:", "no file part"]),
    ],
    ids=["license", "copyright", "ai-training", "title-with-two-files", "unknown-field", "no-file"],
)
async def test_upload_with_a_bad_field_is_refused(
    client: Client,
    auth: dict[str, str],
    web_data_dir: Path,
    fields: dict[str, str],
    files: list[Path],
    words: list[str],
) -> None:
    before = snapshot(web_data_dir), await catalog_state(client)
    form = upload(*files, **fields)

    body = await json_of(await client.post("/api/tracks", data=form, headers=auth), 400)

    assert_error(body, "bad_request", *words)
    assert (snapshot(web_data_dir), await catalog_state(client)) == before


async def test_upload_must_be_multipart(client: Client, auth: dict[str, str]) -> None:
    response = await client.post("/api/tracks", json={"file": "x"}, headers=auth)
    assert_error(await json_of(response, 415), "unsupported_media_type", "multipart/form-data")


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("Song.MP3", "Song.mp3"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Music\\Best Of\\07 Track.flac", "07 Track.flac"),
        (".hidden.ogg", "hidden.ogg"),
        ("", "upload"),
        (None, "upload"),
        ("..", "upload"),
        ("noext", "noext"),
        ("weird.ex\u200bt", "weird.ext"),
        ("a\x00b\n.MP3", "ab.mp3"),
        ("x" * 300 + ".wav", "x" * 150 + ".wav"),
    ],
)
def test_upload_names_are_safe(filename: str | None, name: str) -> None:
    assert upload_name(filename) == name


# --- one track ---------------------------------------------------------------------------------


async def published(client: Client, auth: dict[str, str], path: Path = MP3) -> dict[str, Any]:
    body = await json_of(await client.post("/api/tracks", data=upload(path), headers=auth), 201)
    track: dict[str, Any] = body["tracks"][0]
    return track


async def test_get_one_track_by_full_id_or_uuid(client: Client, auth: dict[str, str]) -> None:
    track = await published(client, auth)
    bare = track["id"].removeprefix("urn:uuid:")
    for key in (bare, track["id"].replace(":", "%3A")):
        assert await json_of(await client.get(f"/api/tracks/{key}", headers=auth), 200) == track
    missing = await client.get(f"/api/tracks/{uuid.uuid4()}", headers=auth)
    assert_error(await json_of(missing, 404), "track_not_found")


async def test_patch_publishes_a_new_revision_and_feed(
    client: Client, auth: dict[str, str]
) -> None:
    track = await published(client, auth)
    url = f"/api/tracks/{track['id'].removeprefix('urn:uuid:')}"
    node = client.server.app[NODE]
    feed_before = await node.catalog.latest_feed()

    renamed = await json_of(
        await client.patch(url, json={"title": "Tone, again"}, headers=auth), 200
    )

    assert renamed["revision"] == 2 and renamed["title"] == "Tone, again"
    assert renamed["manifest"]["audio"] == track["manifest"]["audio"]  # terms unchanged
    assert renamed["manifest"]["proof"] != track["manifest"]["proof"]
    feed = await node.catalog.latest_feed()
    assert feed is not None and feed_before is not None
    assert feed.sequence == feed_before.sequence + 1 and feed.previous == feed_before.cid

    relicensed = await json_of(
        await client.patch(
            url, json={"license": "CC-BY-4.0", "aiTraining": "allowed"}, headers=auth
        ),
        200,
    )
    assert relicensed["revision"] == 3
    assert relicensed["manifest"]["terms"]["license"] == "CC-BY-4.0"
    assert relicensed["manifest"]["terms"]["dataMining"]["aiTraining"] == "allowed"
    old_cid, new_cid = track["manifest"]["audio"]["cid"], relicensed["manifest"]["audio"]["cid"]
    assert new_cid != old_cid  # the terms are in the file's tags
    assert node.store.has(new_cid) and not node.store.has(old_cid)
    assert await node.catalog.manifest(track["id"], 1) == track["manifest"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, ["nothing to change"]),
        ({"title": ""}, ["title:", "empty"]),
        ({"title": 7}, ["title:", "string"]),
        ({"album": "x"}, ["album:", "unknown field"]),
        ({"license": "not a licence!"}, ["license:"]),
        (["title"], ["JSON object"]),
        ("{not json", ["not valid JSON"]),
    ],
    ids=["empty", "empty-title", "number", "unknown", "license", "array", "not-json"],
)
async def test_patch_with_a_bad_body_changes_nothing(
    client: Client, auth: dict[str, str], body: Any, words: list[str]
) -> None:
    track = await published(client, auth)
    url = f"/api/tracks/{track['id'].removeprefix('urn:uuid:')}"
    before = await catalog_state(client)
    if isinstance(body, str):
        response = await client.patch(url, data=body, headers=auth)
    else:
        response = await client.patch(url, json=body, headers=auth)
    assert_error(await json_of(response, 400), "bad_request", *words)
    assert await catalog_state(client) == before


async def test_delete_withdraws_and_the_content_is_gone(
    client: Client, auth: dict[str, str]
) -> None:
    track = await published(client, auth)
    url = f"/api/tracks/{track['id'].removeprefix('urn:uuid:')}"
    cid = track["manifest"]["audio"]["cid"]
    assert (await client.get(f"/ipfs/{cid}")).status == 200

    withdrawn = await json_of(await client.delete(url, headers=auth), 200)

    assert withdrawn["withdrawn"] is True and withdrawn["withdrawnAt"]
    assert (await client.get(f"/ipfs/{cid}")).status == 404
    assert not client.server.app[NODE].store.has(cid)
    listed = await json_of(await client.get("/api/tracks", headers=auth), 200)
    assert [(t["id"], t["withdrawn"]) for t in listed["tracks"]] == [(track["id"], True)]
    feed = await json_of(await client.get("/feed.json"), 200)
    assert feed["tracks"] == [] and [w["id"] for w in feed["withdrawn"]] == [track["id"]]

    again = await client.delete(url, headers=auth)
    assert_error(await json_of(again, 409), "conflict", "withdrawn")
    edit = await client.patch(url, json={"title": "Back"}, headers=auth)
    assert_error(await json_of(edit, 409), "conflict", "withdrawn")
    missing = await client.delete(f"/api/tracks/{uuid.uuid4()}", headers=auth)
    assert_error(await json_of(missing, 404), "track_not_found")


async def test_status(client: Client, auth: dict[str, str], web_data_dir: Path) -> None:
    first = await published(client, auth, MP3)
    await published(client, auth, FLAC)
    await client.delete(f"/api/tracks/{first['id'].removeprefix('urn:uuid:')}", headers=auth)
    node = client.server.app[NODE]

    status = await json_of(await client.get("/api/status", headers=auth), 200)

    feed = await node.catalog.latest_feed()
    assert feed is not None
    stored = list((web_data_dir / "store" / "files").iterdir())
    assert status == {
        "did": node.identity.did,
        "name": WEB_ARTIST,
        "url": WEB_URL,
        "version": status["version"],
        "tracks": 1,
        "withdrawn": 1,
        "feed": {
            "sequence": feed.sequence,
            "cid": feed.cid,
            "updated": feed.updated,
            "expires": feed.expires,
        },
        "store": {"files": len(stored), "bytes": sum(p.stat().st_size for p in stored)},
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", status["version"])

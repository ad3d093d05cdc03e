"""`stave verify` on a listener's machine: no local catalog, the feed fetched from its URL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.cli import stave_async as run_stave
from tests.support.shared import FIXTURES

ServerFactory = Callable[..., Awaitable[TestServer]]


async def publish_and_download(tmp_path: Path, port: int) -> tuple[Path, dict[str, Any], Path]:
    """An artist's node for http://127.0.0.1:{port}/ with one Opus track published; returns the
    node, the track's manifest and a listener's copy of the published file."""
    artist = tmp_path / "artist"
    code, _, err = await run_stave(
        artist, "init", "--name", "Ada", "--url", f"http://127.0.0.1:{port}/"
    )
    assert code == 0, err
    code, out, err = await run_stave(artist, "add", str(FIXTURES / "tone.opus"), "--json")
    assert code == 0, err
    (manifest,) = json.loads(out)
    downloaded = tmp_path / "downloaded.opus"
    downloaded.write_bytes(stored(artist, manifest["audio"]["cid"]).read_bytes())
    return artist, manifest, downloaded


def stored(artist: Path, cid: str) -> Path:
    return artist / "store" / "files" / cid


def latest_feed(artist: Path) -> bytes:
    with sqlite3.connect(artist / "catalog.sqlite") as db:
        (cid,) = db.execute("SELECT cid FROM feeds ORDER BY sequence DESC LIMIT 1").fetchone()
    return stored(artist, cid).read_bytes()


async def test_verify_against_the_artists_feed(
    tmp_path: Path, unused_tcp_port: int, aiohttp_server: ServerFactory
) -> None:
    port = unused_tcp_port
    artist, manifest, downloaded = await publish_and_download(tmp_path, port)

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=latest_feed(artist), content_type="application/json")

    app = web.Application()
    app.router.add_get("/feed.json", feed)
    await aiohttp_server(app, host="127.0.0.1", port=port)

    listener = tmp_path / "listener"  # never initialised: no local catalog
    code, out, err = await run_stave(listener, "verify", str(downloaded), "--json")
    verdict = json.loads(out)
    assert code == 0, (out, err)
    assert verdict["valid"] is True
    assert verdict["source"] == f"http://127.0.0.1:{port}/feed.json"

    altered = tmp_path / "altered.opus"
    data = bytearray(downloaded.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    code, out, _ = await run_stave(listener, "verify", str(altered))
    assert code == 1 and "is not the signed CID" in out

    code, _, err = await run_stave(artist, "withdraw", manifest["id"])
    assert code == 0, err
    code, out, _ = await run_stave(listener, "verify", str(downloaded))
    assert code == 1 and "withdrawn" in out


async def test_verify_with_the_feed_unreachable(tmp_path: Path, unused_tcp_port: int) -> None:
    _, _, downloaded = await publish_and_download(tmp_path, unused_tcp_port)  # nothing listens
    code, out, err = await run_stave(tmp_path / "listener", "verify", str(downloaded))
    assert code == 1
    assert "could not check against" in out and "Traceback" not in err


async def test_verify_a_file_published_before_the_artist_rotated_their_key(
    tmp_path: Path, unused_tcp_port: int, aiohttp_server: ServerFactory
) -> None:
    """The file's tags name the old did; the feed is now signed by the new one. The listener
    accepts it only through the statements served beside the feed."""
    port = unused_tcp_port
    artist, manifest, downloaded = await publish_and_download(tmp_path, port)
    old_did = manifest["artist"]
    code, out, err = await run_stave(artist, "key", "rotate")
    assert code == 0, err
    new_did = out.strip()
    statements = {"served": (artist / "rotation.json").read_bytes()}

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=latest_feed(artist), content_type="application/json")

    async def rotation(request: web.Request) -> web.Response:
        return web.Response(body=statements["served"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/feed.json", feed)
    app.router.add_get("/.well-known/stave-rotation.json", rotation)
    await aiohttp_server(app, host="127.0.0.1", port=port)

    listener = tmp_path / "listener"
    code, out, err = await run_stave(listener, "verify", str(downloaded), "--json")
    verdict = json.loads(out)
    assert code == 0, (out, err)
    assert verdict["valid"] is True and verdict["artist"] == old_did
    assert f"signed by {new_did} (rotated from {old_did})" in verdict["reason"]

    # A statement that does not verify (here: altered after signing) is no way through.
    forged = json.loads(statements["served"])
    forged[0]["next"], forged[0]["at"] = new_did, "2020-01-01T00:00:00Z"
    statements["served"] = json.dumps(forged).encode()
    code, out, _ = await run_stave(listener, "verify", str(downloaded))
    assert code == 1
    assert "no rotation statement at" in out and "leads there" in out

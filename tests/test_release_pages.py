"""Releases on the pages: the artist page's releases (with covers, newest first) and singles,
a release's own page (`/releases/{id}`), and its RSS feed (`/releases/{id}/feed.rss`), which
feedparser reads as an album: `podcast:medium` music, the Podcasting 2.0 GUID, episodes in
track order. Real nodes, real fixture audio, the real app over aiohttp's test client.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.catalog import CatalogWrite
from node.datadir import Node
from node.feed import format_timestamp
from node.identity import Identity
from node.publish import Publisher, TrackChoices
from node.release import build_release, release_track_entry, verify_release
from node.signing import sign_document
from node.web.app import create_app
from node.web.state import NODE, PUBLISHER
from tests.support.node import WEB_ARTIST, WEB_URL
from tests.support.paths import require_tool
from tests.support.shared import FIXTURES
from tests.test_browser_js import run_js
from tests.test_web_pages import Page, assert_page_basics

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

HTML = {"Accept": "text/html"}
MP3 = FIXTURES / "tone.mp3"
OGG = FIXTURES / "tone.ogg"
FLAC = FIXTURES / "tone.flac"
WAV = FIXTURES / "tone.wav"
GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")


@pytest.fixture
async def client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    return await aiohttp_client(create_app(web_data_dir))


def publisher(client: Client) -> Publisher:
    return client.server.app[PUBLISHER]


async def sign_release(
    node: Node,
    publisher: Publisher,
    manifests: Sequence[tuple[dict[str, Any], int, int]],
    title: str,
    *,
    kind: str = "album",
    released: str = "2026-11-26",
    cover: dict[str, Any] | None = None,
    credits: Sequence[dict[str, str]] = (),
    description: str | None = None,
) -> dict[str, Any]:
    """Sign a release of (manifest, disc, number) entries in play order, put it in the catalog
    and publish the next feed — what `stave add DIR` ends in."""
    document = sign_document(
        build_release(
            release_id=f"urn:uuid:{uuid.uuid4()}",
            revision=1,
            artist=node.identity.did,
            title=title,
            kind=kind,
            released=released,
            published=format_timestamp(datetime.now(UTC)),
            tracks=[release_track_entry(m, disc, number) for m, disc, number in manifests],
            cover=cover,
            credits=credits,
            description=description,
        ),
        node.identity,
    )

    async def put(tx: CatalogWrite) -> None:
        await tx.put_release(document)

    await publisher.publish_change(put)
    # The document as the node keeps it: the same, unless it had to number the tracks again.
    return (await node.catalog.release(document["id"])).document


async def publish_release(
    client: Client, manifests: Sequence[tuple[dict[str, Any], int, int]], title: str, **kw: Any
) -> dict[str, Any]:
    return await sign_release(client.server.app[NODE], publisher(client), manifests, title, **kw)


async def withdraw(client: Client, release_id: str) -> None:
    async def change(tx: CatalogWrite) -> None:
        await tx.withdraw_release(release_id, format_timestamp(datetime.now(UTC)))

    await publisher(client).publish_change(change)


async def get_page(client: Client, path: str, status: int = 200) -> Page:
    response = await client.get(path, headers=HTML)
    body = await response.text()
    assert response.status == status, body
    return Page(body)


def bare(document: dict[str, Any]) -> str:
    return str(document["id"]).removeprefix("urn:uuid:")


async def add(client: Client, source: Path, title: str) -> dict[str, Any]:
    return await publisher(client).add(source, TrackChoices(title=title))


# --- the artist page --------------------------------------------------------------------------


async def test_the_artist_page_lists_releases_newest_first_then_singles(client: Client) -> None:
    one = await add(client, MP3, "Dawn")
    two = await add(client, WAV, "Noon")
    three = await add(client, FLAC, "Dusk")
    single = await add(client, OGG, "Loose end")
    older = await publish_release(
        client,
        [(one, 1, 1), (two, 1, 2)],
        "First Album",
        released="2025-03-01",
        cover=one["cover"],
    )
    newer = await publish_release(
        client, [(three, 1, 1)], "Later EP", kind="ep", released="2026-06-01"
    )

    page = await get_page(client, "/")

    assert_page_basics(page)
    cards = page.all("article", **{"class": "release-card"})
    assert [c["data-release-id"] for c in cards] == [newer["id"], older["id"]]
    words = page.words
    assert words.index("Later EP") < words.index("First Album") < words.index("Singles")
    assert "EP · 2026-06-01 · 1 track" in words
    assert "Album · 2025-03-01 · 2 tracks · 0:04" in words
    assert {f"/releases/{bare(older)}", f"/releases/{bare(newer)}"} <= page.links()
    covers = [img["src"] for img in page.all("img", **{"class": "cover"})]
    assert covers[0] == f"/ipfs/{one['cover']['cid']}"  # the album's cover; the EP has none
    # Only the track in no release is a single with its own player on the artist page.
    assert [t["data-track-id"] for t in page.all("article", **{"data-track": ""})] == [single["id"]]


async def test_a_withdrawn_release_leaves_its_tracks_as_singles(client: Client) -> None:
    one = await add(client, MP3, "Dawn")
    release = await publish_release(client, [(one, 1, 1)], "Gone Soon")
    assert "Every track is on a release above." in (await get_page(client, "/")).words

    await withdraw(client, release["id"])

    page = await get_page(client, "/")
    assert "Gone Soon" not in page.words
    assert "Releases" not in page.words
    assert [t["data-track-id"] for t in page.all("article", **{"data-track": ""})] == [one["id"]]


# --- the release page --------------------------------------------------------------------------


async def test_the_release_page_plays_its_tracks_in_order_with_credits_and_terms(
    client: Client,
) -> None:
    one = await add(client, MP3, "Dawn")
    two = await add(client, WAV, "Noon")
    three = await add(client, FLAC, "Dusk")
    credits = [{"role": "producer", "name": "Bea Example"}, {"role": "mastering", "name": "Cy"}]
    # Not in the order they were added: the page plays the release's order.
    release = await publish_release(
        client,
        [(three, 1, 1), (one, 1, 2), (two, 1, 3)],
        "Three Times",
        cover=one["cover"],
        credits=credits,
        description="Morning to night.",
    )

    page = await get_page(client, f"/releases/{bare(release)}")

    assert_page_basics(page)
    cards = page.all("article", **{"data-track": ""})
    assert [c["data-track-id"] for c in cards] == [three["id"], one["id"], two["id"]]
    assert [c["data-audio-cid"] for c in cards] == [m["audio"]["cid"] for m in (three, one, two)]
    # Every card carries its signed manifest, and the page the signed release, for the browser.
    assert [json.loads(c["data-manifest"]) for c in cards] == [three, one, two]
    check = page.all("p", **{"data-release-check": ""})
    assert len(check) == 1
    assert json.loads(check[0]["data-release"]) == release
    assert check[0]["data-did"] == release["artist"]
    assert page.all("ol", **{"data-preload-next": ""})
    words = page.words
    assert "Three Times" in words and "Morning to night." in words
    assert "Album by Ada Example · released 2026-11-26 · 3 tracks · 0:06" in words
    assert "Producer Bea Example Mastering Cy" in words
    assert "Track 1" in words and "Track 3" in words
    assert "All rights reserved" in words and "Not for AI training" in words
    assert release["proof"]["proofValue"] in words
    # The release's cover and terms once; the cards show neither again.
    assert len(page.all("img", src=f"/ipfs/{one['cover']['cid']}")) == 1
    assert len(page.all("p", **{"class": "terms-line"})) == 1
    assert words.count("Not for AI training") == 1
    feed = f"/releases/{bare(release)}/feed.rss"
    assert page.all("link", rel="alternate", type="application/rss+xml", href=feed)
    assert feed in page.links()


async def test_a_track_whose_terms_differ_shows_them_on_the_release_page(
    client: Client,
) -> None:
    one = await add(client, MP3, "Dawn")
    two = await publisher(client).add(WAV, TrackChoices(title="Free", license="CC-BY-4.0"))
    release = await publish_release(client, [(one, 1, 1), (two, 1, 2)], "Mixed")

    page = await get_page(client, f"/releases/{bare(release)}")

    # The release's terms once, then only the track whose terms are not the release's.
    lines = page.all("p", **{"class": "terms-line"})
    assert len(lines) == 2
    assert "https://creativecommons.org/licenses/by/4.0/" in page.links()
    # Dawn's cover is its own (the release has none), so its card shows it.
    assert page.all("img", src=f"/ipfs/{one['cover']['cid']}")


async def test_the_release_page_carries_the_crawler_signals(client: Client) -> None:
    one = await add(client, MP3, "Dawn")
    release = await publish_release(client, [(one, 1, 1)], "Signals")

    response = await client.get(f"/releases/{bare(release)}", headers=HTML)

    meta = Page(await response.text()).meta()
    assert meta["tdm-reservation"] == "1"
    assert meta["robots"] == "noai, noimageai"
    assert response.headers["tdm-reservation"] == "1"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_a_track_page_links_to_its_release(client: Client) -> None:
    one = await add(client, MP3, "Dawn")
    release = await publish_release(client, [(one, 1, 1)], "Only One", kind="single")

    page = await get_page(client, f"/tracks/{bare(one)}")

    assert "Single: Only One" in page.words
    assert f"/releases/{bare(release)}" in page.links()


async def test_a_multi_disc_release_numbers_its_tracks_by_disc(client: Client) -> None:
    one = await add(client, MP3, "A")
    two = await add(client, WAV, "B")
    release = await publish_release(client, [(one, 1, 1), (two, 2, 1)], "Double")

    page = await get_page(client, f"/releases/{bare(release)}")

    assert [c["data-track-id"] for c in page.all("article", **{"data-track": ""})] == [
        one["id"],
        two["id"],
    ]
    assert "Track 1-1" in page.words and "Track 2-1" in page.words


async def test_a_release_title_with_markup_is_escaped(client: Client) -> None:
    title = '<script>alert("owned")</script> & <b>bold</b>'
    one = await add(client, MP3, "Dawn")
    release = await publish_release(client, [(one, 1, 1)], title)

    for path in ("/", f"/releases/{bare(release)}"):
        response = await client.get(path, headers=HTML)
        body = await response.text()
        assert "<script>" not in body and "<b>bold</b>" not in body
        assert title in Page(body).words
    rss = await client.get(f"/releases/{bare(release)}/feed.rss")
    assert feedparser.parse(await rss.read()).feed.title == title


@pytest.mark.parametrize("path", ["/releases/{id}", "/releases/{id}/feed.rss"])
async def test_an_unknown_or_malformed_release_is_404_and_a_withdrawn_one_410(
    client: Client, path: str
) -> None:
    one = await add(client, MP3, "Dawn")
    release = await publish_release(client, [(one, 1, 1)], "Short Lived")

    for wanted in (str(uuid.uuid4()), "not-a-uuid", bare(release).upper() + "x"):
        response = await client.get(path.format(id=wanted), headers=HTML)
        assert response.status == 404, await response.text()
        assert "Traceback" not in await response.text()
    await withdraw(client, release["id"])
    response = await client.get(path.format(id=bare(release)), headers=HTML)
    assert response.status == 410
    assert "Traceback" not in await response.text()


# --- RSS ---------------------------------------------------------------------------------------


async def test_the_release_feed_is_an_album_for_podcast_apps(client: Client) -> None:
    one = await add(client, MP3, "Dawn")
    two = await add(client, WAV, "Noon")
    three = await add(client, FLAC, "Dusk")
    release = await publish_release(
        client, [(two, 1, 1), (three, 1, 2), (one, 1, 3)], "Three Times", cover=one["cover"]
    )
    path = f"/releases/{bare(release)}/feed.rss"

    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "application/rss+xml"
    body = await response.read()
    parsed = feedparser.parse(body)

    assert not parsed.bozo, parsed.bozo_exception
    channel = parsed.feed
    assert channel.title == "Three Times"
    assert channel.link == WEB_URL + f"releases/{bare(release)}"
    assert channel.podcast_medium == "music"
    bare_url = WEB_URL.removeprefix("http://") + path.removeprefix("/")
    assert channel.podcast_guid == str(uuid.uuid5(GUID_NAMESPACE, bare_url))
    assert channel.itunes_type == "serial"
    assert channel.author == WEB_ARTIST
    assert channel.image.href == WEB_URL + f"ipfs/{one['cover']['cid']}"
    assert [e.title for e in parsed.entries] == ["Noon", "Dusk", "Dawn"]
    assert [e.podcast_episode for e in parsed.entries] == ["1", "2", "3"]
    assert [e.itunes_episode for e in parsed.entries] == ["1", "2", "3"]
    assert all("podcast_season" not in e for e in parsed.entries)  # one disc
    assert [e.enclosures[0].href for e in parsed.entries] == [
        WEB_URL + f"ipfs/{m['audio']['cid']}" for m in (two, three, one)
    ]
    assert [e.id for e in parsed.entries] == [two["id"], three["id"], one["id"]]

    again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


async def test_the_release_feed_gives_each_disc_a_season(client: Client) -> None:
    one = await add(client, MP3, "A")
    two = await add(client, WAV, "B")
    three = await add(client, OGG, "C")
    release = await publish_release(client, [(one, 1, 1), (two, 1, 2), (three, 2, 1)], "Double")

    response = await client.get(f"/releases/{bare(release)}/feed.rss")
    parsed = feedparser.parse(await response.read())

    assert [e.podcast_episode for e in parsed.entries] == ["1", "2", "3"]
    assert [e.podcast_season for e in parsed.entries] == ["1", "1", "2"]


async def test_the_main_feed_is_music_too(client: Client) -> None:
    one = await add(client, MP3, "Dawn")
    await publish_release(client, [(one, 1, 1)], "Only One")

    response = await client.get("/feed.rss")
    parsed = feedparser.parse(await response.read())

    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.feed.podcast_medium == "music"
    assert parsed.feed.podcast_guid == str(
        uuid.uuid5(GUID_NAMESPACE, WEB_URL.removeprefix("http://") + "feed.rss")
    )
    assert [e.title for e in parsed.entries] == ["Dawn"]


async def test_a_track_offers_its_listening_copy_to_stream_and_the_original_to_download(
    client: Client,
) -> None:
    one = await add(client, FLAC, "Dawn")
    (rendition,) = one["renditions"]  # media.renditions defaults to ["opus:128"]

    page = await get_page(client, f"/tracks/{bare(one)}")

    (audio,) = page.all("audio")
    assert audio["data-rendition"] == f"/ipfs/{rendition['cid']}"
    assert audio["data-rendition-type"] == rendition["mediaType"] == "audio/ogg; codecs=opus"
    # Without JavaScript the original plays; the player swaps in the copy on phones.
    assert page.all("source", src=f"/ipfs/{one['audio']['cid']}", type="audio/flac")
    assert page.all("a", href=f"/ipfs/{one['audio']['cid']}", download="")
    assert f"Listening copy (Opus, {rendition['bitrate'] // 1000} kb/s" in page.words


# --- the browser's check of a release (web/static/proof.js under Node.js) ----------------------


def test_the_browsers_release_check_agrees_with_the_node() -> None:
    node_js = require_tool("node", shutil.which("node"))
    artist, other = Identity.generate(), Identity.generate()
    entry = {"id": f"urn:uuid:{uuid.uuid4()}", "revision": 1, "disc": 1, "number": 1}
    entry["cid"] = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    unsigned = build_release(
        release_id=f"urn:uuid:{uuid.uuid4()}",
        revision=1,
        artist=artist.did,
        title="Checked",
        kind="ep",
        released="2026-11-26",
        published="2026-11-26T16:00:00Z",
        tracks=[entry],
    )
    signed = sign_document(unsigned, artist)
    verify_release(signed, artist.did)  # what the node accepts…
    cases = {
        "good": (signed, artist.did, None),
        "other-key": (sign_document(unsigned, other), artist.did, "not " + artist.did),
        "renamed": ({**signed, "title": "Checkeq"}, artist.did, "does not match"),
        "reordered": ({**signed, "tracks": [{**entry, "number": 2}]}, artist.did, "does not match"),
        "a-track": ({**signed, "type": "StaveTrack"}, artist.did, "is not StaveRelease"),
        "by-another": ({**signed, "artist": other.did}, artist.did, "not " + artist.did),
    }
    inputs = [
        {"text": json.dumps(d), "did": did, "kind": "release"} for d, did, _ in cases.values()
    ]
    results = run_js(node_js, "verify_stdin.mjs", inputs)
    for (name, (_, _, reason)), result in zip(cases.items(), results, strict=True):
        if reason is None:
            assert result == {"ok": True}, name  # …the browser accepts
        else:
            assert result["name"] == "VerificationError", (name, result)
            assert reason in result["error"], (name, result)

"""The public pages: artist page, track pages, terms page, their escaping and crawler signals."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.publish import Publisher, TrackChoices
from node.web.app import create_app
from node.web.state import PUBLISHER
from node.web.templates import duration, static_dir
from tests.support.node import WEB_ARTIST, WEB_URL, write_node_config
from tests.support.shared import FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

HTML = {"Accept": "text/html"}
MP3 = FIXTURES / "tone.mp3"
FLAC = FIXTURES / "tone.flac"
WAV = FIXTURES / "tone.wav"


def make_app(root: Path) -> web.Application:
    return create_app(root)


class Page(HTMLParser):
    """The parts of an HTML page these tests look at: tags with their attributes, and text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]

    def meta(self) -> dict[str, str]:
        return {a["name"]: a["content"] for a in self.all("meta") if "name" in a}

    def links(self) -> set[str]:
        return {a["href"] for a in self.all("a") if "href" in a}

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
async def client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    return await aiohttp_client(make_app(web_data_dir))


def publisher(client: Client) -> Publisher:
    return client.server.app[PUBLISHER]


async def get_page(client: Client, path: str, status: int = 200) -> Page:
    response = await client.get(path, headers=HTML)
    body = await response.text()
    assert response.status == status, body
    assert response.content_type == "text/html"
    return Page(body)


def assert_page_basics(page: Page) -> None:
    """lang, viewport, a title, landmarks, and a text alternative for every image and player."""
    assert page.all("html")[0]["lang"] == "en"
    assert page.meta()["viewport"].startswith("width=device-width")
    assert any(t == "title" for t, _ in page.tags)
    assert page.all("main") and page.all("header") and page.all("footer") and page.all("nav")
    assert all(img.get("alt") for img in page.all("img"))
    assert all(audio.get("aria-label") for audio in page.all("audio"))


async def test_artist_page_lists_tracks_newest_first(client: Client) -> None:
    first = await publisher(client).add(MP3, TrackChoices(title="First light"))
    second = await publisher(client).add(WAV, TrackChoices(title="Second wind"))

    page = await get_page(client, "/")

    assert_page_basics(page)
    words = page.words
    assert WEB_ARTIST in words
    assert words.index("Second wind") < words.index("First light")
    sources = page.all("source")
    assert [s["src"] for s in sources] == [
        f"/ipfs/{second['audio']['cid']}",
        f"/ipfs/{first['audio']['cid']}",
    ]
    assert [s["type"] for s in sources] == ["audio/wav", "audio/mpeg"]
    audios = page.all("audio")
    assert len(audios) == 2
    assert all("controls" in a and a["preload"] == "none" for a in audios)
    # The MP3 fixture carries a cover; the WAV has none, so only one image.
    covers = page.all("img")
    assert [c["src"] for c in covers] == [f"/ipfs/{first['cover']['cid']}"]
    assert "First light" in covers[0]["alt"]
    assert words.count("0:02") == 2
    links = page.links()
    assert {"/feed.rss", "/feed.json", "/terms"} <= links
    for manifest in (first, second):
        cid = manifest["audio"]["cid"]
        assert {f"/ipfs/{cid}", f"ipfs://{cid}"} <= links
        assert f"/tracks/{manifest['id'].removeprefix('urn:uuid:')}" in links
    assert "All rights reserved" in words
    assert words.count("Not for AI training") == 3  # the artist's summary and each track


async def test_artist_page_without_tracks(client: Client) -> None:
    page = await get_page(client, "/")
    assert "No tracks published yet." in page.words
    assert page.all("audio") == []


async def test_a_title_with_markup_is_escaped(client: Client) -> None:
    title = '<script>alert("owned")</script> & <b>bold</b>'
    manifest = await publisher(client).add(MP3, TrackChoices(title=title))
    bare = manifest["id"].removeprefix("urn:uuid:")

    for path in ("/", f"/tracks/{bare}"):
        response = await client.get(path, headers=HTML)
        body = await response.text()
        assert "<script>" not in body
        assert "<b>bold</b>" not in body
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in body
        assert title in Page(body).words


@pytest.mark.parametrize("path", ["/", "/terms", "/tracks/{id}"])
async def test_every_page_carries_the_crawler_meta_tags(client: Client, path: str) -> None:
    manifest = await publisher(client).add(MP3)
    url = path.format(id=manifest["id"].removeprefix("urn:uuid:"))
    response = await client.get(url, headers=HTML)
    page = Page(await response.text())
    meta = page.meta()
    assert meta["tdm-reservation"] == "1"
    assert meta["tdm-policy"] == WEB_URL + "terms/tdm-policy.json"
    assert meta["robots"] == "noai, noimageai"
    assert meta["content-usage"] == "train-ai=n, ai-use=n"
    assert response.headers["tdm-reservation"] == "1"


async def test_no_crawler_meta_tags_when_the_artist_allows_mining(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(
        web_data_dir,
        terms__license="CC-BY-4.0",
        terms__tdm_reservation=0,
        terms__ai_training="allowed",
        terms__ai_generative_training="allowed",
        terms__ai_inference="allowed",
        terms__data_mining="allowed",
    )
    client = await aiohttp_client(make_app(web_data_dir))
    await publisher(client).add(MP3)

    page = await get_page(client, "/")

    meta = page.meta()
    assert "tdm-reservation" not in meta and "robots" not in meta and "content-usage" not in meta
    assert "viewport" in meta
    assert "Not for AI training" not in page.words
    assert "Licensed under CC-BY-4.0" in page.words
    assert "https://creativecommons.org/licenses/by/4.0/" in page.links()


async def test_track_page_by_full_id_and_by_uuid(client: Client) -> None:
    manifest = await publisher(client).add(FLAC, TrackChoices(title="Harbour"))
    bare = manifest["id"].removeprefix("urn:uuid:")

    for path in (f"/tracks/{bare}", f"/tracks/{quote(manifest['id'], safe='')}"):
        page = await get_page(client, path)
        assert_page_basics(page)
        assert page.all("title")
        assert "Harbour" in page.words
        assert page.all("source", src=f"/ipfs/{manifest['audio']['cid']}", type="audio/flac")
        assert f"ipfs://{manifest['audio']['cid']}" in page.links()
        assert f"/ipfs/{manifest['cover']['cid']}" in page.links()
        assert manifest["proof"]["proofValue"] in page.words  # the signed manifest is shown
        assert "Revision 1" in page.words


@pytest.mark.parametrize("path", ["/tracks/{unknown}", "/tracks/not-a-track", "/tracks/urn:uuid:"])
async def test_unknown_track_is_a_404_page(client: Client, path: str) -> None:
    page = await get_page(client, path.format(unknown=uuid.uuid4()), status=404)
    assert page.all("html")[0]["lang"] == "en"
    assert "no such track" in page.words


async def test_withdrawn_track_page_says_so(client: Client) -> None:
    manifest = await publisher(client).add(MP3, TrackChoices(title="Gone soon"))
    await publisher(client).withdraw(manifest["id"])

    page = await get_page(client, f"/tracks/{manifest['id'].removeprefix('urn:uuid:')}", 410)

    assert "This track was withdrawn" in page.words
    assert "Gone soon" in page.words
    assert page.all("audio") == []
    assert "Gone soon" not in (await get_page(client, "/")).words


async def test_terms_page_in_words_with_contact(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(web_data_dir, node__contact="licensing@ada.example")
    client = await aiohttp_client(make_app(web_data_dir))
    terms = publisher(client).default_terms()
    await publisher(client).add(MP3, TrackChoices(ai_training="allowed", title="Open track"))

    page = await get_page(client, "/terms")

    assert_page_basics(page)
    assert terms.in_words() in page.words
    assert "Not for AI training." in page.words
    assert "mailto:licensing@ada.example" in page.links()
    assert {"/terms/tdm-policy.json", "/robots.txt", "/ai.txt", "/.well-known/tdmrep.json"} <= {
        link.removeprefix(WEB_URL.rstrip("/")) for link in page.links()
    }
    assert "reserved under the W3C TDM Reservation Protocol" in page.words
    # A track whose terms differ from the node's is named, with its own terms.
    assert "Open track" in page.words
    assert "Allowed by the artist: training AI models." in page.words


async def test_terms_page_without_contact(client: Client) -> None:
    page = await get_page(client, "/terms")
    assert "has not published a contact for licensing requests" in page.words
    assert not any(link.startswith("mailto:") for link in page.links())


async def test_stylesheet_is_served_by_the_node(client: Client) -> None:
    page = await get_page(client, "/")
    stylesheets = page.all("link", rel="stylesheet")
    assert len(stylesheets) == 1
    href = stylesheets[0]["href"]
    assert href.startswith("/static/stave.css?v=")
    response = await client.get(href)
    assert response.status == 200
    assert response.content_type == "text/css"
    assert "prefers-color-scheme" in await response.text()
    # Nothing the page loads comes from another host.
    loaded = [a["src"] for _, a in page.tags if "src" in a]
    loaded += [a["href"] for a in page.all("link") if a.get("rel") != "alternate"]
    assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(2.04, "0:02"), (59.6, "1:00"), (183.4, "3:03"), (3725, "1:02:05"), (None, "—")],
    ids=["two-seconds", "rounds-up", "minutes", "hours", "unknown"],
)
def test_duration_in_minutes_and_seconds(seconds: float | None, words: str) -> None:
    assert duration(seconds) == words


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_colours_meet_wcag_aa_contrast(scheme: str) -> None:
    css = (static_dir() / "stave.css").read_text(encoding="utf-8")
    light_block, _, dark_block = css.partition("prefers-color-scheme: dark")
    block = light_block if scheme == "light" else dark_block
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6});", block))
    pairs = [
        ("fg", "bg"),
        ("fg", "card"),
        ("muted", "bg"),
        ("muted", "card"),
        ("accent", "bg"),
        ("accent", "card"),
        ("warn-fg", "warn-bg"),
    ]
    for text, background in pairs:
        ratio = _contrast(colours[text], colours[background])
        assert ratio >= 4.5, f"{scheme}: --{text} on --{background} is {ratio:.2f}:1"

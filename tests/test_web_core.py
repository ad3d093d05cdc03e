"""The web node's core: feeds, the node document, crawler signals, errors, metrics, lifecycle."""

from __future__ import annotations

import gzip
import json
import logging
import urllib.robotparser
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.catalog import FeedRecord
from node.datadir import open_node
from node.errors import (
    CatalogError,
    ContentNotFound,
    InvalidCID,
    KuboError,
    StaveError,
    StoreError,
    TrackNotFound,
    UnsupportedMedia,
    UsageError,
    VerificationError,
)
from node.feed import FollowState, format_timestamp, verify_feed
from node.publish import TrackChoices
from node.settings import Config
from node.signing import verify_document
from node.store import Store
from node.web import create_app
from node.web.feeds import needs_resigning
from node.web.rss import PODCAST, podcast_guid
from node.web.signals import AI_CRAWLERS
from node.web.state import METRICS, NODE, PUBLISHER
from tests.support.node import WEB_ARTIST, WEB_URL, write_node_config
from tests.support.shared import AUDIO_FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

SIGNAL_HEADERS = {
    "tdm-reservation": "1",
    "tdm-policy": WEB_URL + "terms/tdm-policy.json",
    "X-Robots-Tag": "noai, noimageai",
    "Content-Usage": "train-ai=n, ai-use=n",
}
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture
async def client(aiohttp_client: ClientFactory, published_data_dir: Path) -> Client:
    return await aiohttp_client(create_app(published_data_dir))


def node_of(client: Client) -> object:
    return client.server.app[NODE]


async def stored_feed(client: Client) -> tuple[str, bytes]:
    node = client.server.app[NODE]
    latest = await node.catalog.latest_feed()
    assert latest is not None
    return latest.cid, node.store.path(latest.cid).read_bytes()


# --- /feed.json ---------------------------------------------------------------------------------


async def test_feed_json_is_the_stored_signed_feed(client: Client) -> None:
    cid, stored = await stored_feed(client)
    response = await client.get("/feed.json", headers=IDENTITY)
    assert response.status == 200
    body = await response.read()
    assert body == stored
    assert response.headers["ETag"] == f'"{cid}"'
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert "Content-Encoding" not in response.headers
    assert response.headers.getall("Link") == [
        f'<{WEB_URL}websub>; rel="hub"',
        f'<{WEB_URL}feed.json>; rel="self"',
    ]
    node = client.server.app[NODE]
    feed = verify_feed(body, FollowState(artist=node.identity.did), max_bytes=1 << 24)
    assert len(feed["tracks"]) == len(AUDIO_FIXTURES)


@pytest.mark.parametrize(
    "if_none_match",
    ['"{cid}"', 'W/"{cid}"', '"bafkother", "{cid}"', "*"],
    ids=["exact", "weak", "in-a-list", "any"],
)
async def test_feed_json_304_on_if_none_match(client: Client, if_none_match: str) -> None:
    cid, _ = await stored_feed(client)
    response = await client.get(
        "/feed.json", headers={"If-None-Match": if_none_match.format(cid=cid)}
    )
    assert response.status == 304
    assert await response.read() == b""
    assert response.headers["ETag"] == f'"{cid}"'
    assert len(response.headers.getall("Link")) == 2


async def test_feed_json_200_when_the_etag_is_old(client: Client) -> None:
    response = await client.get("/feed.json", headers={"If-None-Match": '"bafkold"'})
    assert response.status == 200


@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate, br", "deflate;q=0.5, GZIP;q=0.8"])
async def test_feed_json_gzip_when_asked(client: Client, accept: str) -> None:
    _, stored = await stored_feed(client)
    response = await client.get(
        "/feed.json", headers={"Accept-Encoding": accept}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    compressed = await response.read()
    assert int(response.headers["Content-Length"]) == len(compressed) < len(stored)
    assert gzip.decompress(compressed) == stored


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "br", ""])
async def test_feed_json_not_gzipped_unless_asked(client: Client, accept: str) -> None:
    _, stored = await stored_feed(client)
    response = await client.get(
        "/feed.json", headers={"Accept-Encoding": accept}, auto_decompress=False
    )
    assert "Content-Encoding" not in response.headers
    assert await response.read() == stored


async def test_feed_json_follows_a_publish_in_this_process(client: Client) -> None:
    first = (await client.get("/feed.json")).headers["ETag"]
    publisher = client.server.app[PUBLISHER]
    track = (await client.server.app[NODE].catalog.tracks())[0]
    await publisher.withdraw(track.id)
    response = await client.get("/feed.json")
    assert response.headers["ETag"] != first
    feed = json.loads(await response.read())
    assert track.id not in {t["id"] for t in feed["tracks"]}
    assert track.id in {entry["id"] for entry in feed["withdrawn"]}
    # and a conditional GET with the old tag now gets the new feed
    again = await client.get("/feed.json", headers={"If-None-Match": first})
    assert again.status == 200


async def test_feed_json_follows_a_publish_by_another_process(
    client: Client, published_data_dir: Path
) -> None:
    before = (await client.get("/feed.json")).headers["ETag"]
    async with open_node(published_data_dir) as other:  # as `stave edit` would, separately
        track = (await other.catalog.tracks())[0]
        from node.publish import Publisher

        await Publisher(other).edit(track.id, TrackChoices(title="Renamed elsewhere"))
        latest = await other.catalog.latest_feed()
        other.store.close()
    assert latest is not None
    response = await client.get("/feed.json")
    assert response.headers["ETag"] == f'"{latest.cid}"' != before
    titles = {t["title"] for t in json.loads(await response.read())["tracks"]}
    assert "Renamed elsewhere" in titles


async def test_first_feed_is_published_when_a_node_starts_without_one(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    from node.datadir import init_data_dir

    root = tmp_path / "fresh"
    init_data_dir(root, WEB_ARTIST, WEB_URL)
    client = await aiohttp_client(create_app(root))
    response = await client.get("/feed.json")
    assert response.status == 200
    feed = json.loads(await response.read())
    assert feed["sequence"] == 1 and feed["tracks"] == [] and feed["previous"] is None


def test_feed_is_signed_again_when_half_its_life_is_gone() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)

    def record(expires: datetime) -> FeedRecord:
        return FeedRecord(1, "bafk", None, "2026-11-20T00:00:00Z", format_timestamp(expires))

    assert not needs_resigning(record(now + timedelta(days=5)), 7, now)
    assert needs_resigning(record(now + timedelta(days=3)), 7, now)
    assert needs_resigning(record(now - timedelta(days=1)), 7, now)


# --- /feed.rss ----------------------------------------------------------------------------------


async def test_feed_rss_is_read_by_a_real_feed_client(client: Client) -> None:
    response = await client.get("/feed.rss")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert response.headers.getall("Link")[1] == f'<{WEB_URL}feed.rss>; rel="self"'
    body = await response.read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == WEB_ARTIST
    assert parsed.feed.podcast_guid == str(
        uuid.uuid5(uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"), "127.0.0.1:8080/feed.rss")
    )
    assert parsed.feed.podcast_license == {"url": WEB_URL + "terms"}
    assert parsed.feed.podcast_medium == "music"
    assert {"rel": "hub", "href": WEB_URL + "websub"}.items() <= parsed.feed.links[2].items()
    tracks = await client.server.app[NODE].catalog.tracks()
    assert len(parsed.entries) == len(tracks) == len(AUDIO_FIXTURES)
    for entry, track in zip(parsed.entries, tracks, strict=True):
        audio = track.manifest["audio"]
        assert entry.id == track.id
        assert entry.title == track.title
        assert entry.link == WEB_URL + "tracks/" + track.id.removeprefix("urn:uuid:")
        assert entry.enclosures == [
            {
                "href": f"{WEB_URL}ipfs/{audio['cid']}",
                "length": str(audio["size"]),
                "type": audio["mediaType"],
            }
        ]
        assert entry.podcast_license == {"url": WEB_URL + "terms"}
        assert entry.itunes_duration == str(round(track.manifest["durationSeconds"]))
        assert not entry.itunes_explicit  # "false": feedparser reads it as not explicit
        assert "Not allowed without the artist's permission: training AI models" in entry.summary
        published = datetime.fromisoformat(track.published.replace("Z", "+00:00"))
        assert entry.published_parsed[:6] == published.utctimetuple()[:6]
    # every enclosure is served by this node
    for entry in parsed.entries:
        url = entry.enclosures[0]["href"].removeprefix(WEB_URL.rstrip("/"))
        head = await client.head(url)
        assert head.status == 200
        assert head.headers["Content-Length"] == entry.enclosures[0]["length"]


async def test_feed_rss_licence_values(client: Client) -> None:
    track = (await client.server.app[NODE].catalog.tracks())[0]
    await client.server.app[PUBLISHER].edit(track.id, TrackChoices(license="CC-BY-NC-ND-4.0"))
    root = ET.fromstring(await (await client.get("/feed.rss")).read())
    channel = root.find("channel")
    assert channel is not None
    licence = channel.find(f"{{{PODCAST}}}license")
    assert licence is not None and licence.text == "all-rights-reserved"
    by_guid = {item.findtext("guid"): item for item in channel.iter("item")}
    edited = by_guid[track.id].find(f"{{{PODCAST}}}license")
    assert edited is not None
    assert edited.text == "cc-by-nc-nd-4.0"
    assert edited.get("url") == "https://creativecommons.org/licenses/by-nc-nd/4.0/"


async def test_feed_rss_escapes_what_the_artist_types(client: Client) -> None:
    title = 'Rock & Roll <Live> "at" O\'Hare ]]> &amp;'
    track = (await client.server.app[NODE].catalog.tracks())[0]
    await client.server.app[PUBLISHER].edit(track.id, TrackChoices(title=title))
    body = await (await client.get("/feed.rss")).read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    assert title in {entry.title for entry in parsed.entries}
    assert b"<Live>" not in body


async def test_feed_rss_304_and_gzip(client: Client) -> None:
    first = await client.get("/feed.rss", headers=IDENTITY)
    etag = first.headers["ETag"]
    assert (await client.get("/feed.rss", headers={"If-None-Match": etag})).status == 304
    zipped = await client.get(
        "/feed.rss", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()) == await first.read()


@pytest.mark.parametrize(
    ("url", "guid"),
    [
        # the examples of https://github.com/Podcastindex-org/podcast-namespace/.../guid.md
        ("mp3s.nashownotes.com/pc20rss.xml", "917393e3-1b1e-5cef-ace4-edaa54e1f810"),
        ("podnews.net/rss", "9b024349-ccf0-5f69-a609-6b82873eab3c"),
        ("https://podnews.net/rss", "9b024349-ccf0-5f69-a609-6b82873eab3c"),
        ("http://podnews.net/rss/", "9b024349-ccf0-5f69-a609-6b82873eab3c"),
    ],
)
def test_podcast_guid_matches_the_namespace_examples(url: str, guid: str) -> None:
    assert podcast_guid(url) == guid


# --- /.well-known/stave -------------------------------------------------------------------------


async def test_node_document_is_signed(client: Client) -> None:
    response = await client.get("/.well-known/stave")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    document = json.loads(await response.read())
    did = client.server.app[NODE].identity.did
    verify_document(document, did)
    assert document["type"] == "StaveNode"
    assert document["artist"] == did
    assert document["name"] == WEB_ARTIST
    assert document["feed"] == WEB_URL + "feed.json"
    assert document["rss"] == WEB_URL + "feed.rss"
    assert document["hub"] == WEB_URL + "websub"
    assert document["ipns"] is None
    assert document["software"]["name"] == "stave"


async def test_create_app_config_replaces_config_toml(
    aiohttp_client: ClientFactory, published_data_dir: Path
) -> None:
    config = Config({"node.name": "Someone Else", "node.url": "https://else.example/"})
    client = await aiohttp_client(create_app(published_data_dir, config=config))
    document = json.loads(await (await client.get("/.well-known/stave")).read())
    assert document["name"] == "Someone Else"
    assert document["feed"] == "https://else.example/feed.json"
    response = await client.get("/healthz")
    assert response.headers["tdm-policy"] == "https://else.example/terms/tdm-policy.json"


# --- crawler signals ----------------------------------------------------------------------------


async def _some_cid(client: Client) -> str:
    track = (await client.server.app[NODE].catalog.tracks())[0]
    return track.audio_cid


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/healthz", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/feed.json", {}, 200),
        ("HEAD", "/feed.json", {}, 200),
        ("GET", "/feed.rss", {}, 200),
        ("GET", "/.well-known/stave", {}, 200),
        ("GET", "/robots.txt", {}, 200),
        ("GET", "/ai.txt", {}, 200),
        ("GET", "/.well-known/tdmrep.json", {}, 200),
        ("GET", "/terms/tdm-policy.json", {}, 200),
        ("GET", "/ipfs/{cid}", {}, 200),
        ("HEAD", "/ipfs/{cid}", {}, 200),
        ("GET", "/ipfs/{cid}", {"Range": "bytes=0-0"}, 206),
        ("GET", "/ipfs/{cid}", {"If-None-Match": '"{cid}"'}, 304),
        ("GET", "/ipfs/{cid}", {"Range": "bytes=999999999-"}, 416),
        ("GET", "/ipfs/{cid}?format=raw", {}, 200),
        ("GET", "/ipfs/{cid}?format=car", {}, 200),
        ("GET", "/ipfs/not-a-cid", {}, 400),
        ("GET", "/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", {}, 404),
        ("GET", "/no/such/page", {}, 404),
        ("GET", "/no/such/page", {"Accept": "text/html"}, 404),
        ("POST", "/feed.json", {}, 405),
        ("GET", "/api/no-such-thing", {}, 404),
    ],
)
async def test_signals_on_every_response(
    client: Client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    cid = await _some_cid(client)
    headers = {name: value.format(cid=cid) for name, value in headers.items()}
    response = await client.request(method, path.format(cid=cid), headers=headers)
    assert response.status == status
    for name, value in SIGNAL_HEADERS.items():
        assert response.headers.get(name) == value, name


async def test_no_signals_when_the_artist_allows_mining(
    aiohttp_client: ClientFactory, published_data_dir: Path
) -> None:
    write_node_config(
        published_data_dir,
        terms__tdm_reservation=0,
        terms__ai_training="allowed",
        terms__ai_generative_training="allowed",
        terms__ai_inference="allowed",
        terms__data_mining="allowed",
    )
    client = await aiohttp_client(create_app(published_data_dir))
    response = await client.get("/feed.json")
    for name in SIGNAL_HEADERS:
        assert name not in response.headers
    assert await (await client.get("/.well-known/tdmrep.json")).json() == [
        {"location": "/", "tdm-reservation": 0}
    ]
    robots = urllib.robotparser.RobotFileParser()
    robots.parse((await (await client.get("/robots.txt")).text()).splitlines())
    assert robots.can_fetch("GPTBot", WEB_URL + "feed.json")
    policy = await (await client.get("/terms/tdm-policy.json")).json(
        content_type="application/ld+json"
    )
    assert policy["permission"] == [{"target": WEB_URL, "action": "tdm:mine"}]


async def test_robots_txt_keeps_ai_crawlers_out_and_search_engines_in(client: Client) -> None:
    response = await client.get("/robots.txt")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = await response.text()
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(text.splitlines())
    required = [
        "GPTBot", "ClaudeBot", "CCBot", "Google-Extended", "Applebot-Extended",
        "meta-externalagent", "Bytespider", "PerplexityBot", "cohere-ai", "Amazonbot",
    ]  # fmt: skip
    assert set(required) <= set(AI_CRAWLERS)
    for crawler in required:
        assert not robots.can_fetch(crawler, WEB_URL + "ipfs/bafk"), crawler
        assert not robots.can_fetch(crawler, WEB_URL), crawler
    for engine in ("Googlebot", "Bingbot", "DuckDuckBot", "Applebot"):
        assert robots.can_fetch(engine, WEB_URL + "feed.rss"), engine
    assert "Content-Usage: train-ai=n, ai-use=n" in text


async def test_tdmrep_json(client: Client) -> None:
    response = await client.get("/.well-known/tdmrep.json")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await response.json() == [
        {"location": "/", "tdm-reservation": 1, "tdm-policy": WEB_URL + "terms/tdm-policy.json"}
    ]


async def test_ai_txt_in_spawning_format(client: Client) -> None:
    text = await (await client.get("/ai.txt")).text()
    lines = text.splitlines()
    assert lines[0] == "# Spawning AI"
    assert "User-Agent: *" in lines
    for extension in ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff", "png", "jpg"):
        assert f"Disallow: *.{extension}" in lines
    assert "Disallow: /" in lines


async def test_tdm_policy_is_a_tdmrep_odrl_offer(
    aiohttp_client: ClientFactory, published_data_dir: Path
) -> None:
    write_node_config(published_data_dir, node__contact="licensing@ada.example")
    client = await aiohttp_client(create_app(published_data_dir))
    response = await client.get("/terms/tdm-policy.json")
    assert response.headers["Content-Type"] == "application/ld+json; charset=utf-8"
    policy = json.loads(await response.read())
    assert policy["@context"] == [
        "http://www.w3.org/ns/odrl.jsonld",
        {"tdm": "http://www.w3.org/ns/tdmrep#"},
    ]
    assert policy["@type"] == "Offer"
    assert policy["profile"] == "http://www.w3.org/ns/tdmrep"
    assert policy["uid"] == WEB_URL + "terms/tdm-policy.json"
    assert policy["assigner"] == {
        "uid": WEB_URL,
        "vcard:fn": WEB_ARTIST,
        "vcard:hasEmail": "mailto:licensing@ada.example",
        "vcard:hasURL": WEB_URL + "terms",
    }
    assert policy["permission"] == [
        {"target": WEB_URL, "action": "tdm:mine", "duty": [{"action": "obtainConsent"}]}
    ]


async def test_configured_tdm_policy_url_is_announced(
    aiohttp_client: ClientFactory, published_data_dir: Path
) -> None:
    write_node_config(published_data_dir, terms__tdm_policy="https://ada.example/licensing")
    client = await aiohttp_client(create_app(published_data_dir))
    response = await client.get("/feed.json")
    assert response.headers["tdm-policy"] == "https://ada.example/licensing"
    rules = await (await client.get("/.well-known/tdmrep.json")).json()
    assert rules[0]["tdm-policy"] == "https://ada.example/licensing"


def test_meta_tags_for_pages() -> None:
    from node.terms import Terms
    from node.web.signals import meta_tags

    assert meta_tags(Terms(), "https://ada.example/") == [
        ("tdm-reservation", "1"),
        ("tdm-policy", "https://ada.example/terms/tdm-policy.json"),
        ("robots", "noai, noimageai"),
        ("content-usage", "train-ai=n, ai-use=n"),
    ]
    allowed = Terms(tdm_reservation=0, data_mining=dict.fromkeys(Terms().data_mining, "allowed"))
    assert meta_tags(allowed, "https://ada.example/") == []


# --- errors -------------------------------------------------------------------------------------


async def test_api_errors_are_json(client: Client) -> None:
    response = await client.get("/api/no-such-thing")
    assert response.status == 404
    assert await response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_browsers_get_an_html_error_page(client: Client) -> None:
    response = await client.get("/no/such/page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>404 Not Found</h1>" in await response.text()


async def test_other_clients_get_plain_text_errors(client: Client) -> None:
    response = await client.get("/ipfs/not-a-cid")
    assert response.status == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = await response.text()
    assert "not-a-cid" in text and text[-1] == "\n" and text.count("\n") == 1


async def test_method_not_allowed_keeps_allow(client: Client) -> None:
    response = await client.post("/feed.json")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (TrackNotFound("track x: no such track"), 404, "track_not_found"),
        (ContentNotFound("bafk: not in the content store"), 404, "content_not_found"),
        (InvalidCID("nope: not a CID"), 400, "invalid_cid"),
        (UsageError("--title: must not be empty"), 400, "bad_request"),
        (UnsupportedMedia("x.txt: not audio"), 415, "unsupported_media"),
        (VerificationError("bad signature"), 422, "verification_failed"),
        (KuboError("/secret/path: refused"), 502, "upstream_failed"),
        (StoreError("/secret/path: disk full"), 500, "internal_error"),
        (CatalogError("/secret/path: locked"), 500, "internal_error"),
        (StaveError("/secret/path: broken"), 500, "internal_error"),
        (RuntimeError("/secret/path: a bug"), 500, "internal_error"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_errors_are_mapped_in_one_place(
    aiohttp_client: ClientFactory,
    published_data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
    code: str,
) -> None:
    app = create_app(published_data_dir)

    async def failing(request: web.Request) -> web.Response:
        raise error

    app.router.add_get("/api/failing", failing)
    app.router.add_get("/failing", failing)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="node.web.errors"):
        response = await client.get("/api/failing")
        plain = await client.get("/failing", headers={"Accept": "text/html"})
    assert response.status == plain.status == status
    document = await response.json()
    assert document["error"]["code"] == code
    page = await plain.text()
    for body in (json.dumps(document), page):
        assert "Traceback" not in body
    if status >= 500:
        assert "/secret/path" not in json.dumps(document) + page
        assert document["error"]["message"] in ("Internal Server Error", "Bad Gateway")
        causes = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
        assert len(causes) == 2
    else:
        assert document["error"]["message"] == str(error)
        assert not caplog.records


# --- metrics and health -------------------------------------------------------------------------


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def test_metrics_count_requests_bytes_tracks_and_follows(client: Client) -> None:
    _, stored = await stored_feed(client)
    for _ in range(3):
        await client.get("/feed.json", headers=IDENTITY)
    await client.get("/no/such/page")
    cid = await _some_cid(client)
    car = await (await client.get(f"/ipfs/{cid}?format=car")).read()
    response = await client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    samples = _samples(text)
    assert samples['stave_http_requests_total{route="/feed.json",method="GET",status="200"}'] == 3
    assert samples['stave_http_requests_total{route="unmatched",method="GET",status="404"}'] == 1
    assert samples['stave_http_response_bytes_total{route="/feed.json"}'] == 3 * len(stored)
    car_bytes = samples['stave_http_response_bytes_total{route="/ipfs/{cid}"}']
    assert car_bytes == len(car)
    assert samples["stave_tracks"] == len(AUDIO_FIXTURES)
    assert samples["stave_follows"] == 0
    assert samples["stave_feed_sequence"] == 1
    assert "# TYPE stave_http_requests_total counter" in text


async def test_metrics_gauges_can_be_fed_by_other_modules(client: Client) -> None:
    client.server.app[METRICS].set_gauge("stave_follows", "Artists followed.", lambda: 12)
    samples = _samples(await (await client.get("/metrics")).text())
    assert samples["stave_follows"] == 12


async def test_store_is_closed_when_the_app_stops(
    aiohttp_client: ClientFactory, published_data_dir: Path
) -> None:
    client = await aiohttp_client(create_app(published_data_dir))
    store: Store = client.server.app[NODE].store
    await client.close()
    with pytest.raises(Exception, match="closed"):
        store.block("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")

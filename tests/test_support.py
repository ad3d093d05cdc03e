"""Support from listeners: the `[support]` settings, the feed's `support` member, Podcasting 2.0
`podcast:funding` / `podcast:value` and `podcast:license` in RSS, and the artist page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

import feedparser
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.errors import ConfigError
from node.feed import FollowState, judge_feed
from node.publish import TrackChoices
from node.settings import Config, parse_config
from node.support import DEFAULT_LABEL, Support
from node.web.app import create_app
from node.web.rss import PODCAST
from node.web.state import NODE, PUBLISHER
from tests.support.node import WEB_ARTIST, WEB_URL, write_node_config
from tests.support.shared import FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

P = f"{{{PODCAST}}}"
LABEL = 'Buy me a <b>coffee</b> & "thanks"'
URL = "https://ada.example/support?via=stave&x=<y>"
LIGHTNING = "ada.example+tips@getalby.com"


# --- settings ---


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("url", "http://ada.example/support"),
        ("url", "javascript:alert(1)"),
        ("url", "https://"),
        ("url", "https://ada.example/a b"),
        ("url", "https://user:secret@ada.example/"),
        ("url", "https://[::1/"),
        ("url", "https://ada.example/" + "a" * 2000),
        ("label", "two\nlines"),
        ("label", "x" * 129),
        ("lightning_address", "ada"),
        ("lightning_address", "Ada@getalby.com"),
        ("lightning_address", "ada@localhost"),
        ("lightning_address", "ada@@getalby.com"),
        ("lightning_address", "ada @getalby.com"),
        ("lightning_address", "ada@-getalby.com"),
        ("lightning_address", "lightning:ada@getalby.com"),
    ],
)
def test_bad_support_settings_are_refused_by_name(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"config key support\.{key}: "):
        Config({f"support.{key}": value})


def test_a_bad_setting_in_config_toml_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"config key support\.lightning_address: must be a Li"):
        parse_config('[support]\nlightning_address = "ada@example"\n')


def test_a_non_string_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"config key support\.url: must be a str"):
        parse_config("[support]\nurl = 1\n")


def test_good_support_settings_are_taken() -> None:
    config = parse_config(
        f'[support]\nurl = "https://ada.example/tip"\nlabel = "Tip jar"\n'
        f'lightning_address = "{LIGHTNING}"\n'
    )
    support = Support.from_config(config)
    assert support == Support(url="https://ada.example/tip", label="Tip jar", lightning=LIGHTNING)
    assert support.to_json() == {
        "url": "https://ada.example/tip",
        "label": "Tip jar",
        "lightning": LIGHTNING,
    }
    assert Support.from_config(Config()) is None  # nothing is set by default
    only_ln = Support.from_config(Config({"support.lightning_address": LIGHTNING}))
    assert only_ln is not None and only_ln.to_json() == {"lightning": LIGHTNING}
    blank = Support.from_config(Config({"support.url": URL, "support.label": "  "}))
    assert blank is not None and blank.label == DEFAULT_LABEL


@pytest.mark.parametrize(
    "member",
    [
        None,
        "https://ada.example/",
        [],
        {},
        {"label": "Tip"},
        {"url": "http://ada.example/"},
        {"url": 5},
        {"lightning": "not an address"},
        {"url": "", "lightning": ""},
    ],
)
def test_a_malformed_feed_member_is_ignored(member: object) -> None:
    assert Support.from_json(member) is None


def test_a_feed_member_reads_back() -> None:
    support = Support(url=URL, label=LABEL, lightning=LIGHTNING)
    assert Support.from_json(support.to_json()) == support
    assert Support.from_json({"url": URL, "label": 7}) == Support(url=URL)


# --- the node: feed, RSS, artist page ---


@pytest.fixture
async def client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    write_node_config(
        web_data_dir,
        support__url=URL,
        support__label=LABEL,
        support__lightning_address=LIGHTNING,
    )
    client = await aiohttp_client(create_app(web_data_dir))
    await client.server.app[PUBLISHER].publish_feed()  # signed with the new settings
    return client


@pytest.fixture
async def plain_client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    return await aiohttp_client(create_app(web_data_dir))


async def rss(client: Client) -> tuple[bytes, ET.Element]:
    response = await client.get("/feed.rss")
    assert response.status == 200
    body = await response.read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    channel = ET.fromstring(body).find("channel")
    assert channel is not None
    return body, channel


async def test_the_signed_feed_carries_the_support_member(client: Client) -> None:
    response = await client.get("/feed.json")
    body = await response.read()
    node = client.server.app[NODE]
    feed = judge_feed(body, FollowState(artist=node.identity.did), max_bytes=1 << 24)
    assert feed["support"] == {"url": URL, "label": LABEL, "lightning": LIGHTNING}


async def test_rss_has_funding_and_one_lightning_recipient(client: Client) -> None:
    body, channel = await rss(client)
    fundings = channel.findall(f"{P}funding")
    assert [(f.get("url"), f.text) for f in fundings] == [(URL, LABEL)]
    values = channel.findall(f"{P}value")
    assert len(values) == 1
    assert values[0].attrib == {"type": "lightning", "method": "lnaddress"}
    recipients = values[0].findall(f"{P}valueRecipient")
    assert [r.attrib for r in recipients] == [
        {"name": WEB_ARTIST, "type": "lnaddress", "address": LIGHTNING, "split": "100"}
    ]
    # escaped in the document, never markup
    assert b"<b>" not in body and b"&lt;b&gt;coffee&lt;/b&gt; &amp;" in body
    assert b"via=stave&amp;x=&lt;y&gt;" in body


async def test_lightning_alone_gives_value_without_funding(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(web_data_dir, support__lightning_address=LIGHTNING)
    client = await aiohttp_client(create_app(web_data_dir))
    await client.server.app[PUBLISHER].publish_feed()
    _, channel = await rss(client)
    assert channel.findall(f"{P}funding") == []
    assert [v.get("method") for v in channel.findall(f"{P}value")] == ["lnaddress"]
    feed = await (await client.get("/feed.json")).json()
    assert feed["support"] == {"lightning": LIGHTNING}


async def test_nothing_of_support_when_unset(plain_client: Client) -> None:
    _, channel = await rss(plain_client)
    assert channel.findall(f"{P}funding") == []
    assert channel.findall(f"{P}value") == []
    feed = await (await plain_client.get("/feed.json")).json()
    assert "support" not in feed
    page = await (await plain_client.get("/", headers={"Accept": "text/html"})).text()
    assert "support-heading" not in page and "lightning:" not in page


async def test_each_item_has_its_tracks_licence(plain_client: Client) -> None:
    publisher = plain_client.server.app[PUBLISHER]
    cc = await publisher.add(FIXTURES / "tone.mp3", TrackChoices(title="Open", license="CC-BY-4.0"))
    arr = await publisher.add(FIXTURES / "tone.wav", TrackChoices(title="Closed"))
    body, channel = await rss(plain_client)
    licences = {item.findtext("guid"): item.find(f"{P}license") for item in channel.findall("item")}
    open_licence, closed_licence = licences[cc["id"]], licences[arr["id"]]
    assert open_licence is not None and closed_licence is not None
    assert open_licence.text == "cc-by-4.0"
    assert open_licence.get("url") == cc["terms"]["licenseUrl"]
    assert open_licence.get("url", "").startswith("https://creativecommons.org/licenses/by/4.0")
    assert closed_licence.text == "all-rights-reserved"
    assert closed_licence.get("url") == WEB_URL + "terms"
    entries = {e.id: e for e in feedparser.parse(body).entries}
    assert entries[cc["id"]].podcast_license == {"url": cc["terms"]["licenseUrl"]}


async def test_the_artist_page_shows_the_link_and_the_address(client: Client) -> None:
    response = await client.get("/", headers={"Accept": "text/html"})
    assert response.status == 200
    page = await response.text()
    assert "support-heading" in page
    assert 'href="https://ada.example/support?via=stave&amp;x=&lt;y&gt;"' in page
    assert "Buy me a &lt;b&gt;coffee&lt;/b&gt; &amp; &#34;thanks&#34;" in page
    assert "<b>coffee</b>" not in page
    assert f'href="lightning:{LIGHTNING}"' in page and f"<code>{LIGHTNING}</code>" in page

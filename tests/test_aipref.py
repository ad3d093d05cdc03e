"""IETF AIPREF: `Content-Usage` (draft-ietf-aipref-attach-05 with the draft-ietf-aipref-vocab-08
labels) on every response and in robots.txt, parsed with an RFC 9651 parser (http-sfv), and
robots.txt read by a real robots.txt parser (protego) with its RSL `License:` line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import http_sfv
from aiohttp import web
from aiohttp.test_utils import TestClient
from protego import Protego

from node.publish import TrackChoices
from node.web import create_app
from node.web.signals import AI_CRAWLERS
from node.web.state import PUBLISHER
from tests.support.node import WEB_URL, write_node_config
from tests.support.shared import AUDIO_FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

VOCAB_LABELS = {"train-ai", "ai-use", "search"}  # vocab-08 §6.1


def preferences(value: str) -> dict[str, str]:
    """A Content-Usage value as vocab-08 §6.5 processes it: label to `y` or `n`."""
    dictionary = http_sfv.Dictionary()
    dictionary.parse(value.encode("ascii"))  # raises on anything that is not a Dictionary
    result = {}
    for label, member in dictionary.items():
        assert label in VOCAB_LABELS, label
        assert isinstance(member.value, http_sfv.Token) and member.value in ("y", "n"), value
        result[label] = str(member.value)
    return result


def content_usage_rules(text: str) -> list[tuple[str, str]]:
    """`(path, value)` of each robots.txt `Content-Usage` rule (attach-05 §3); path "" for none."""
    rules = []
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip().lower() == "content-usage":
            rest = rest.strip()
            path, _, value = rest.partition(" ") if rest.startswith("/") else ("", "", rest)
            rules.append((path, value.strip()))
    return rules


async def published(aiohttp_client: ClientFactory, data_dir: Path) -> tuple[Client, dict, dict]:
    """A node that allows AI training, with one track under its terms and one that refuses."""
    write_node_config(
        data_dir, terms__ai_training="allowed", terms__ai_generative_training="allowed"
    )
    client = await aiohttp_client(create_app(data_dir))
    publisher = client.server.app[PUBLISHER]
    shared = await publisher.add(AUDIO_FIXTURES[0])
    closed = await publisher.add(AUDIO_FIXTURES[0], TrackChoices(ai_training="notAllowed"))
    return client, shared, closed


async def test_every_content_usage_header_parses_and_refuses_ai_by_default(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client = await aiohttp_client(create_app(web_data_dir))
    manifest = await client.server.app[PUBLISHER].add(AUDIO_FIXTURES[0])
    track = manifest["id"].removeprefix("urn:uuid:")
    paths = [
        "/", "/feed.json", "/feed.rss", "/terms", "/robots.txt", "/license.xml",
        f"/tracks/{track}", f"/ipfs/{manifest['audio']['cid']}", "/no-such-page",
    ]  # fmt: skip
    for path in paths:
        response = await client.get(path)
        assert preferences(response.headers["Content-Usage"]) == {
            "train-ai": "n",
            "ai-use": "n",
        }, path


async def test_ipfs_of_a_track_says_that_tracks_terms(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client, shared, closed = await published(aiohttp_client, web_data_dir)
    node_says = {"train-ai": "y", "ai-use": "n"}
    assert preferences((await client.get("/")).headers["Content-Usage"]) == node_says
    response = await client.get(f"/ipfs/{shared['audio']['cid']}")
    assert response.status == 200
    assert preferences(response.headers["Content-Usage"]) == node_says
    response = await client.get(f"/ipfs/{closed['audio']['cid']}", headers={"Range": "bytes=0-9"})
    assert response.status == 206
    assert preferences(response.headers["Content-Usage"]) == {"train-ai": "n", "ai-use": "n"}


async def test_robots_txt_names_the_license_and_states_content_usage(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client = await aiohttp_client(create_app(web_data_dir))
    response = await client.get("/robots.txt")
    assert response.status == 200
    text = await response.text()
    robots = Protego.parse(text)
    for crawler in ("GPTBot", "ClaudeBot", "CCBot", "Google-Extended", "Bytespider"):
        assert crawler in AI_CRAWLERS
        assert not robots.can_fetch(WEB_URL + "ipfs/bafk", crawler), crawler
    for engine in ("Googlebot", "Bingbot", "DuckDuckBot"):
        assert robots.can_fetch(WEB_URL + "feed.rss", engine), engine
    lines = text.splitlines()
    licenses = [line.split(":", 1)[1].strip() for line in lines if line.startswith("License:")]
    assert licenses == [WEB_URL + "license.xml"]
    assert (await client.get("/license.xml")).status == 200
    rules = content_usage_rules(text)
    assert rules == [("", "train-ai=n, ai-use=n")]
    for _, value in rules:
        preferences(value)


async def test_robots_txt_gives_a_track_with_its_own_terms_its_own_rules(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client, shared, closed = await published(aiohttp_client, web_data_dir)
    text = await (await client.get("/robots.txt")).text()
    Protego.parse(text)  # still a robots.txt a crawler reads
    rules = {path: preferences(value) for path, value in content_usage_rules(text)}
    refused = {"train-ai": "n", "ai-use": "n"}
    assert rules[""] == {"train-ai": "y", "ai-use": "n"}
    assert rules[f"/tracks/{closed['id'].removeprefix('urn:uuid:')}"] == refused
    assert rules[f"/ipfs/{closed['audio']['cid']}"] == refused
    assert f"/tracks/{shared['id'].removeprefix('urn:uuid:')}" not in rules

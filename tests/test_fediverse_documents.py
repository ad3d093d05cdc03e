"""What the node serves to the fediverse about itself, on a real node on 127.0.0.1: WebFinger
both ways and its refusals, NodeInfo 2.1, the actor (`Person`) and its content negotiation,
and the followers collection, public and private."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from node.catalog import FediverseFollower
from node.fediverse.documents import AP_MEDIA_TYPE, wants_activitypub
from node.identity import public_key_from_did
from node.web.state import NODE
from tests.support.federation import RunningNode

AP = {"Accept": AP_MEDIA_TYPE}
LD = {"Accept": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'}


@pytest.fixture
async def artist(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await RunningNode.create(tmp_path / "artist", "Ada Example")
    try:
        yield running
    finally:
        await running.stop()


async def fetch(
    url: str, status: int, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers or {}, allow_redirects=False) as response,
    ):
        body = await response.read()
        assert response.status == status, body
        return response, body


async def fetch_json(url: str, headers: dict[str, str] | None = None) -> Any:
    import json

    response, body = await fetch(url, 200, headers)
    return response.content_type, json.loads(body)


def host_of(node: RunningNode) -> str:
    return f"127.0.0.1:{node.port}"


@pytest.mark.parametrize(
    "resource",
    [
        "acct:ada_example@{host}",
        "acct:Ada_Example@{HOST}",
        "acct:@ada_example@{host}",
        "{actor}",
        "{base}",
    ],
    ids=["acct", "acct-mixed-case", "acct-leading-at", "actor-url", "artist-page"],
)
async def test_webfinger_finds_the_actor(artist: RunningNode, resource: str) -> None:
    host = host_of(artist)
    query = resource.format(
        host=host, HOST=host.upper(), actor=artist.url + "actor", base=artist.url
    )
    url = artist.url + ".well-known/webfinger"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params={"resource": query}) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "application/jrd+json"
        jrd = await response.json(content_type=None)
    assert jrd["subject"] == f"acct:ada_example@{host}"
    assert jrd["aliases"] == [artist.url + "actor", artist.url]
    links = {link["rel"]: link for link in jrd["links"]}
    assert links["self"] == {
        "rel": "self",
        "type": "application/activity+json",
        "href": artist.url + "actor",
    }
    assert links["http://webfinger.net/rel/profile-page"]["href"] == artist.url


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("", 400, "resource: missing"),
        ("?resource=", 400, "resource: missing"),
        ("?resource=acct:nobody", 400, "not of the form acct:HANDLE@HOST"),
        ("?resource=ftp://example.org/", 400, "neither an acct: nor an http(s) URL"),
        ("?resource=acct:someone_else@{host}", 404, "no such account here"),
        ("?resource=acct:ada_example@elsewhere.example", 404, "no such account here"),
        ("?resource=http://elsewhere.example/actor", 404, "no such actor here"),
    ],
    ids=["absent", "empty", "no-host", "other-scheme", "other-user", "other-host", "other-url"],
)
async def test_webfinger_refusals(
    artist: RunningNode, query: str, status: int, reason: str
) -> None:
    url = artist.url + ".well-known/webfinger" + query.format(host=host_of(artist))
    _, body = await fetch(url, status)
    text = body.decode()
    assert reason in text and text.count("\n") == 1  # one line, no traceback


async def test_nodeinfo(artist: RunningNode) -> None:
    from node import __version__

    _, links = await fetch_json(artist.url + ".well-known/nodeinfo")
    [link] = links["links"]
    assert link == {
        "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
        "href": artist.url + "nodeinfo/2.1",
    }
    response, _ = await fetch(link["href"], 200)
    assert response.headers["Content-Type"] == (
        'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
    )
    _, info = await fetch_json(link["href"])
    assert info["version"] == "2.1"
    assert info["software"] == {"name": "stave", "version": __version__}
    assert info["protocols"] == ["activitypub"]
    assert info["openRegistrations"] is False
    assert info["usage"]["users"]["total"] == 1
    assert info["usage"]["localPosts"] == 0
    assert info["metadata"]["nodeName"] == "Ada Example"
    assert set(info["services"]) == {"inbound", "outbound"}


@pytest.mark.parametrize("accept", [AP, LD], ids=["activity+json", "ld+json-profile"])
async def test_actor_document(artist: RunningNode, accept: dict[str, str]) -> None:
    response, _ = await fetch(artist.url + "actor", 200, accept)
    assert response.content_type == "application/activity+json"
    assert response.headers["Vary"] == "Accept"
    _, actor = await fetch_json(artist.url + "actor", accept)
    base = artist.url
    assert actor["id"] == base + "actor"
    assert actor["type"] == "Person"
    assert actor["preferredUsername"] == "ada_example"
    assert actor["name"] == "Ada Example"
    assert "Ada Example" in actor["summary"] and "Not for AI training" in actor["summary"]
    assert actor["url"] == base
    assert "icon" not in actor  # a node has no picture yet
    assert actor["inbox"] == base + "actor/inbox"
    assert actor["outbox"] == base + "actor/outbox"
    assert actor["followers"] == base + "actor/followers"
    assert actor["endpoints"] == {"sharedInbox": base + "inbox"}
    assert actor["manuallyApprovesFollowers"] is False and actor["discoverable"] is True
    for context in (
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        "https://w3id.org/security/data-integrity/v1",
    ):
        assert context in actor["@context"]

    key = actor["publicKey"]
    assert key["id"] == base + "actor#main-key" and key["owner"] == base + "actor"
    public = serialization.load_pem_public_key(key["publicKeyPem"].encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    expected = artist.node.actor_key.private_key.public_key().public_numbers()
    assert public.public_numbers() == expected

    [multikey] = actor["assertionMethod"]
    assert multikey["id"] == base + "actor#ed25519-key"
    assert multikey["type"] == "Multikey" and multikey["controller"] == base + "actor"
    did = artist.did
    assert "did:key:" + multikey["publicKeyMultibase"] == did
    assert public_key_from_did("did:key:" + multikey["publicKeyMultibase"]) is not None
    assert actor["alsoKnownAs"] == [did]
    assert {"type": "PropertyValue", "name": "Stave identity", "value": did} in actor["attachment"]


@pytest.mark.parametrize(
    "accept",
    ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "*/*", ""],
    ids=["browser", "anything", "none"],
)
async def test_actor_for_a_browser_is_the_artist_page(artist: RunningNode, accept: str) -> None:
    response, _ = await fetch(artist.url + "actor", 303, {"Accept": accept} if accept else {})
    assert response.headers["Location"] == artist.url
    assert response.headers["Vary"] == "Accept"
    async with (
        aiohttp.ClientSession() as session,
        session.get(artist.url + "actor", headers={"Accept": "text/html"}) as page,
    ):
        assert page.status == 200 and page.content_type == "text/html"
        text = await page.text()
    assert f"@ada_example@{host_of(artist)}" in text and "from Mastodon" in text


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("application/activity+json", True),
        ('application/ld+json; profile="https://www.w3.org/ns/activitystreams"', True),
        ("application/ld+json", True),
        ('application/ld+json; profile="https://example.org/other"', False),
        ("text/html, application/activity+json;q=0", False),
        ("application/json", False),
        ("text/html", False),
    ],
)
def test_accept_negotiation(accept: str, wanted: bool) -> None:
    assert wants_activitypub(accept) is wanted


async def add_followers(node: RunningNode, count: int) -> list[str]:
    actors = [f"https://social{i % 3}.example/users/f{i:03d}" for i in range(count)]
    async with node.node.catalog.transaction() as tx:
        for actor in actors:
            host = actor.split("/")[2]
            await tx.add_fediverse_follower(
                FediverseFollower(
                    actor=actor,
                    inbox=actor + "/inbox",
                    shared_inbox=f"https://{host}/inbox",
                    domain=host,
                    acct=None,
                    follow_id=None,
                    followed_at="2026-01-01T00:00:00Z",
                )
            )
    return sorted(actors)


async def test_followers_collection_pages(artist: RunningNode) -> None:
    actors = await add_followers(artist, 120)
    _, collection = await fetch_json(artist.url + "actor/followers", AP)
    assert collection["type"] == "OrderedCollection"
    assert collection["id"] == artist.url + "actor/followers"
    assert collection["totalItems"] == 120
    listed: list[str] = []
    url = collection["first"]
    pages = 0
    while url:
        _, page = await fetch_json(url, AP)
        assert page["type"] == "OrderedCollectionPage"
        assert page["partOf"] == artist.url + "actor/followers"
        assert page["totalItems"] == 120
        listed += page["orderedItems"]
        url = page.get("next")
        pages += 1
    assert listed == actors and pages == 3
    _, body = await fetch(artist.url + "actor/followers?page=%%%", 400)
    assert b"not a page of this collection" in body


async def test_followers_private(tmp_path: Path) -> None:
    node = await RunningNode.create(
        tmp_path / "private", "Ada Example", fediverse__followers_private=True
    )
    try:
        await add_followers(node, 5)
        _, collection = await fetch_json(node.url + "actor/followers", AP)
        assert collection["totalItems"] == 5
        _, page = await fetch_json(collection["first"], AP)
        assert page["orderedItems"] == [] and page["totalItems"] == 5
        assert "next" not in page
    finally:
        await node.stop()


async def test_empty_outbox(artist: RunningNode) -> None:
    _, outbox = await fetch_json(artist.url + "actor/outbox", AP)
    assert outbox["type"] == "OrderedCollection" and outbox["totalItems"] == 0
    _, page = await fetch_json(outbox["first"], AP)
    assert page["orderedItems"] == []
    _, body = await fetch(artist.url + "actor/outbox?page=0", 400)
    assert b"page 0" in body


@pytest.mark.parametrize("path", ["actor/inbox", "inbox"])
async def test_inbox_routes_refuse_without_changing_anything(
    artist: RunningNode, path: str
) -> None:
    actors = await add_followers(artist, 2)
    follow = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://127.0.0.1:9/follows/1",
        "type": "Follow",
        "actor": "http://127.0.0.1:9/users/mallory",
        "object": artist.url + "actor",
    }
    headers = {"Content-Type": "application/activity+json"}
    async with aiohttp.ClientSession() as session:
        big = b"{" + b" " * (256 * 1024) + b"}"
        async with session.post(artist.url + path, data=big, headers=headers) as response:
            assert response.status == 413
            text = await response.text()
            assert "larger than the inbox's limit" in text and text.count("\n") == 1
        async with session.post(artist.url + path, json=follow, headers=headers) as response:
            # helper B's inbox decides the reason (no digest, no signature): a one-line 4xx
            assert response.status in (400, 401)
            assert (await response.text()).count("\n") == 1
    listed = [f.actor for f in await artist.node.catalog.fediverse_followers()]
    assert listed == actors


async def test_admin_followers_page(aiohttp_client: Any, web_data_dir: Path) -> None:
    from tests.test_admin_pages import client_of, log_in
    from tests.test_web_pages import make_app

    client = await client_of(make_app(web_data_dir), aiohttp_client)
    admin, _ = await log_in(client, web_data_dir)
    catalog = client.server.app[NODE].catalog  # type: ignore[attr-defined]
    async with catalog.transaction() as tx:
        for host, name in (("one.example", "ann"), ("two.example", "ben"), ("x.two.example", "cy")):
            await tx.add_fediverse_follower(
                FediverseFollower(
                    actor=f"https://{host}/users/{name}",
                    inbox=f"https://{host}/users/{name}/inbox",
                    shared_inbox=None,
                    domain=host,
                    acct=f"{name}@{host}",
                    follow_id=None,
                    followed_at="2026-01-01T00:00:00Z",
                )
            )
    page = await admin.get("/admin/followers")
    assert "@ann@one.example" in page.words and "@cy@x.two.example" in page.words
    await admin.post("/admin/followers/remove", actor="https://one.example/users/ann")
    assert await admin.notices("/admin/followers") == ["Removed ann@one.example."]
    await admin.post("/admin/followers/block", domain="Two.Example")
    assert await admin.notices("/admin/followers") == [
        "Blocked two.example: 2 follower(s) removed."
    ]
    assert await catalog.fediverse_followers() == []
    assert await catalog.blocked_domains() == ["two.example"]
    await admin.post("/admin/followers/remove", actor="https://nobody.example/users/x")
    [notice] = await admin.notices("/admin/followers")
    assert "is not a follower" in notice
    # A form without the session's CSRF token changes nothing.
    await admin.post("/admin/followers/unblock", status=403, csrf="wrong", domain="two.example")
    assert await catalog.blocked_domains() == ["two.example"]
    await admin.post("/admin/followers/unblock", domain="two.example")
    assert await catalog.blocked_domains() == []

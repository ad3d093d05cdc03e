"""The inbox (node/fediverse/inbox.py) and signed fetches of remote actors (remote.py): real
remote actors served by an aiohttp server on 127.0.0.1, requests signed by Python code in
both schemes (draft-cavage rsa-sha256 and hs2019, RFC 9421 rsa-v1_5-sha256 and ed25519), a
real catalog. Every refusal shows its status, its reason, and that nothing changed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from node.cid.multibase import base58_encode
from node.errors import FederationError
from node.federation.context import Federation
from node.fediverse import httpsig
from node.fediverse.inbox import InboxResult, InboxService
from node.fediverse.remote import RemoteActors
from tests.support.federation import RunningNode, eventually, follower_federation
from tests.support.net import loopback_socket, serving

SCHEMES = ["cavage-rsa-sha256", "cavage-hs2019", "rfc9421-rsa-v1_5-sha256", "rfc9421-ed25519"]


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _multibase(key: ed25519.Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58_encode(b"\xed\x01" + raw)


@dataclass
class RemoteActor:
    """One actor on the remote server, with its RSA key and FEP-521a Ed25519 key."""

    name: str
    base: str
    rsa_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(65537, 2048)
    )
    ed_key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.base}users/{self.name}"

    def document(self) -> dict[str, Any]:
        document = {
            "@context": ["https://www.w3.org/ns/activitystreams"],
            "id": self.id,
            "type": "Person",
            "preferredUsername": self.name,
            "inbox": self.id + "/inbox",
            "endpoints": {"sharedInbox": self.base + "inbox"},
            "publicKey": {
                "id": self.id + "#main-key",
                "owner": self.id,
                "publicKeyPem": _pem(self.rsa_key),
            },
            "assertionMethod": [
                {
                    "id": self.id + "#ed25519-key",
                    "type": "Multikey",
                    "controller": self.id,
                    "publicKeyMultibase": _multibase(self.ed_key),
                }
            ],
        }
        document.update(self.overrides)
        return document


@dataclass
class RemoteServer:
    """A fediverse server on 127.0.0.1: its actors, the GETs it received, actors it deleted."""

    base: str
    actors: dict[str, RemoteActor] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    fetches: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    delivered: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def add(self, name: str, **overrides: Any) -> RemoteActor:
        actor = self.actors[name] = RemoteActor(name, self.base, overrides=overrides)
        return actor


@pytest.fixture
async def remote() -> AsyncIterator[RemoteServer]:
    sock = loopback_socket()
    server = RemoteServer(f"http://127.0.0.1:{sock.getsockname()[1]}/")

    async def actor(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        server.fetches.append((str(request.url), dict(request.headers)))
        if name in server.gone:
            return web.Response(status=410)
        if name not in server.actors:
            return web.Response(status=404)
        body = json.dumps(server.actors[name].document())
        return web.Response(text=body, content_type="application/activity+json")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/users/{request.match_info['name']}")

    async def inbox(request: web.Request) -> web.Response:
        server.delivered.append((str(request.url), dict(request.headers), await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_get("/users/{name}", actor)
    app.router.add_post("/users/{name}/inbox", inbox)
    app.router.add_get("/moved/{name}", moved)
    async with serving(app, sock):
        yield server


@dataclass
class Inbox:
    federation: Federation
    service: InboxService
    woken: list[int]

    @property
    def url(self) -> str:
        return self.service.urls.inbox

    @property
    def actor(self) -> str:
        return self.service.urls.actor


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    async with follower_federation(tmp_path) as federation:
        woken: list[int] = []
        service = InboxService(federation, on_queued=lambda: woken.append(1))
        yield Inbox(federation, service, woken)


def sign(
    scheme: str,
    actor: RemoteActor,
    activity: dict[str, Any],
    url: str,
    *,
    now: float | None = None,
    key_id: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The headers and body of a POST of `activity` to `url` signed by `actor` in `scheme`."""
    body = json.dumps(activity).encode()
    headers = {"Content-Type": "application/activity+json"}
    if scheme.startswith("cavage"):
        kid = key_id or actor.id + "#main-key"
        headers.update(httpsig.sign_cavage("POST", url, headers, body, kid, actor.rsa_key, now=now))
        if scheme == "cavage-hs2019":
            headers["Signature"] = headers["Signature"].replace('"rsa-sha256"', '"hs2019"')
    elif scheme == "rfc9421-rsa-v1_5-sha256":
        kid = key_id or actor.id + "#main-key"
        headers.update(
            httpsig.sign_rfc9421("POST", url, headers, body, kid, actor.rsa_key, now=now)
        )
    else:
        kid = key_id or actor.id + "#ed25519-key"
        headers.update(httpsig.sign_rfc9421("POST", url, headers, body, kid, actor.ed_key, now=now))
    return headers, body


def follow_of(actor: RemoteActor, target: str, number: int = 1) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor.id}/follows/{number}",
        "type": "Follow",
        "actor": actor.id,
        "object": target,
    }


async def post(inbox: Inbox, headers: dict[str, str], body: bytes) -> InboxResult:
    return await inbox.service.receive("POST", inbox.url, headers, body, "127.0.0.1")


async def state(inbox: Inbox) -> tuple[list[Any], list[Any]]:
    catalog = inbox.federation.catalog
    return await catalog.fediverse_followers(), await catalog.deliveries()


# ---- following ----


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_follow_records_the_follower_and_queues_an_accept(
    inbox: Inbox, remote: RemoteServer, scheme: str
) -> None:
    alice = remote.add("alice")
    follow = follow_of(alice, inbox.actor)
    result = await post(inbox, *sign(scheme, alice, follow, inbox.url))
    assert result == InboxResult(202, "'alice@127.0.0.1' follows; Accept queued")
    follower = await inbox.federation.catalog.fediverse_follower(alice.id)
    assert follower is not None
    assert (follower.inbox, follower.shared_inbox) == (alice.id + "/inbox", remote.base + "inbox")
    assert (follower.domain, follower.acct, follower.follow_id) == (
        "127.0.0.1",
        "alice@127.0.0.1",
        follow["id"],
    )
    [delivery] = await inbox.federation.catalog.deliveries()
    accept = json.loads(delivery.body)
    assert delivery.inbox == alice.id + "/inbox"
    assert accept["type"] == "Accept"
    assert accept["actor"] == inbox.actor
    assert accept["object"] == follow
    assert accept["id"].startswith(inbox.service.urls.base + "activities/")
    assert delivery.activity_id == accept["id"]
    assert inbox.woken == [1]


async def test_the_shared_inbox_url_is_accepted_too(inbox: Inbox, remote: RemoteServer) -> None:
    alice = remote.add("alice")
    shared = inbox.service.urls.shared_inbox
    headers, body = sign("rfc9421-ed25519", alice, follow_of(alice, inbox.actor), shared)
    result = await inbox.service.receive("POST", shared, headers, body, "127.0.0.1")
    assert result.status == 202


async def _followed(inbox: Inbox, remote: RemoteServer, name: str = "alice") -> RemoteActor:
    actor = remote.add(name)
    result = await post(
        inbox, *sign("cavage-rsa-sha256", actor, follow_of(actor, inbox.actor), inbox.url)
    )
    assert result.status == 202
    return actor


async def test_undo_of_the_follow_removes_the_follower(inbox: Inbox, remote: RemoteServer) -> None:
    alice = await _followed(inbox, remote)
    undo = {
        "id": alice.id + "#undo",
        "type": "Undo",
        "actor": alice.id,
        "object": follow_of(alice, inbox.actor),
    }
    result = await post(inbox, *sign("rfc9421-rsa-v1_5-sha256", alice, undo, inbox.url))
    assert result == InboxResult(
        202, "'https://…' no longer follows".replace("'https://…'", repr(alice.id))
    )
    assert await inbox.federation.catalog.fediverse_followers() == []


async def test_undo_by_follow_id_removes_the_follower(inbox: Inbox, remote: RemoteServer) -> None:
    alice = await _followed(inbox, remote)
    undo = {"type": "Undo", "actor": alice.id, "object": alice.id + "/follows/1"}
    assert (await post(inbox, *sign("cavage-hs2019", alice, undo, inbox.url))).status == 202
    assert await inbox.federation.catalog.fediverse_followers() == []


async def test_undo_of_another_actors_follow_removes_nothing(
    inbox: Inbox, remote: RemoteServer
) -> None:
    alice = await _followed(inbox, remote)
    mallory = remote.add("mallory")
    undo = {"type": "Undo", "actor": mallory.id, "object": follow_of(alice, inbox.actor)}
    result = await post(inbox, *sign("cavage-rsa-sha256", mallory, undo, inbox.url))
    assert result == InboxResult(202, "accepted; the Follow undone is not the actor's own")
    assert [f.actor for f in await inbox.federation.catalog.fediverse_followers()] == [alice.id]


async def test_delete_of_a_following_actor_removes_it(inbox: Inbox, remote: RemoteServer) -> None:
    alice = await _followed(inbox, remote)
    delete = {"type": "Delete", "actor": alice.id, "object": alice.id}
    assert (await post(inbox, *sign("rfc9421-ed25519", alice, delete, inbox.url))).status == 202
    assert await inbox.federation.catalog.fediverse_followers() == []


async def test_delete_by_an_actor_whose_key_is_gone_removes_it(
    inbox: Inbox, remote: RemoteServer
) -> None:
    """Mastodon signs an account's Delete with the account's key, which is gone (410) by the time
    it arrives: the node's own fetch of the actor answering 410 is the proof."""
    alice = await _followed(inbox, remote)
    inbox.service.remote.forget(alice.id)
    remote.gone.add("alice")
    delete = {"type": "Delete", "actor": alice.id, "object": alice.id}
    result = await post(inbox, *sign("cavage-rsa-sha256", alice, delete, inbox.url))
    assert result.status == 202 and "was deleted" in result.message
    assert await inbox.federation.catalog.fediverse_followers() == []


async def test_a_gone_key_never_adds_a_follower(inbox: Inbox, remote: RemoteServer) -> None:
    alice = remote.add("alice")
    remote.gone.add("alice")
    before = await state(inbox)
    result = await post(
        inbox, *sign("cavage-rsa-sha256", alice, follow_of(alice, inbox.actor), inbox.url)
    )
    assert result.status == 401 and "answered 410" in result.message
    assert await state(inbox) == before


async def test_a_gone_key_on_a_living_actor_removes_nothing(
    inbox: Inbox, remote: RemoteServer
) -> None:
    alice = await _followed(inbox, remote)
    delete = {"type": "Delete", "actor": alice.id, "object": alice.id}
    headers, body = sign(
        "cavage-rsa-sha256", alice, delete, inbox.url, key_id=remote.base + "users/nobody#k"
    )
    before = await state(inbox)
    result = await post(inbox, headers, body)
    assert result.status == 401 and "answered 404" in result.message
    assert await state(inbox) == before


@pytest.mark.parametrize(
    ("activity", "message"),
    [
        (lambda a, me: follow_of(a, "http://elsewhere.example/users/x"), "not of this actor"),
        (lambda a, me: {"type": "Like", "actor": a.id, "object": me}, "'Like' is ignored"),
        (
            lambda a, me: {"type": "Delete", "actor": a.id, "object": a.id + "/notes/1"},
            "only a Delete",
        ),
        (lambda a, me: {"type": "Undo", "actor": a.id, "object": {"type": "Like"}}, "only an Undo"),
    ],
    ids=["follow-of-another", "like", "delete-of-a-note", "undo-of-a-like"],
)
async def test_other_activities_are_accepted_and_ignored(
    inbox: Inbox,
    remote: RemoteServer,
    activity: Callable[[RemoteActor, str], dict[str, Any]],
    message: str,
) -> None:
    alice = remote.add("alice")
    before = await state(inbox)
    result = await post(
        inbox, *sign("cavage-rsa-sha256", alice, activity(alice, inbox.actor), inbox.url)
    )
    assert result.status == 202 and message in result.message
    assert await state(inbox) == before
    assert inbox.woken == []


# ---- refusals: status, reason, nothing changed ----


async def _refused(
    inbox: Inbox, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    before = await state(inbox)
    result = await post(inbox, headers, body)
    assert result.status == status, result
    assert reason in result.message, result
    assert "\n" not in result.message
    assert await state(inbox) == before
    assert inbox.woken == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff not json", "the body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"actor": "http://127.0.0.1/users/a"}', "has no type"),
        (b'{"type": "Follow"}', "has no http(s) actor"),
        (b'{"type": "Follow", "actor": "ftp://127.0.0.1/a"}', "has no http(s) actor"),
    ],
    ids=["not-json", "not-object", "no-type", "no-actor", "not-http-actor"],
)
async def test_malformed_bodies_are_refused(inbox: Inbox, body: bytes, reason: str) -> None:
    await _refused(inbox, {"Digest": "SHA-256=x"}, body, 400, reason)


async def test_a_body_over_the_limit_is_refused(inbox: Inbox) -> None:
    await _refused(inbox, {}, b" " * (256 * 1024 + 1), 413, "over 262144 bytes")


async def test_a_blocked_host_is_refused(inbox: Inbox, remote: RemoteServer) -> None:
    alice = remote.add("alice")
    async with inbox.federation.transaction() as tx:
        await tx.block_domain("127.0.0.1")
    headers, body = sign("cavage-rsa-sha256", alice, follow_of(alice, inbox.actor), inbox.url)
    await _refused(inbox, headers, body, 403, "127.0.0.1 is blocked")
    assert remote.fetches == []


async def test_the_per_host_rate_limit(tmp_path: Path, remote: RemoteServer) -> None:
    async with follower_federation(tmp_path) as federation:
        service = InboxService(federation, max_requests_per_minute=2)
        inbox = Inbox(federation, service, [])
        alice = remote.add("alice")
        for number in range(2):
            like = {"id": f"{alice.id}/likes/{number}", "type": "Like", "actor": alice.id}
            assert (
                await post(inbox, *sign("cavage-rsa-sha256", alice, like, inbox.url))
            ).status == 202
        headers, body = sign("cavage-rsa-sha256", alice, follow_of(alice, inbox.actor), inbox.url)
        await _refused(
            inbox, headers, body, 429, "too many requests from 127.0.0.1: at most 2 a minute"
        )


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_no_signature_is_refused(inbox: Inbox, remote: RemoteServer, scheme: str) -> None:
    alice = remote.add("alice")
    headers, body = sign(scheme, alice, follow_of(alice, inbox.actor), inbox.url)
    for name in ("Signature", "Signature-Input", "Digest", "Content-Digest"):
        headers.pop(name, None)
    await _refused(inbox, headers, body, 401, "no signature")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_no_digest_is_refused(inbox: Inbox, remote: RemoteServer, scheme: str) -> None:
    alice = remote.add("alice")
    headers, body = sign(scheme, alice, follow_of(alice, inbox.actor), inbox.url)
    headers.pop("Digest", None)
    headers.pop("Content-Digest", None)
    await _refused(inbox, headers, body, 400, "no Digest or Content-Digest header")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_digest_that_does_not_match_is_refused(
    inbox: Inbox, remote: RemoteServer, scheme: str
) -> None:
    alice = remote.add("alice")
    headers, _body = sign(scheme, alice, follow_of(alice, inbox.actor), inbox.url)
    other = json.dumps(follow_of(alice, inbox.actor, 2)).encode()
    await _refused(inbox, headers, other, 400, "does not match the body")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_tampered_signature_is_refused(
    inbox: Inbox, remote: RemoteServer, scheme: str
) -> None:
    alice = remote.add("alice")
    headers, body = sign(scheme, alice, follow_of(alice, inbox.actor), inbox.url)
    # Signed for another URL: the signature no longer matches this request.
    other_headers, _ = sign(scheme, alice, follow_of(alice, inbox.actor), inbox.url + "x")
    headers["Signature"] = other_headers["Signature"]
    await _refused(inbox, headers, body, 401, "the signature does not verify")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_outside_the_window_is_refused(
    inbox: Inbox, remote: RemoteServer, scheme: str
) -> None:
    alice = remote.add("alice")
    headers, body = sign(
        scheme, alice, follow_of(alice, inbox.actor), inbox.url, now=time.time() - 400
    )
    await _refused(inbox, headers, body, 401, "outside the 300 s window")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_replay_is_refused(inbox: Inbox, remote: RemoteServer, scheme: str) -> None:
    alice = remote.add("alice")
    headers, body = sign(scheme, alice, follow_of(alice, inbox.actor), inbox.url)
    assert (await post(inbox, headers, body)).status == 202
    inbox.woken.clear()
    await _refused(inbox, headers, body, 401, "already used (a replay)")


async def test_a_key_of_another_actor_is_refused(inbox: Inbox, remote: RemoteServer) -> None:
    alice, mallory = remote.add("alice"), remote.add("mallory")
    # Mallory signs, with her own key, a Follow that claims to be Alice's.
    headers, body = sign("cavage-rsa-sha256", mallory, follow_of(alice, inbox.actor), inbox.url)
    await _refused(inbox, headers, body, 401, "belongs to 'http")


async def test_a_key_that_cannot_be_fetched_is_refused(inbox: Inbox, remote: RemoteServer) -> None:
    alice = remote.add("alice")
    follow = follow_of(alice, inbox.actor)
    headers, body = sign(
        "cavage-rsa-sha256", alice, follow, inbox.url, key_id="http://127.0.0.1:9/k"
    )
    await _refused(inbox, headers, body, 401, "cannot be fetched")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"id": "http://127.0.0.1:9/users/someone"}, "the document's id is"),
        ({"inbox": "ftp://127.0.0.1/inbox"}, "has no http(s) inbox"),
        (
            {"publicKey": {"id": "K", "owner": "http://127.0.0.1:9/x", "publicKeyPem": "x"}},
            "owner is not",
        ),
        ({"publicKey": []}, "has no such key"),
    ],
    ids=["id-mismatch", "inbox-not-http", "owner-mismatch", "no-key"],
)
async def test_an_actor_document_that_does_not_hold_up_is_refused(
    inbox: Inbox, remote: RemoteServer, overrides: dict[str, Any], reason: str
) -> None:
    alice = remote.add("alice", **overrides)
    headers, body = sign("cavage-rsa-sha256", alice, follow_of(alice, inbox.actor), inbox.url)
    await _refused(inbox, headers, body, 401, reason)


# ---- signed fetches and the cache ----


async def test_actor_fetches_are_signed_with_the_actor_key(
    inbox: Inbox, remote: RemoteServer
) -> None:
    await _followed(inbox, remote)
    [(url, headers)] = remote.fetches
    assert headers["Accept"].startswith("application/activity+json")
    node = inbox.federation.node
    verified = httpsig.verify_request(
        "GET", url, headers, b"", node.actor_key.private_key.public_key()
    )
    assert verified.key_id == inbox.service.urls.main_key
    assert verified.covered == ("(request-target)", "host", "date")


async def test_keys_are_cached_and_refetched_when_the_key_rotated(
    inbox: Inbox, remote: RemoteServer
) -> None:
    alice = remote.add("alice")
    for number in range(4):
        if number == 3:
            alice.rsa_key = rsa.generate_private_key(65537, 2048)
        like = {
            "id": f"{alice.id}/likes/{number}",
            "type": "Like",
            "actor": alice.id,
            "object": inbox.actor,
        }
        assert (await post(inbox, *sign("cavage-rsa-sha256", alice, like, inbox.url))).status == 202
        if number == 2:
            assert len(remote.fetches) == 1
    assert len(remote.fetches) == 2


async def test_the_cache_is_bounded_and_expires(inbox: Inbox, remote: RemoteServer) -> None:
    now = [0.0]
    actors = RemoteActors(inbox.federation, max_entries=2, ttl_seconds=60, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        remote.add(name)
        await actors.actor(remote.base + f"users/{name}")
    assert len(actors) == 2
    await actors.actor(remote.base + "users/c")
    assert len(remote.fetches) == 3
    now[0] = 61
    await actors.actor(remote.base + "users/c")
    assert len(remote.fetches) == 4


async def test_a_redirect_is_followed_and_signed_per_hop(
    inbox: Inbox, remote: RemoteServer
) -> None:
    alice = remote.add("alice")
    actor = await inbox.service.remote.actor(remote.base + "moved/alice")
    assert actor.id == alice.id
    assert [url for url, _ in remote.fetches] == [alice.id]


async def test_private_addresses_are_refused_unless_allowed(
    tmp_path: Path, remote: RemoteServer
) -> None:
    from node.federation.http import OutboundClient

    remote.add("alice")
    async with (
        follower_federation(tmp_path) as federation,
        OutboundClient(allow_private=False) as client,
    ):
        guarded = Federation(federation.node, federation.catalog, client)
        with pytest.raises(FederationError, match=r"refused: 127\.0\.0\.1 is a loopback address"):
            await RemoteActors(guarded).actor(remote.base + "users/alice")
    assert remote.fetches == []


# ---- over HTTP, through the node's own routes ----


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningNode]:
    node = await RunningNode.create(tmp_path / "ada", "Ada Example")
    try:
        yield node
    finally:
        await node.stop()


async def _post_http(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.text()


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_follow_over_http_is_accepted_and_the_accept_delivered_signed(
    running: RunningNode, remote: RemoteServer, scheme: str
) -> None:
    alice = remote.add("alice")
    actor, inbox_url = running.url + "actor", running.url + "actor/inbox"
    follow = follow_of(alice, actor)
    headers, body = sign(scheme, alice, follow, inbox_url)
    status, text = await _post_http(inbox_url, headers, body)
    assert (status, text) == (202, "'alice@127.0.0.1' follows; Accept queued\n")
    assert await running.node.catalog.fediverse_follower(alice.id) is not None
    await eventually(lambda: _true(bool(remote.delivered)), what="the Accept")
    [(url, accept_headers, accept_body)] = remote.delivered
    assert url == alice.id + "/inbox"
    accept = json.loads(accept_body)
    assert (accept["type"], accept["actor"], accept["object"]) == ("Accept", actor, follow)
    public_key = running.node.actor_key.private_key.public_key()
    verified = httpsig.verify_request("POST", url, accept_headers, accept_body, public_key)
    assert verified.key_id == running.url + "actor#main-key"


async def _true(value: bool) -> bool:
    return value


async def test_refusals_over_http_carry_status_and_reason(
    running: RunningNode, remote: RemoteServer
) -> None:
    alice = remote.add("alice")
    inbox_url = running.url + "inbox"
    headers, body = sign(
        "cavage-rsa-sha256", alice, follow_of(alice, running.url + "actor"), inbox_url
    )
    unsigned = {k: v for k, v in headers.items() if k != "Signature"}
    assert await _post_http(inbox_url, unsigned, body) == (401, "no signature\n")
    stale_headers, stale_body = sign(
        "rfc9421-ed25519",
        alice,
        follow_of(alice, running.url + "actor"),
        inbox_url,
        now=time.time() - 900,
    )
    status, text = await _post_http(inbox_url, stale_headers, stale_body)
    assert (status, text) == (401, "the signature is outside the 300 s window\n")
    status, _text = await _post_http(inbox_url, headers, b"x" * (256 * 1024 + 1))
    assert status == 413
    assert await running.node.catalog.fediverse_followers() == []
    assert await running.node.catalog.deliveries() == []

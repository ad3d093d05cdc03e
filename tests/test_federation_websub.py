"""WebSub both ways (W3C WebSub; PROTOCOL §7): the hub of a node's own feed — request checks,
intent verification, leases, signed deliveries and retries — and the subscriber — confirming
only its own subscriptions, using only deliveries whose X-Hub-Signature holds."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.datadir import open_node
from node.federation.context import Federation
from node.federation.http import OutboundClient
from node.federation.hub import Hub, SubscriptionRequest, sign_delivery
from node.federation.subscriber import Subscriber, signature_matches
from tests.support.federation import (
    FakeNode,
    RunningNode,
    dump_follow_tables,
    eventually,
    fake_feed,
    fake_node,
    follower_federation,
    make_node_dir,
)
from tests.support.net import loopback_socket, serving
from tests.support.shared import FIXTURES


@dataclass
class Callback:
    """A subscriber's callback endpoint on loopback: echoes challenges (or not), records POSTs."""

    url: str = ""
    echo: bool = True
    on_verify: Any = None  # an async callable run before the challenge is echoed
    statuses: list[int] = field(default_factory=list)  # answers to deliveries, in turn
    verifications: list[dict[str, str]] = field(default_factory=list)
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def callback() -> AsyncIterator[Callback]:
    sock = loopback_socket()
    endpoint = Callback(url=f"http://127.0.0.1:{sock.getsockname()[1]}/callback?me=1")

    async def verify(request: web.Request) -> web.Response:
        endpoint.verifications.append(dict(request.query))
        if endpoint.on_verify is not None:
            await endpoint.on_verify()
        if not endpoint.echo:
            return web.Response(status=404)
        return web.Response(text=request.query["hub.challenge"])

    async def deliver(request: web.Request) -> web.Response:
        endpoint.deliveries.append((dict(request.headers), await request.read()))
        return web.Response(status=endpoint.statuses.pop(0) if endpoint.statuses else 204)

    app = web.Application()
    app.router.add_get("/callback", verify)
    app.router.add_post("/callback", deliver)
    async with serving(app, sock):
        yield endpoint


def test_signatures() -> None:
    body = b'{"type":"StaveFeed"}'
    header = sign_delivery("s3cret", body)
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert header == "sha256=" + expected
    assert signature_matches("s3cret", header, body)
    assert signature_matches("s3cret", header.upper().replace("SHA256", "sha256"), body)
    assert not signature_matches("s3cret", header, body + b" ")
    assert not signature_matches("other", header, body)
    assert not signature_matches("s3cret", None, body)
    assert not signature_matches("s3cret", "sha1=" + hashlib.sha1(body).hexdigest(), body)
    assert not signature_matches("s3cret", expected, body)  # no method


# --- the hub --------------------------------------------------------------------------------------


async def test_hub_checks_verifies_and_delivers_signed_feeds(
    tmp_path: Path, callback: Callback
) -> None:
    artist = await RunningNode.create(tmp_path / "artist", "Ada Example")
    try:
        hub, topic = artist.url + "websub", artist.url + "feed.json"
        good = {
            "hub.mode": "subscribe",
            "hub.topic": topic,
            "hub.callback": callback.url,
            "hub.secret": "s3cret",
            "hub.lease_seconds": "600",
        }
        async with aiohttp.ClientSession() as session:
            for change, reason in [
                ({"hub.topic": artist.url + "other.json"}, "hub.topic"),
                ({"hub.mode": "publish"}, "hub.mode"),
                ({"hub.callback": "ftp://127.0.0.1/x"}, "hub.callback"),
                ({"hub.lease_seconds": "soon"}, "hub.lease_seconds"),
                ({"hub.secret": "x" * 200}, "hub.secret"),
            ]:
                async with session.post(hub, data={**good, **change}) as response:
                    assert response.status == 400, change
                    assert reason in await response.text()
            assert callback.verifications == []

            async with session.post(hub, data=good) as response:
                assert response.status == 202
        subscribers = await eventually(lambda: artist.runtime.hub.subscribers(), what="verified")
        [verification] = callback.verifications
        assert verification["hub.mode"] == "subscribe"
        assert verification["hub.topic"] == topic
        assert verification["hub.lease_seconds"] == "600"
        assert verification["me"] == "1"  # the callback's own query is kept
        assert [(s.callback, s.secret, s.lease_seconds) for s in subscribers] == [
            (callback.url, "s3cret", 600)
        ]
        assert callback.deliveries == []  # nothing until the feed changes

        await artist.publisher.add(FIXTURES / "tone.mp3")
        await eventually(lambda: asyncio.sleep(0, callback.deliveries), what="a delivery")
        headers, body = callback.deliveries[0]
        latest = await artist.node.catalog.latest_feed()
        assert latest is not None
        with artist.node.store.open(latest.cid) as source:
            assert body == source.read()  # the feed's exact bytes
        assert headers["X-Hub-Signature"] == sign_delivery("s3cret", body)
        assert headers["Content-Type"] == "application/json"
        assert (
            f'<{hub}>; rel="hub"' in headers["Link"] and f'<{topic}>; rel="self"' in headers["Link"]
        )
        await asyncio.sleep(1.2)  # two more hub ticks: delivered once only
        assert len(callback.deliveries) == 1
    finally:
        await artist.stop()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub over a node directory, without the background loop: the tests drive time."""
    root = await make_node_dir(tmp_path / "artist", 9, "Ada Example")
    async with open_node(root) as node, OutboundClient(allow_private=True) as client:
        yield Hub(Federation(node, node.catalog, client), min_lease=1)
        node.store.close()


def request(hub: Hub, callback: Callback, lease: int, secret: str | None = "s3cret") -> Any:
    return hub.check_request(
        {
            "hub.mode": "subscribe",
            "hub.topic": hub.topic,
            "hub.callback": callback.url,
            "hub.lease_seconds": str(lease),
            **({"hub.secret": secret} if secret else {}),
        }
    )


async def publish_next_feed(hub: Hub) -> None:
    from node.publish import Publisher

    await Publisher(hub.federation.node).publish_feed()


async def test_intent_must_be_confirmed(hub: Hub, callback: Callback) -> None:
    callback.echo = False
    assert not await hub.verify_intent(request(hub, callback, 60))
    assert await hub.subscribers() == []
    callback.echo = True
    assert await hub.verify_intent(request(hub, callback, 60))
    assert [s.callback for s in await hub.subscribers()] == [callback.url]
    unsubscribe = SubscriptionRequest("unsubscribe", hub.topic, callback.url, 0, None)
    assert await hub.verify_intent(unsubscribe)
    assert await hub.subscribers() == []
    assert [v["hub.mode"] for v in callback.verifications] == [
        "subscribe",
        "subscribe",
        "unsubscribe",
    ]


async def test_a_feed_signed_during_verification_is_delivered(hub: Hub, callback: Callback) -> None:
    callback.on_verify = lambda: publish_next_feed(hub)
    assert await hub.verify_intent(request(hub, callback, 600))
    latest = await hub.federation.catalog.latest_feed()
    assert latest is not None
    [delivery] = await hub.deliver()
    assert (delivery.sequence, delivery.delivered) == (latest.sequence, True)


async def test_leases_expire(hub: Hub, callback: Callback) -> None:
    assert await hub.verify_intent(request(hub, callback, 1))
    [subscriber] = await hub.subscribers()
    assert subscriber.expires_at == pytest.approx(time.time() + 1, abs=0.5)
    await publish_next_feed(hub)
    assert [d.delivered for d in await hub.deliver()] == [True]
    await asyncio.sleep(1.1)
    assert await hub.subscribers() == []
    await publish_next_feed(hub)
    assert await hub.deliver() == []  # expired: no delivery, and forgotten
    assert await hub.federation.catalog.hub_subscribers() == []
    assert len(callback.deliveries) == 1


async def test_failed_deliveries_are_retried_then_given_up(hub: Hub, callback: Callback) -> None:
    assert await hub.verify_intent(request(hub, callback, 10 * 24 * 3600, secret=None))
    await publish_next_feed(hub)
    callback.statuses = [500, 503]
    first = await hub.deliver()
    assert [(d.delivered, d.error) for d in first] == [(False, "HTTP 500")]
    assert await hub.deliver() == []  # not due yet: it backs off
    [subscriber] = await hub.subscribers()
    assert subscriber.attempts == 1 and subscriber.next_attempt_at > time.time() + 2
    later = subscriber.next_attempt_at + 1
    assert [d.error for d in await hub.deliver(now=later)] == ["HTTP 503"]
    [subscriber] = await hub.subscribers()
    assert [d.delivered for d in await hub.deliver(now=subscriber.next_attempt_at + 1)] == [True]
    assert len(callback.deliveries) == 3
    assert "X-Hub-Signature" not in callback.deliveries[0][0]  # no secret, no signature
    [subscriber] = await hub.subscribers()
    assert (subscriber.attempts, subscriber.last_error) == (0, None)

    callback.statuses = [500] * 10
    await publish_next_feed(hub)
    moment = time.time()
    for _ in range(6):
        moment += 7200
        await hub.deliver(now=moment)
    [subscriber] = await hub.subscribers(now=moment)
    latest = await hub.federation.catalog.latest_feed()
    assert latest is not None and subscriber.delivered_sequence == latest.sequence  # gave up
    assert await hub.deliver(now=moment + 7200) == []


# --- the subscriber -------------------------------------------------------------------------------


async def test_subscriber_confirms_its_own_subscriptions_and_checks_signatures(
    tmp_path: Path,
) -> None:
    follower = await RunningNode.create(
        tmp_path / "follower", "Follower", federation__max_feed_bytes=64 * 1024
    )
    try:
        async with fake_node() as fake, aiohttp.ClientSession() as session:
            await run_subscriber_checks(follower, fake, session)
    finally:
        await follower.stop()


async def run_subscriber_checks(
    follower: RunningNode, fake: FakeNode, session: aiohttp.ClientSession
) -> None:
    fake.feed = fake_feed(fake, 1, "First")
    outcome = await follower.runtime.follows.follow(fake.url)
    assert outcome.subscription_error is None
    [asked] = fake.hub_requests
    assert asked["hub.mode"] == "subscribe" and asked["hub.topic"] == fake.url + "feed.json"
    callback, secret = asked["hub.callback"], asked["hub.secret"]
    assert callback.startswith(follower.url + "websub/callback/") and len(secret) == 64

    async def verify(url: str, **query: str) -> tuple[int, str]:
        async with session.get(url, params=query) as response:
            return response.status, await response.text()

    topic = fake.url + "feed.json"
    assert (
        await verify(
            follower.url + "websub/callback/unknown",
            **{
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.challenge": "c1",
                "hub.lease_seconds": "60",
            },
        )
    )[0] == 404
    assert (
        await verify(
            callback,
            **{
                "hub.mode": "subscribe",
                "hub.topic": fake.url + "other.json",
                "hub.challenge": "c2",
                "hub.lease_seconds": "60",
            },
        )
    )[0] == 404
    assert (
        await verify(
            callback, **{"hub.mode": "unsubscribe", "hub.topic": topic, "hub.challenge": "c3"}
        )
    )[0] == 404
    assert await verify(
        callback,
        **{
            "hub.mode": "subscribe",
            "hub.topic": topic,
            "hub.challenge": "c4",
            "hub.lease_seconds": "600",
        },
    ) == (200, "c4")
    [subscription] = await follower.node.catalog.websub_subscriptions(fake.artist.did)
    assert subscription.expires_at == pytest.approx(time.time() + 600, abs=5)

    async def deliver(url: str, body: bytes, signature: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature"] = signature
        async with session.post(url, data=body, headers=headers) as response:
            return response.status

    before = dump_follow_tables(follower.root)
    second = fake_feed(fake, 2, "First", "Second")
    assert await deliver(callback, second, sign_delivery("wrong secret", second)) == 202
    assert await deliver(callback, second, None) == 202
    assert await deliver(callback, second, "sha256=" + "0" * 64) == 202
    assert await deliver(follower.url + "websub/callback/unknown", second, None) == 410
    huge = b" " * (64 * 1024 + 1)
    assert await deliver(callback, huge, sign_delivery(secret, huge)) == 413
    await asyncio.sleep(0.5)
    assert dump_follow_tables(follower.root) == before  # ignored, every one

    assert await deliver(callback, second, sign_delivery(secret, second)) == 202

    async def at_second() -> bool:
        follow = await follower.node.catalog.follow(fake.artist.did)
        return follow is not None and follow.sequence == 2

    await eventually(at_second, what="the signed delivery to be taken")
    assert fake.hits == ["plain"]  # taken from the push, not pulled again

    # A correctly signed delivery of a forged feed is still verified, and rejected.
    forged = fake_feed(fake, 3, "Forged").replace(b"Forged", b"Forgeo")
    after_second = dump_follow_tables(follower.root)
    assert await deliver(callback, forged, sign_delivery(secret, forged)) == 202
    await asyncio.sleep(0.5)
    assert dump_follow_tables(follower.root) == after_second
    follow = await follower.node.catalog.follow(fake.artist.did)
    assert follow is not None and "signature does not verify" in (follow.last_error or "")

    # Unfollowing asks the hub to unsubscribe; the subscriber confirms that once.
    await follower.runtime.follows.unfollow(fake.artist.did)
    assert fake.hub_requests[-1]["hub.mode"] == "unsubscribe"
    assert fake.hub_requests[-1]["hub.callback"] == callback
    assert await verify(
        callback, **{"hub.mode": "unsubscribe", "hub.topic": topic, "hub.challenge": "c5"}
    ) == (200, "c5")
    assert await follower.node.catalog.websub_subscriptions(fake.artist.did) == []
    assert await deliver(callback, second, sign_delivery(secret, second)) == 410


async def test_subscriptions_are_renewed_before_they_lapse(tmp_path: Path) -> None:
    async with fake_node() as fake, follower_federation(tmp_path) as federation:
        node = federation.node
        fake.feed = fake_feed(fake, 1, "First")
        subscriber = Subscriber(federation, lease_seconds=1000)
        from node.federation.follows import FollowService

        await FollowService(federation, subscriber=subscriber).follow(fake.url)
        [follow] = await node.catalog.follows()
        [pending] = await node.catalog.websub_subscriptions()
        now = time.time()
        assert await subscriber.due([follow], now) == []  # just asked
        assert await subscriber.due([follow], now + 301) == [follow]  # never confirmed
        confirmed = await subscriber.confirm(
            pending.callback_id,
            {
                "hub.mode": "subscribe",
                "hub.topic": fake.url + "feed.json",
                "hub.challenge": "x",
                "hub.lease_seconds": "1000",
            },
        )
        assert confirmed.challenge == "x"
        assert await subscriber.due([follow], now + 301) == []  # a lease with time left
        assert await subscriber.due([follow], now + 800) == [follow]  # under a quarter left
        await subscriber.subscribe(follow)  # the renewal keeps callback and secret
        assert [(s.callback_id, s.secret) for s in await node.catalog.websub_subscriptions()] == [
            (pending.callback_id, pending.secret)
        ]
        assert len(fake.hub_requests) == 2

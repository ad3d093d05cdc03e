"""The fediverse delivery queue drained into real inboxes: an aiohttp inbox server on 127.0.0.1
that verifies every request's HTTP signature against the node's actor key and records it.

- deliveries arrive signed (draft-cavage-12 rsa-sha256 over the five headers), once each, and
  their outcomes are committed in batches;
- a 500 then 200 inbox gets the activity after a retry; 429 honours Retry-After; a refused
  connection is retried, and given up once the delivery is too old;
- 404 and 410 fail at once with a reason; a destination outbound requests may not reach fails
  without a request;
- SIGKILL: a process draining the queue is killed while one inbox holds requests unanswered and
  another refuses them; after a restart every activity reaches every inbox, and an inbox that
  accepted an activity before the kill never gets it again. The same through `stave run` once
  the node runs the worker itself.

Run as `python -m tests.test_fediverse_delivery DATA_DIR` it is the delivering process of the
SIGKILL test: the real worker over the node, with a short lease and short retries.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.catalog import Delivery, open_catalog
from node.datadir import Node, open_node
from node.errors import SignatureError
from node.federation.context import Federation
from node.federation.http import OutboundClient
from node.fediverse.delivery import INTERRUPTED, DeliveryWorker
from node.fediverse.httpsig import VerifiedSignature, load_public_key, verify_request
from tests.support.cli import clean_environment, stave_command
from tests.support.federation import make_node_dir
from tests.support.net import free_port, loopback_socket, serving
from tests.support.paths import PROJECT_ROOT

FAST: dict[str, Any] = {"retry_seconds": 0.05, "max_retry_seconds": 0.2}


@dataclass(frozen=True)
class Arrival:
    """One request an inbox received: where, which activity, how it was answered (0: held
    and never answered), and what signed it."""

    path: str
    activity: str
    status: int
    signature: VerifiedSignature | None
    content_type: str


class Inboxes:
    """Inboxes on one loopback port. Each path answers the statuses of its plan in turn (the
    last one for ever after; 202 without a plan); a held path keeps every request unanswered
    until `release()`, and then answers the held ones 503 (their sender may be gone)."""

    def __init__(self, public_key_pem: str) -> None:
        self.key = load_public_key(public_key_pem)
        self.plans: dict[str, list[int]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.held: set[str] = set()
        self.released = asyncio.Event()
        self.arrivals: list[Arrival] = []
        self.refused: list[str] = []
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        self.held.clear()
        self.released.set()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        url = f"http://{request.host}{request.raw_path}"  # as sent, as Mastodon checks it
        try:
            signature = verify_request("POST", url, dict(request.headers), body, self.key)
        except SignatureError as e:
            self.refused.append(str(e))
            return web.Response(status=401, text=str(e))
        activity = str(json.loads(body)["id"])
        kind = request.headers.get("Content-Type", "")
        if request.path in self.held:
            self.arrivals.append(Arrival(request.path, activity, 0, signature, kind))
            await self.released.wait()
            return web.Response(status=503, text="held")
        plan = self.plans.get(request.path, [202])
        status = plan.pop(0) if len(plan) > 1 else plan[0]
        self.arrivals.append(Arrival(request.path, activity, status, signature, kind))
        return web.Response(
            status=status, text=f"status {status}", headers=self.headers.get(request.path, {})
        )

    def accepted(self) -> Counter[tuple[str, str]]:
        """How many times each (path, activity) was answered 2xx."""
        return Counter((a.path, a.activity) for a in self.arrivals if 200 <= a.status < 300)


@asynccontextmanager
async def inboxes(public_key_pem: str, port: int = 0) -> AsyncIterator[Inboxes]:
    server = Inboxes(public_key_pem)
    app = web.Application()
    app.router.add_post("/{path:.*}", server.handle)
    sock = loopback_socket(port)
    server.port = sock.getsockname()[1]
    async with serving(app, sock):
        try:
            yield server
        finally:
            server.release()


def activity(number: int) -> tuple[str, bytes]:
    activity_id = f"http://127.0.0.1:9/activities/{uuid.uuid4()}"
    body = {"id": activity_id, "type": "Create", "actor": "http://127.0.0.1:9/actor", "n": number}
    return activity_id, json.dumps(body).encode()


async def queue(node: Node, count: int, inboxes: list[str]) -> list[str]:
    """`count` activities queued for every one of `inboxes`; their ids."""
    ids = []
    async with node.catalog.transaction() as tx:
        for number in range(count):
            activity_id, body = activity(number)
            await tx.queue_activity(activity_id, body, inboxes)
            ids.append(activity_id)
    return ids


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    root = await make_node_dir(tmp_path / "artist", 9, "Ada Example")
    async with open_node(root) as opened:
        yield opened
        opened.store.close()


@asynccontextmanager
async def worker(
    node: Node, *, allow_private: bool = True, **options: Any
) -> AsyncIterator[DeliveryWorker]:
    async with OutboundClient(allow_private=allow_private) as client:
        yield DeliveryWorker(Federation(node, node.catalog, client), **options)


def by_inbox(deliveries: list[Delivery]) -> dict[str, Delivery]:
    return {d.inbox: d for d in deliveries}


async def test_deliveries_arrive_signed_once_each(node: Node) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        targets = [server.url(f"/users/{n}/inbox") for n in range(5)] + [server.url("/inbox")]
        ids = await queue(node, 8, targets)
        async with worker(node, concurrency=16) as delivering:
            report = await delivering.drain()
    assert server.refused == []
    assert server.accepted() == Counter(
        {(target.removeprefix(server.url("")), i): 1 for target in targets for i in ids}
    )
    assert len(server.arrivals) == 48
    for arrival in server.arrivals:
        assert arrival.content_type == "application/activity+json"
        assert arrival.signature is not None
        assert arrival.signature.scheme == "draft-cavage-12"
        assert arrival.signature.algorithm == "rsa-sha256"
        assert arrival.signature.key_id == f"{node.base_url}actor#main-key"
        assert arrival.signature.covered == (
            "(request-target)", "host", "date", "digest", "content-type"
        )  # fmt: skip
    assert (report.done, report.retried, report.failed) == (48, 0, 0)
    assert report.commits < 48  # outcomes are recorded many to a transaction
    assert await node.catalog.delivery_counts() == {"done": 48}
    assert await node.catalog.next_delivery_attempt() is None


async def test_an_inbox_url_is_signed_as_it_is_sent(node: Node) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        [activity_id] = await queue(node, 1, [server.url("/users/ada é/inbox?x=1 2")])
        async with worker(node) as delivering:
            report = await delivering.drain()
    assert server.refused == []
    assert report.done == 1
    assert server.accepted() == Counter({("/users/ada é/inbox", activity_id): 1})


async def test_an_inbox_that_fails_then_accepts_gets_the_activity_after_a_retry(
    node: Node,
) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        server.plans["/inbox"] = [500, 503, 200]
        [activity_id] = await queue(node, 1, [server.url("/inbox")])
        async with worker(node, **FAST) as delivering:
            first = await delivering.drain()
            [pending] = await node.catalog.deliveries("pending")
            report = await delivering.drain(until_empty=True)
    assert (first.done, first.retried) == (0, 1)
    assert pending.attempts == 1
    assert pending.last_error == f"{server.url('/inbox')}: answered 500 ('status 500')"
    assert [a.status for a in server.arrivals] == [500, 503, 200]
    assert server.accepted() == Counter({("/inbox", activity_id): 1})
    assert (report.done, report.retried, report.failed) == (1, 1, 0)
    [done] = await node.catalog.deliveries("done")
    assert done.attempts == 3
    assert done.last_error is None


@pytest.mark.parametrize("status", [400, 401, 404, 410])
async def test_an_inbox_that_refuses_fails_for_good_with_a_reason(node: Node, status: int) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        server.plans["/gone/inbox"] = [status]
        await queue(node, 1, [server.url("/gone/inbox"), server.url("/inbox")])
        async with worker(node, **FAST) as delivering:
            report = await delivering.drain(until_empty=True)
    assert (report.done, report.retried, report.failed) == (1, 0, 1)
    [failed] = await node.catalog.deliveries("failed")
    assert failed.inbox == server.url("/gone/inbox")
    assert (
        failed.last_error == f"{server.url('/gone/inbox')}: answered {status} ('status {status}')"
    )
    assert failed.attempts == 1
    assert len(server.arrivals) == 2  # one request each, never repeated


async def test_too_many_requests_waits_as_long_as_retry_after_says(node: Node) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        server.plans["/inbox"] = [429]
        server.headers["/inbox"] = {"Retry-After": "120"}
        await queue(node, 1, [server.url("/inbox")])
        async with worker(node, **FAST) as delivering:
            before = time.time()
            report = await delivering.drain()
    assert report.retried == 1
    [pending] = await node.catalog.deliveries("pending")
    assert pending.next_attempt >= before + 120
    assert "answered 429" in (pending.last_error or "")


async def test_an_inbox_that_does_not_answer_is_retried_then_given_up(node: Node) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}/inbox"
    await queue(node, 1, [nothing_listens])
    async with worker(node, retry_seconds=60) as delivering:
        before = time.time()
        report = await delivering.drain()
    assert report.retried == 1
    [pending] = await node.catalog.deliveries("pending")
    assert pending.last_error is not None
    assert pending.last_error.startswith(f"{nothing_listens}: cannot connect")
    assert before + 30 <= pending.next_attempt <= time.time() + 60
    async with node.catalog.transaction() as tx:  # make it due again
        await tx.retry_delivery(pending.id, pending.last_error, 0)
    async with worker(node, give_up_seconds=0) as delivering:
        report = await delivering.drain()
    assert report.failed == 1
    [failed] = await node.catalog.deliveries("failed")
    assert (failed.last_error or "").endswith("gave up after 0 h of retries")
    assert failed.attempts == 3


async def test_a_destination_outbound_requests_may_not_reach_fails_unsent(node: Node) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        await queue(node, 1, [server.url("/inbox"), "ftp://127.0.0.1/inbox"])
        async with worker(node, allow_private=False) as delivering:
            report = await delivering.drain()
    assert report.failed == 2
    assert server.arrivals == []
    errors = {d.inbox: d.last_error for d in await node.catalog.deliveries("failed")}
    assert errors == {
        server.url("/inbox"): f"{server.url('/inbox')}: refused: 127.0.0.1 is a loopback address"
        " (set federation.allow_private_addresses to allow it)",
        "ftp://127.0.0.1/inbox": "ftp://127.0.0.1/inbox: only http and https URLs are allowed",
    }


async def test_a_running_worker_delivers_what_is_queued_while_it_waits(node: Node) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server, worker(node) as delivering:
        delivering.start()
        await asyncio.sleep(0.1)
        [activity_id] = await queue(node, 1, [server.url("/inbox")])
        delivering.wake()
        for _ in range(200):
            if server.arrivals:
                break
            await asyncio.sleep(0.02)
        await delivering.close()
    assert server.accepted() == Counter({("/inbox", activity_id): 1})
    assert await node.catalog.delivery_counts() == {"done": 1}


async def test_a_stopped_worker_releases_what_it_was_sending(node: Node) -> None:
    async with inboxes(node.actor_key.public_key_pem) as server:
        server.held.add("/slow/inbox")
        [activity_id] = await queue(node, 1, [server.url("/slow/inbox"), server.url("/inbox")])
        async with worker(node) as delivering:
            delivering.start()
            for _ in range(200):
                if len(server.arrivals) == 2:
                    break
                await asyncio.sleep(0.02)
            await delivering.close()
        stopped = time.time()
        [released] = await node.catalog.deliveries("pending")
        assert released.inbox == server.url("/slow/inbox")
        assert released.last_error == INTERRUPTED
        assert released.next_attempt <= stopped  # due again at once, not after the lease
        assert [d.inbox for d in await node.catalog.deliveries("done")] == [server.url("/inbox")]
        server.release()
        async with worker(node) as delivering:
            await delivering.drain()
    assert server.accepted() == Counter({(p, activity_id): 1 for p in ("/slow/inbox", "/inbox")})


# --- SIGKILL ---------------------------------------------------------------------------------


async def _deliver_for_ever(root: Path) -> None:
    async with open_node(root) as opened, OutboundClient(allow_private=True) as client:
        delivering = DeliveryWorker(
            Federation(opened, opened.catalog, client),
            # Leases long enough that a slow answer on a loaded machine is not taken for a lost
            # one (which would send it again, as at-least-once allows), short enough that the
            # deliveries held when the process is killed come due again soon after.
            lease_seconds=10.0,
            attempt_seconds=8.0,
            retry_seconds=0.2,
            max_retry_seconds=0.5,
        )
        print("delivering", flush=True)
        await delivering.run()


async def start_delivering(root: Path) -> asyncio.subprocess.Process:
    command = [sys.executable, "-m", "tests.test_fediverse_delivery", str(root)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, env=clean_environment(), cwd=PROJECT_ROOT
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line == b"delivering\n"
    return process


async def counts(root: Path) -> dict[str, int]:
    async with open_catalog(root / "catalog.sqlite") as catalog:
        return await catalog.delivery_counts()


async def wait_until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} within {seconds:g} s")


async def test_deliveries_survive_sigkill_and_are_sent_once(tmp_path: Path) -> None:
    root = await make_node_dir(tmp_path / "artist", 9, "Ada Example")
    async with open_node(root) as opened:
        pem = opened.actor_key.public_key_pem
        # The holding inbox is a host of its own, as a slow server would be: the requests it
        # holds open take its host's slots, not those of the others.
        async with inboxes(pem) as server, inboxes(pem) as slow:
            accepting, holding, refusing = "/accepting", "/holding", "/refusing"
            slow.held.add(holding)
            server.plans[refusing] = [503]
            targets = [server.url(accepting), slow.url(holding), server.url(refusing)]
            ids = await queue(opened, 10, targets)
            opened.store.close()
            catalog_path = opened.data.catalog_path
            assert catalog_path == root / "catalog.sqlite"

            process = await start_delivering(root)
            try:

                async def accepted_and_recorded() -> bool:
                    held = sum(a.path == holding for a in slow.arrivals)
                    refused = sum(a.path == refusing for a in server.arrivals)
                    done = (await counts(root)).get("done", 0)
                    return done == 10 and held >= 1 and refused >= 10

                await wait_until(accepted_and_recorded, 60, "the accepting inbox took everything")
                in_flight = sum(a.path == holding for a in slow.arrivals)
            finally:
                process.kill()  # SIGKILL, with requests held open by the holding inbox
                await process.wait()
            assert in_flight >= 1
            before_kill = server.accepted() + slow.accepted()
            assert before_kill == Counter({(accepting, i): 1 for i in ids})

            slow.release()
            server.plans[refusing] = [200]
            process = await start_delivering(root)
            try:

                async def all_done() -> bool:
                    return (await counts(root)) == {"done": 30}

                await wait_until(all_done, 60, "every delivery was done after the restart")
            finally:
                process.terminate()
                await process.wait()
    assert server.accepted() + slow.accepted() == Counter(
        {(p, i): 1 for p in (accepting, holding, refusing) for i in ids}
    )
    assert sum(a.path == accepting for a in server.arrivals) == 10  # never sent again
    assert server.refused == [] and slow.refused == []


def _node_runs_the_worker() -> bool:
    runtime = PROJECT_ROOT / "node" / "fediverse" / "runtime.py"
    return runtime.exists() and "DeliveryWorker" in runtime.read_text(encoding="utf-8")


@pytest.mark.skipif(not _node_runs_the_worker(), reason="stave run does not deliver yet")
async def test_stave_run_killed_with_deliveries_queued_delivers_each_after_restart(
    tmp_path: Path,
) -> None:
    """Through the real `stave run`: one inbox accepts at once, another's port is closed when
    the node starts (so its deliveries wait for a retry). SIGKILL, open that port, restart."""
    port = free_port()
    root = await make_node_dir(tmp_path / "artist", port, "Ada Example")
    closed_port = free_port()
    async with open_node(root) as opened:
        pem = opened.actor_key.public_key_pem
        async with inboxes(pem) as server:
            later = f"http://127.0.0.1:{closed_port}/inbox"
            ids = await queue(opened, 5, [server.url("/inbox"), later])
            opened.store.close()

            async def serve() -> asyncio.subprocess.Process:
                process = await asyncio.create_subprocess_exec(
                    *stave_command(root, "run", "--host", "127.0.0.1", "--port", str(port)),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=clean_environment({"PYTHONUNBUFFERED": "1"}),
                    cwd=PROJECT_ROOT,
                )
                assert process.stdout is not None
                await asyncio.wait_for(process.stdout.readline(), 60)
                return process

            process = await serve()
            try:

                async def first_round() -> bool:
                    async with open_catalog(root / "catalog.sqlite") as catalog:
                        pending = await catalog.deliveries("pending")
                        done = await catalog.deliveries("done")
                    return len(done) == 5 and all(d.attempts >= 1 for d in pending)

                await wait_until(first_round, 60, "the first round of deliveries was made")
            finally:
                process.kill()
                await process.wait()
            assert server.accepted() == Counter({("/inbox", i): 1 for i in ids})

            async with inboxes(pem, closed_port) as reopened:
                process = await serve()
                try:

                    async def all_done() -> bool:
                        return (await counts(root)) == {"done": 10}

                    await wait_until(all_done, 120, "every delivery was done after the restart")
                finally:
                    process.terminate()
                    await process.wait()
    assert reopened.accepted() == Counter({("/inbox", i): 1 for i in ids})
    assert server.accepted() == Counter({("/inbox", i): 1 for i in ids})  # not sent again


if __name__ == "__main__":
    asyncio.run(_deliver_for_ever(Path(sys.argv[1])))

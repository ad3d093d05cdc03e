"""The admin surface locked down: every /api and /admin route of the real app walked without
credentials, CSRF on every admin form, token rotation taking effect in a running node, wrong
tokens throttled per address, stalled bodies cut off on a real socket, upload slots, follows
capped."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, FormData, web
from aiohttp.test_utils import TestServer

from node.datadir import DataDir
from node.errors import UsageError
from node.web.app import create_app
from node.web.limits import LIMITS
from node.web.state import NODE
from tests.support.federation import RunningNode, fake_node
from tests.support.node import write_node_config
from tests.support.shared import FIXTURES
from tests.test_admin_pages import HTML, Client, ClientFactory, client_of, log_in, login_form
from tests.test_cli import ok, stave

# The only routes under /api and /admin a client without credentials may use.
PUBLIC = {("GET", "/api/openapi.json"), ("POST", "/admin/login")}
TRACK = "urn:uuid:00000000-0000-4000-8000-000000000000"


def admin_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, path) under /api and /admin, with `{name}` parts filled in."""
    found = set()
    for resource in app.router.resources():
        template = resource.canonical
        if not (template.startswith("/api") or template.startswith("/admin")):
            continue
        path = re.sub(r"\{[^}]+\}", TRACK.removeprefix("urn:uuid:"), template)
        for route in resource:
            if route.method not in ("HEAD", "*"):
                found.add((route.method, path))
    return sorted(found)


async def started(aiohttp_client: ClientFactory, root: Path) -> Client:
    return await client_of(create_app(root), aiohttp_client)


async def test_every_admin_route_refuses_a_request_without_credentials(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client = await started(aiohttp_client, web_data_dir)
    routes = admin_routes(client.server.app)
    methods = {m for m, _ in routes}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    assert len(routes) >= 15, routes  # the walk really saw the app's routes
    assert set(routes) >= PUBLIC
    before = await client.server.app[NODE].catalog.tracks(include_withdrawn=True)
    answered: set[tuple[str, str]] = set()
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Cookie": "stave_admin=x"}):
            response = await client.request(
                method, path, headers={**headers, **HTML}, allow_redirects=False
            )
            body = await response.text()
            if (method, path) in PUBLIC:
                answered.add((method, path))
                assert response.status < 500, (method, path, body)
                continue
            if method == "GET" and path.startswith("/admin"):
                # An admin page without a session is the login page in its place.
                assert response.status == 200 and 'action="/admin/login"' in body, path
                assert "/admin/logout" not in body and TRACK not in body
                continue
            if path.startswith("/api"):
                assert response.status == 401, (method, path, response.status, body)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            else:
                assert response.status in (303, 401, 403), (method, path, response.status)
                if response.status == 303:
                    assert response.headers["Location"] == "/admin"
                assert "stave_admin=" not in response.headers.get("Set-Cookie", "")
    assert answered == PUBLIC
    after = await client.server.app[NODE].catalog.tracks(include_withdrawn=True)
    assert after == before


async def test_every_admin_form_refuses_a_post_without_its_csrf_token(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client = await started(aiohttp_client, web_data_dir)
    admin, _ = await log_in(client, web_data_dir)
    forms = [
        path
        for method, path in admin_routes(client.server.app)
        if method == "POST" and path.startswith("/admin") and path != "/admin/login"
    ]
    assert "/admin/upload" in forms and "/admin/logout" in forms and len(forms) >= 7
    catalog = client.server.app[NODE].catalog
    before = (await catalog.tracks(include_withdrawn=True), await catalog.follows())
    for path in forms:
        for csrf in (None, "wrong-" + admin.csrf[6:]):
            fields: dict[str, str] = {"title": "x", "url": "http://127.0.0.1:9/", "artist": "x"}
            if csrf is not None:
                fields["csrf"] = csrf
            if path == "/admin/upload":
                form = FormData(fields)
                form.add_field("file", FIXTURES.joinpath("tone.mp3").read_bytes(), filename="a.mp3")
                data: Any = form
            else:
                data = fields
            response = await client.post(
                path, data=data, headers=admin.headers, allow_redirects=False
            )
            assert response.status == 403, (path, csrf, response.status, await response.text())
    assert (await catalog.tracks(include_withdrawn=True), await catalog.follows()) == before
    await admin.get("/admin")  # still logged in: logout was refused too


async def test_a_rotated_admin_token_is_refused_by_the_running_node(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    client = await started(aiohttp_client, web_data_dir)
    old = DataDir(web_data_dir).admin_token()
    bearer = {"Authorization": f"Bearer {old}"}
    assert (await client.get("/api/status", headers=bearer)).status == 200
    new = ok(stave(web_data_dir, "admin-token", "--rotate")).strip()
    assert new and new != old
    assert (await client.get("/api/status", headers=bearer)).status == 401
    fresh = {"Authorization": f"Bearer {new}"}
    assert (await client.get("/api/status", headers=fresh)).status == 200
    # The admin pages' login takes the new token only, too.
    await log_in(client, web_data_dir)
    restarted = await started(aiohttp_client, web_data_dir)
    assert (await restarted.get("/api/status", headers=bearer)).status == 401
    assert (await restarted.get("/api/status", headers=fresh)).status == 200


async def test_wrong_tokens_are_throttled_per_address(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(
        web_data_dir, server__max_failed_logins=3, server__failed_login_window_seconds=60
    )
    client = await started(aiohttp_client, web_data_dir)
    token = DataDir(web_data_dir).admin_token()
    for _ in range(3):
        wrong = await client.get("/api/status", headers={"Authorization": "Bearer guess"})
        assert wrong.status == 401
    # No credentials at all is not a guess, and is still just 401.
    assert (await client.get("/api/status")).status == 401
    for headers in ({"Authorization": "Bearer guess"}, {"Authorization": f"Bearer {token}"}):
        throttled = await client.get("/api/status", headers=headers)
        assert throttled.status == 429, await throttled.text()
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert token not in await throttled.text()
    # The login form shares the count.
    csrf, cookie = await login_form(client)
    response = await client.post(
        "/admin/login",
        data={"token": token, "csrf": csrf},
        headers={"Cookie": cookie, **HTML},
        allow_redirects=False,
    )
    assert response.status == 429 and "stave_admin=" not in response.headers.get("Set-Cookie", "")
    # Once the window has passed, the right token works again.
    failures = client.server.app[LIMITS].failures
    failures.window = 0.2
    await asyncio.sleep(0.3)
    assert (
        await client.get("/api/status", headers={"Authorization": f"Bearer {token}"})
    ).status == 200


async def test_wrong_login_forms_are_throttled(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(web_data_dir, server__max_failed_logins=2)
    client = await started(aiohttp_client, web_data_dir)
    statuses = []
    for _ in range(3):
        csrf, cookie = await login_form(client)
        response = await client.post(
            "/admin/login",
            data={"token": "guess", "csrf": csrf},
            headers={"Cookie": cookie, **HTML},
            allow_redirects=False,
        )
        statuses.append(response.status)
    assert statuses == [401, 401, 429]


async def served(root: Path) -> TestServer:
    server = TestServer(create_app(root), host="127.0.0.1")
    await server.start_server()
    return server


def drip_upload(port: int, token: str, length: int = 10_000_000) -> socket.socket:
    """A socket that has sent the head of a multipart upload and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /api/tracks HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {length}\r\n\r\n"
        "--xyz\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.mp3"\r\n\r\n'
    )
    sock.sendall(head.encode())
    return sock


async def test_a_body_dripping_a_byte_a_second_is_cut_off(web_data_dir: Path) -> None:
    write_node_config(web_data_dir, server__body_timeout_seconds=2)
    server = await served(web_data_dir)
    try:
        port = server.port
        assert port is not None
        token = DataDir(web_data_dir).admin_token()
        sock = await asyncio.to_thread(drip_upload, port, token)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        received = b""
        answered = closed = 0.0
        while time.monotonic() - start < 20:
            try:
                await loop.sock_sendall(sock, b"a")
            except OSError:
                break  # the node closed the connection
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 1.0)
            except TimeoutError:
                continue
            if not chunk:
                break
            received += chunk
            answered = answered or time.monotonic() - start
        closed = time.monotonic() - start
        sock.close()
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"Connection: close" in received
        assert 1.5 <= answered <= 5, answered
        # aiohttp lingers up to 10 s reading what is left of a refused body, then closes.
        assert closed <= answered + 12, (answered, closed)
        # The upload slot and the stalled file are gone.
        app = server.app
        assert app[LIMITS]._uploads == 0
        assert not list(app[NODE].store.root.glob("tmp/*.upload*"))
        assert await app[NODE].catalog.tracks() == []
    finally:
        await server.close()


async def test_uploads_beyond_the_concurrency_cap_are_answered_503(web_data_dir: Path) -> None:
    write_node_config(web_data_dir, server__max_concurrent_uploads=1)
    server = await served(web_data_dir)
    try:
        port = server.port
        assert port is not None
        token = DataDir(web_data_dir).admin_token()
        slow = await asyncio.to_thread(drip_upload, port, token)
        limits = server.app[LIMITS]
        for _ in range(100):
            if limits._uploads == 1:
                break
            await asyncio.sleep(0.05)
        assert limits._uploads == 1
        form = FormData()
        form.add_field("file", FIXTURES.joinpath("tone.mp3").read_bytes(), filename="t.mp3")
        async with (
            ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/api/tracks",
                data=form,
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"] == "10"
        slow.close()
        for _ in range(100):
            if limits._uploads == 0:
                break
            await asyncio.sleep(0.05)
        assert limits._uploads == 0
        assert await server.app[NODE].catalog.tracks() == []
    finally:
        await server.close()


async def test_follows_stop_at_max_follows(tmp_path: Path) -> None:
    listener = await RunningNode.create(
        tmp_path / "listener", "Lee Listener", federation__max_follows=1
    )
    try:
        async with fake_node() as first, fake_node() as second:
            follows = listener.runtime.follows
            await follows.follow(first.url)
            with pytest.raises(UsageError, match=r"already following 1 artists"):
                await follows.follow(second.url)
            await follows.follow(first.url)  # following the same artist again is no new follow
            artists = [f.artist for f in await listener.node.catalog.follows()]
            assert artists == [first.artist.did]
    finally:
        await listener.stop()

"""The /admin pages over HTTP: login, the session cookie and its flags, CSRF on every form,
uploads through the API's code, edit, withdraw, follows, pin status; and the browser headers of
every page (CSP, framing, caching). The same pages in a real browser: tests/test_browser.py."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar, FormData, web
from aiohttp.test_utils import TestClient

from node.datadir import DataDir
from node.publish import TrackChoices
from node.web.sessions import Sessions
from node.web.state import NODE, PUBLISHER
from node.web.templates import static_dir
from tests.support.node import write_node_config
from tests.support.shared import BAD_FIXTURES, FIXTURES
from tests.test_web_pages import HTML, make_app
from tests.test_web_pages import Page as PublicPage

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

MP3 = FIXTURES / "tone.mp3"
FLAC = FIXTURES / "tone.flac"


def client_of(app: web.Application, aiohttp_client: Any) -> Awaitable[Client]:
    """A test client that keeps no cookies: each request sends exactly the ones it names."""
    return aiohttp_client(app, cookie_jar=DummyCookieJar())  # type: ignore[no-any-return]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, web_data_dir: Path) -> Client:
    return await client_of(make_app(web_data_dir), aiohttp_client)


class Admin:
    """A logged-in browser, as cookies and the session's CSRF token."""

    def __init__(self, client: Client, cookie: str, csrf: str) -> None:
        self.client = client
        self.cookie = cookie
        self.csrf = csrf

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie, **HTML}

    async def get(self, path: str, status: int = 200) -> Page:
        response = await self.client.get(path, headers=self.headers, allow_redirects=False)
        body = await response.text()
        assert response.status == status, body
        return Page(body)

    async def post(self, path: str, status: int = 303, csrf: str | None = "", **fields: str) -> Any:
        data = dict(fields)
        if csrf is not None:
            data["csrf"] = csrf or self.csrf
        response = await self.client.post(
            path, data=data, headers=self.headers, allow_redirects=False
        )
        assert response.status == status, await response.text()
        return response

    async def notices(self, path: str = "/admin") -> list[str]:
        return (await self.get(path)).notices


class Page(PublicPage):
    """A page that also collects the text of its `.notice` paragraphs and each form's fields."""

    def __init__(self, html: str) -> None:
        self.notices: list[str] = []
        self.forms: list[dict[str, Any]] = []
        self._in_notice = 0
        super().__init__(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        values = {k: v or "" for k, v in attrs}
        if tag == "p" and "notice" in values.get("class", "").split():
            self.notices.append("")
            self._in_notice = 1
        if tag == "form":
            self.forms.append({"attrs": values, "inputs": []})
        if tag in ("input", "select", "textarea", "button") and self.forms:
            self.forms[-1]["inputs"].append({**values, "tag": tag})

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._in_notice:
            self._in_notice = 0
            self.notices[-1] = " ".join(self.notices[-1].split())

    def handle_data(self, data: str) -> None:
        super().handle_data(data)
        if self._in_notice:
            self.notices[-1] += data


def cookies_of(response: Any) -> dict[str, Any]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return {name: jar[name] for name in jar}


async def login_form(client: Client) -> tuple[str, str]:
    """The login page's token and the login cookie that matches it."""
    response = await client.get("/admin", headers=HTML)
    page = Page(await response.text())
    [token_input] = [i for i in page.all("input") if i.get("name") == "csrf"]
    cookie = cookies_of(response)["stave_login"]
    return token_input["value"], f"stave_login={cookie.value}"


async def log_in(client: Client, root: Path, **headers: str) -> tuple[Admin, Any]:
    csrf, login_cookie = await login_form(client)
    response = await client.post(
        "/admin/login",
        data={"token": DataDir(root).admin_token(), "csrf": csrf},
        headers={"Cookie": login_cookie, **headers},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/admin"
    session = cookies_of(response)["stave_admin"]
    cookie = f"stave_admin={session.value}"
    dashboard = Page(await (await client.get("/admin", headers={"Cookie": cookie, **HTML})).text())
    [csrf_input] = [i for i in dashboard.all("input") if i.get("name") == "csrf"][:1]
    return Admin(client, cookie, csrf_input["value"]), response


async def catalog_state(client: Client) -> list[tuple[str, int, str | None]]:
    catalog = client.server.app[NODE].catalog
    tracks = [
        (t.id, t.revision, t.withdrawn_at) for t in await catalog.tracks(include_withdrawn=True)
    ]
    followers = [(f.actor, None, f.inbox) for f in await catalog.fediverse_followers()]
    blocks = [(domain, 0, None) for domain in await catalog.blocked_domains()]
    return tracks + followers + blocks


# --- logging in ---------------------------------------------------------------------------------


async def test_without_a_session_admin_is_the_login_page(client: Client) -> None:
    response = await client.get("/admin", headers=HTML)
    assert response.status == 200
    page = Page(await response.text())
    assert "Admin token" in page.words
    assert page.all("input", name="token", type="password")
    login = cookies_of(response)["stave_login"]
    assert login["httponly"] and login["samesite"] == "Strict" and login["path"] == "/admin"
    assert not login["secure"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_login_becomes_a_session_cookie(client: Client, web_data_dir: Path) -> None:
    admin, response = await log_in(client, web_data_dir)
    session = cookies_of(response)["stave_admin"]
    assert len(session.value) >= 43  # 32 random bytes
    assert session["httponly"] is True
    assert session["samesite"] == "Strict"
    assert session["path"] == "/admin"
    assert int(session["max-age"]) == 12 * 3600
    assert not session["secure"]  # plain HTTP on loopback
    page = await admin.get("/admin")
    assert "Manage Ada Example" in page.words


async def test_the_cookie_is_secure_behind_an_https_proxy(
    client: Client, web_data_dir: Path
) -> None:
    _, response = await log_in(client, web_data_dir, **{"X-Forwarded-Proto": "https"})
    assert cookies_of(response)["stave_admin"]["secure"] is True


@pytest.mark.parametrize("token", ["", "wrong", "{token}x"], ids=["empty", "wrong", "longer"])
async def test_a_wrong_token_makes_no_session(
    client: Client, web_data_dir: Path, token: str
) -> None:
    csrf, login_cookie = await login_form(client)
    response = await client.post(
        "/admin/login",
        data={"token": token.format(token=DataDir(web_data_dir).admin_token()), "csrf": csrf},
        headers={"Cookie": login_cookie, **HTML},
        allow_redirects=False,
    )
    assert response.status == 401
    assert "stave_admin" not in cookies_of(response)
    assert "not this node’s admin token" in Page(await response.text()).words


async def test_a_login_from_another_site_is_refused(client: Client, web_data_dir: Path) -> None:
    """Login CSRF: without the login cookie that matches the form's token, no session."""
    csrf, _ = await login_form(client)
    token = DataDir(web_data_dir).admin_token()
    for cookie in ("", "stave_login=" + "x" * 43):
        response = await client.post(
            "/admin/login",
            data={"token": token, "csrf": csrf},
            headers={"Cookie": cookie, **HTML},
            allow_redirects=False,
        )
        assert response.status == 403
        assert "stave_admin" not in cookies_of(response)


async def test_logout_ends_the_session(client: Client, web_data_dir: Path) -> None:
    admin, _ = await log_in(client, web_data_dir)
    response = await admin.post("/admin/logout")
    assert cookies_of(response)["stave_admin"].value == ""
    page = await admin.get("/admin")  # the old cookie no longer works
    assert "Admin token" in page.words


def test_sessions_expire() -> None:
    sessions = Sessions(lifetime=-1)
    response = web.Response()
    request = _request_with_cookie("")
    sessions.start(response, request)
    session_id = response.cookies["stave_admin"].value
    assert sessions.of(_request_with_cookie(f"stave_admin={session_id}")) is None
    assert len(sessions) == 0


def _request_with_cookie(cookie: str) -> web.Request:
    from aiohttp.test_utils import make_mocked_request

    return make_mocked_request("GET", "/admin", headers={"Cookie": cookie} if cookie else {})


# --- CSRF on every form --------------------------------------------------------------------------


def admin_posts(app: web.Application) -> list[str]:
    return sorted(
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/admin")
        and route.method == "POST"
    )


async def test_every_admin_post_needs_the_session_and_its_csrf_token(
    client: Client, web_data_dir: Path
) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Kept"))
    bare = manifest["id"].removeprefix("urn:uuid:")
    admin, _ = await log_in(client, web_data_dir)
    posts = admin_posts(client.server.app)
    assert len(posts) == 14  # 11, and the three release forms (node/web/release_admin.py)
    before = await catalog_state(client)
    fields = {
        "title": "Changed",
        "url": "http://127.0.0.1:9/",
        "did": "did:key:z6Mk",
        "domain": "blocked.example",
    }
    for path in posts:
        if path == "/admin/login":
            continue
        url = path.replace("{id}", bare)
        # No session: nothing done, back to the login page.
        response = await client.post(url, data=fields, headers=HTML, allow_redirects=False)
        assert response.status in (303, 401), path
        # A session but a missing or wrong CSRF token: refused.
        for csrf in (None, "x" * 43):
            await admin.post(url, status=403, csrf=csrf, **fields)
    assert await catalog_state(client) == before
    assert "Kept" in (await admin.get("/admin")).words


async def test_every_form_on_every_admin_page_carries_the_csrf_token(
    client: Client, web_data_dir: Path
) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Kept"))
    bare = manifest["id"].removeprefix("urn:uuid:")
    admin, _ = await log_in(client, web_data_dir)
    for path in (
        "/admin",
        f"/admin/tracks/{bare}",
        f"/admin/tracks/{bare}/withdraw",
        "/admin/follows",
        "/admin/followers",
    ):
        page = await admin.get(path)
        forms = [f for f in page.forms if f["attrs"].get("method") == "post"]
        assert forms, path
        for form in forms:
            action = form["attrs"]["action"]
            hidden = [i.get("value") for i in form["inputs"] if i.get("name") == "csrf"]
            assert hidden == [admin.csrf] or action == f"/admin/upload?csrf={admin.csrf}", (
                path,
                action,
            )
        # Every field has a label (an id a <label for> names, or a hidden input).
        labelled = {a.get("for") for a in page.all("label")}
        for form in forms:
            for field in form["inputs"]:
                if field["tag"] == "button" or field.get("type") in ("hidden", "checkbox"):
                    continue  # a button names itself; a checkbox sits inside its label
                assert field.get("id") in labelled, (path, field)


# --- uploads -------------------------------------------------------------------------------------


def upload_form(*files: Path, **fields: str) -> FormData:
    form = FormData(quote_fields=False, default_to_multipart=True)
    for path in files:
        form.add_field("file", path.read_bytes(), filename=path.name)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_a_script_uploads_with_the_csrf_header(client: Client, web_data_dir: Path) -> None:
    admin, _ = await log_in(client, web_data_dir)
    headers = {"Cookie": admin.cookie, "X-Requested-With": "XMLHttpRequest"}
    refused = await client.post("/admin/upload", data=upload_form(MP3), headers=headers)
    assert refused.status == 403
    assert await catalog_state(client) == []

    response = await client.post(
        "/admin/upload",
        data=upload_form(MP3, FLAC, aiTraining="allowed"),
        headers={**headers, "X-CSRF-Token": admin.csrf, "Accept": "application/json"},
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert len(body["tracks"]) == 2
    terms = [t["manifest"]["terms"]["dataMining"]["aiTraining"] for t in body["tracks"]]
    assert terms == ["allowed", "allowed"]
    assert len(await catalog_state(client)) == 2


async def test_a_plain_form_upload_goes_back_to_the_dashboard(
    client: Client, web_data_dir: Path
) -> None:
    admin, _ = await log_in(client, web_data_dir)
    response = await client.post(
        f"/admin/upload?csrf={admin.csrf}",
        data=upload_form(MP3, license="CC-BY-4.0", aiTraining=""),
        headers=admin.headers,
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/admin"
    [(_, revision, _)] = await catalog_state(client)
    assert revision == 1
    page = await admin.get("/admin")
    assert any(n.startswith("Published “") for n in page.notices)
    assert "CC-BY-4.0" in page.words
    assert (await admin.get("/admin")).notices == []  # a notice shows once


async def test_a_bad_upload_publishes_nothing_and_says_why(
    client: Client, web_data_dir: Path
) -> None:
    admin, _ = await log_in(client, web_data_dir)
    bad = next(p for p in BAD_FIXTURES if p.name == "not-audio.mp3")
    response = await client.post(
        f"/admin/upload?csrf={admin.csrf}",
        data=upload_form(MP3, bad),
        headers=admin.headers,
        allow_redirects=False,
    )
    assert response.status == 303
    assert await catalog_state(client) == []
    [notice] = (await admin.get("/admin")).notices
    assert notice.startswith("Nothing was published:") and "not-audio.mp3" in notice


# --- edit and withdraw ---------------------------------------------------------------------------


async def test_editing_publishes_what_changed(client: Client, web_data_dir: Path) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Draft"))
    bare = manifest["id"].removeprefix("urn:uuid:")
    admin, _ = await log_in(client, web_data_dir)
    form = await admin.get(f"/admin/tracks/{bare}")
    assert form.all("input", name="title", value="Draft")
    assert form.all("option", value="notAllowed", selected="")

    unchanged = {"title": "Draft", "license": "ARR", "aiTraining": "notAllowed"}
    await admin.post(f"/admin/tracks/{bare}", **unchanged, copyright=manifest["terms"]["copyright"])
    assert (await catalog_state(client))[0][1] == 1
    assert "“Draft”: nothing changed." in (await admin.notices())

    await admin.post(f"/admin/tracks/{bare}", **{**unchanged, "title": "Final"})
    [(_, revision, _)] = await catalog_state(client)
    assert revision == 2
    assert "Published revision 2 of “Final”." in await admin.notices()
    record = await client.server.app[NODE].catalog.track(manifest["id"])
    assert record.title == "Final"
    assert record.manifest["terms"] == manifest["terms"]


async def test_a_bad_licence_is_refused_on_the_form(client: Client, web_data_dir: Path) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Draft"))
    bare = manifest["id"].removeprefix("urn:uuid:")
    admin, _ = await log_in(client, web_data_dir)
    response = await admin.post(
        f"/admin/tracks/{bare}", status=400, title="Draft", license="not a licence!"
    )
    page = Page(await response.text())
    assert any("license" in n for n in page.notices)
    assert page.all("input", name="license", value="not a licence!")  # what was typed stays
    assert (await catalog_state(client))[0][1] == 1


async def test_withdrawing_takes_a_confirmation(client: Client, web_data_dir: Path) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Gone"))
    bare = manifest["id"].removeprefix("urn:uuid:")
    admin, _ = await log_in(client, web_data_dir)
    confirm = await admin.get(f"/admin/tracks/{bare}/withdraw")
    assert "Withdraw “Gone”?" in confirm.words
    assert (await catalog_state(client))[0][2] is None  # asking changes nothing
    await admin.post(f"/admin/tracks/{bare}/withdraw")
    assert (await catalog_state(client))[0][2] is not None
    assert not (await admin.get("/admin")).all("tr", **{"data-track-row": manifest["id"]})
    await admin.get(f"/admin/tracks/{bare}/withdraw", status=410)
    public = Page(await (await client.get("/", headers=HTML)).text())
    assert "Gone" not in public.words


# --- follows and pins ----------------------------------------------------------------------------


async def test_following_an_unreachable_node_says_why(client: Client, web_data_dir: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    admin, _ = await log_in(client, web_data_dir)
    await admin.post("/admin/follows", url=f"http://127.0.0.1:{port}/")
    [notice] = await admin.notices("/admin/follows")
    assert notice.startswith(f"Could not follow http://127.0.0.1:{port}/:")
    assert "You are not following anyone yet." in (await admin.get("/admin/follows")).words


async def test_pin_status_shows_when_kubo_is_used(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    with socket.socket() as closed:  # no Kubo listens here: every pin stays pending
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    write_node_config(
        web_data_dir, ipfs__backend="kubo", ipfs__api=f"http://127.0.0.1:{port}", ipfs__ipns=False
    )
    client = await client_of(make_app(web_data_dir), aiohttp_client)
    await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Pinned later"))
    admin, _ = await log_in(client, web_data_dir)
    page = await admin.get("/admin")
    assert "Kubo" in [a for t, a in page.tags if t == "th"] or "Kubo" in page.words
    html = await (await client.get("/admin", headers=admin.headers)).text()
    [pin] = re.findall(r"<td data-pin>([^<]*)</td>", html)
    assert pin.startswith("Pinning…")
    assert any(n.startswith("Kubo:") and "pending" in n for n in page.notices)


async def test_no_pin_column_on_the_embedded_store(client: Client, web_data_dir: Path) -> None:
    await client.server.app[PUBLISHER].add(MP3)
    admin, _ = await log_in(client, web_data_dir)
    html = await (await client.get("/admin", headers=admin.headers)).text()
    assert "data-pin" not in html


# --- what browsers are told ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/terms", "/tracks/{id}", "/admin", "/timeline"])
async def test_pages_refuse_to_be_framed_and_load_only_their_own_assets(
    client: Client, path: str
) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3)
    response = await client.get(path.format(id=manifest["id"].removeprefix("urn:uuid:")))
    assert response.status == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    media = "'self' http: https:" if path == "/timeline" else "'self'"
    assert policy["media-src"] == media
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_embed_may_be_framed_anywhere(client: Client) -> None:
    manifest = await client.server.app[PUBLISHER].add(MP3, TrackChoices(title="Framed"))
    bare = manifest["id"].removeprefix("urn:uuid:")
    response = await client.get(f"/embed/{bare}", headers=HTML)
    assert response.status == 200
    assert "frame-ancestors *" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers
    page = Page(await response.text())
    assert "Framed" in page.words and "Not for AI training" in page.words
    assert page.meta()["tdm-reservation"] == "1"
    assert page.all("source", src=f"/ipfs/{manifest['audio']['cid']}")
    assert page.all("a", href="/terms", target="_blank")
    [card] = page.all("article")
    assert card["data-artist-did"] == manifest["artist"]
    assert card["data-manifest"].startswith('{"type":"StaveTrack"')

    await client.server.app[PUBLISHER].withdraw(manifest["id"])
    gone = await client.get(f"/embed/{bare}", headers=HTML)
    assert gone.status == 410
    assert "frame-ancestors *" in gone.headers["Content-Security-Policy"]
    unknown = await client.get(f"/embed/{uuid.uuid4()}", headers=HTML)
    assert unknown.status == 404


async def test_static_assets_are_cached_by_version(client: Client) -> None:
    page = Page(await (await client.get("/", headers=HTML)).text())
    [script] = page.all("script")
    assert script["type"] == "module" and script["src"].startswith("/static/stave.js?v=")
    versioned = await client.get(script["src"])
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert versioned.content_type in ("text/javascript", "application/javascript")
    imported = await client.get("/static/player.js")  # imported by stave.js without a version
    assert imported.headers["Cache-Control"] == "no-cache"


def test_every_module_is_served_by_the_node() -> None:
    """No script imports anything from another host: every import is a relative path."""
    for script in static_dir().glob("*.js"):
        text = script.read_text(encoding="utf-8")
        for target in re.findall(r'from\s+"([^"]+)"', text):
            assert target.startswith("./"), (script.name, target)
        urls = set(re.findall(r"https?://[^\s\"'`]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), script.name


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_player_admin_and_signature_colours_meet_wcag_aa(scheme: str) -> None:
    css = (static_dir() / "stave.css").read_text(encoding="utf-8")
    light_block, _, dark_block = css.partition("prefers-color-scheme: dark")
    block = light_block if scheme == "light" else dark_block
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6});", block))
    pairs = [
        ("ok-fg", "ok-bg"),
        ("button-fg", "button-bg"),
        ("warn-bg", "warn-fg"),
        ("warn-fg", "bg"),
        ("warn-fg", "card"),
        ("fg", "bg"),
    ]
    for text, background in pairs:
        light, dark = sorted(
            (_luminance(colours[text]), _luminance(colours[background])), reverse=True
        )
        ratio = (light + 0.05) / (dark + 0.05)
        assert ratio >= 4.5, f"{scheme}: --{text} on --{background} is {ratio:.2f}:1"

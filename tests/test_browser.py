"""The pages in a real browser: Debian's Chromium, driven by Playwright, against real nodes on
127.0.0.1 serving real fixture audio.

The player plays, the browser checks the artist's signatures (and warns when the feed was
altered on the way), the admin uploads with a progress bar, withdraws, and follows another
node; every page reads without JavaScript; the embed may be framed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from node.datadir import DataDir
from node.publish import TrackChoices
from tests.support.browser import (
    CHROMIUM_FLAGS,
    DESKTOP,
    PHONE,
    chromium_path,
    playwright_module,
    screenshot_path,
)
from tests.support.federation import RunningNode, eventually
from tests.support.net import loopback_socket
from tests.support.shared import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

MP3 = FIXTURES / "tone.mp3"
OGG = FIXTURES / "tone.ogg"
FLAC = FIXTURES / "tone.flac"
WAV = FIXTURES / "tone.wav"
TIMEOUT_MS = 15_000


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    async_api = playwright_module()
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def artist(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """Ada's node with two tracks: "Morning" (MP3, with a cover) and then "Evening" (Ogg)."""
    node = await RunningNode.create(tmp_path / "ada", "Ada Example")
    await node.publisher.add(MP3, TrackChoices(title="Morning"))
    await node.publisher.add(OGG, TrackChoices(title="Evening"))
    try:
        yield node
    finally:
        await node.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport=DESKTOP)
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.console_errors = errors
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # A Content-Security-Policy violation, a failed module load: errors in the console.
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield opened
    finally:
        await context.close()
    assert errors == [], errors  # no script error on any page a test visited


async def titles(page: Any) -> list[str]:
    return [t.strip() for t in await page.locator("[data-track] .track-title").all_inner_texts()]


async def log_in(page: Any, node: RunningNode) -> None:
    await page.goto(node.url + "admin")
    await page.get_by_label("Admin token").fill(DataDir(node.root).admin_token())
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Manage Ada Example").wait_for()


# --- the artist page ------------------------------------------------------------------------


async def test_the_page_lists_the_tracks_and_plays_them(
    page: Any, artist: RunningNode, tmp_path: Path
) -> None:
    await page.goto(artist.url)
    assert await titles(page) == ["Evening", "Morning"]

    await page.get_by_role("button", name="Play “Evening”").click()
    await page.wait_for_function(
        "() => document.querySelectorAll('audio[data-audio]')[0].currentTime > 0.4"
    )
    await page.locator("[data-feed-check].signed").wait_for()
    await page.screenshot(path=screenshot_path("artist-desktop.png", tmp_path))
    session = await page.evaluate(
        "({title: navigator.mediaSession.metadata.title,"
        " artist: navigator.mediaSession.metadata.artist,"
        " state: navigator.mediaSession.playbackState})"
    )
    assert session == {"title": "Evening", "artist": "Ada Example", "state": "playing"}
    assert await page.locator(".player-title").inner_text() == "Evening"
    assert await page.get_by_role("button", name="Pause", exact=True).count() == 1

    # N plays the next track, Space pauses it, P goes back to the first.
    await page.keyboard.press("n")
    await page.wait_for_function(
        "() => document.querySelectorAll('audio[data-audio]')[1].currentTime > 0.2"
    )
    paused = await page.evaluate(
        "[...document.querySelectorAll('audio[data-audio]')].map(a => a.paused)"
    )
    assert paused == [True, False]
    assert await page.locator(".player-title").inner_text() == "Morning"
    artwork = await page.evaluate("navigator.mediaSession.metadata.artwork.map(a => a.src)")
    assert len(artwork) == 1 and artwork[0].startswith(artist.url + "ipfs/bafk")

    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("Space")
    await page.wait_for_function("() => document.querySelectorAll('audio[data-audio]')[1].paused")
    await page.keyboard.press("ArrowLeft")
    assert await page.evaluate("document.querySelectorAll('audio[data-audio]')[1].currentTime") == 0
    await page.keyboard.press("p")
    await page.wait_for_function(
        "() => !document.querySelectorAll('audio[data-audio]')[0].paused"
        " && document.querySelectorAll('audio[data-audio]')[1].paused"
    )

    # The seek slider moves the playing track.
    await page.evaluate(
        "(() => { const s = document.querySelector('.player-seek');"
        " s.value = '1.5'; s.dispatchEvent(new Event('input')); })()"
    )
    position = await page.evaluate("document.querySelectorAll('audio[data-audio]')[0].currentTime")
    assert position >= 1.5


async def test_the_browser_checks_every_signature(page: Any, artist: RunningNode) -> None:
    await page.goto(artist.url)
    banner = page.locator("[data-feed-check]")
    await page.locator("[data-feed-check].signed").wait_for()
    assert f"are signed by {artist.did}" in " ".join((await banner.inner_text()).split())
    marks = page.locator("[data-signature].signed")
    await eventually_count(marks, 2)
    for text in await marks.all_inner_texts():
        assert f"Signed by {artist.did}" in text
    assert await page.locator("[data-signature].failed").count() == 0


async def test_a_feed_altered_in_flight_shows_the_warning(page: Any, artist: RunningNode) -> None:
    async def change_one_byte(route: Any) -> None:
        response = await route.fetch()
        body = await response.body()
        altered = body.replace(b'"title":"Morning"', b'"title":"Morninh"')
        assert len(altered) == len(body) and altered != body
        await route.fulfill(status=200, body=altered, content_type="application/json")

    await page.route("**/feed.json", change_one_byte)
    await page.goto(artist.url)
    warning = page.locator("[data-feed-check].failed")
    await warning.wait_for()
    assert await warning.get_attribute("role") == "alert"
    text = " ".join((await warning.inner_text()).split())
    assert "Warning: this page failed its signature check" in text
    assert "signature does not match" in text
    await eventually_count(page.locator("[data-signature].failed"), 2)
    assert await page.locator("[data-signature].signed").count() == 0
    assert await page.locator(".signed").count() == 0


async def test_a_page_altered_in_flight_is_caught_against_the_signed_feed(
    page: Any, artist: RunningNode
) -> None:
    async def rename(route: Any) -> None:
        response = await route.fetch()
        html = (await response.text()).replace("Evening", "Evil")
        await route.fulfill(response=response, body=html)

    await page.route(artist.url, rename)
    await page.goto(artist.url)
    assert await titles(page) == ["Evil", "Morning"]
    evil = page.locator("[data-track]").first.locator("[data-signature].failed")
    await evil.wait_for()
    assert "not the title the artist signed" in await evil.inner_text()
    morning = page.locator("[data-track]").nth(1).locator("[data-signature].signed")
    await morning.wait_for()
    banner = page.locator("[data-feed-check].failed")
    assert "a track on this page did not verify" in await banner.inner_text()


async def test_every_page_reads_without_javascript(browser: Any, artist: RunningNode) -> None:
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(artist.url)
        assert await titles(page) == ["Evening", "Morning"]
        assert await page.locator("audio[controls]").count() == 2  # the native players
        assert await page.locator(".player, .play-button").count() == 0
        assert await page.get_by_text("Not for AI training").count() == 3
        track_url = await page.get_by_role("link", name="Morning").get_attribute("href")
        await page.goto(artist.url.rstrip("/") + track_url)
        assert await page.locator("audio[controls]").count() == 1
        await page.goto(artist.url + "terms")
        assert await page.get_by_role("heading", name="Terms of use").count() == 1
        await page.goto(artist.url + "admin")
        assert await page.get_by_label("Admin token").count() == 1
    finally:
        await context.close()


async def test_the_phone_layout_fits_the_screen(
    browser: Any, artist: RunningNode, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = await context.new_page()
        await page.goto(artist.url)
        await page.locator("[data-feed-check].signed").wait_for()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await page.screenshot(path=screenshot_path("artist-phone.png", tmp_path))
    finally:
        await context.close()


async def test_keyboard_focus_reaches_the_player_in_order(page: Any, artist: RunningNode) -> None:
    await page.goto(artist.url)
    await page.locator(".player").wait_for()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    seen = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        seen.append(
            await page.evaluate(
                "document.activeElement.getAttribute('aria-label')"
                " || document.activeElement.textContent.trim()"
            )
        )
    assert seen.index("Play “Evening”") < seen.index("Play “Morning”") < seen.index("Seek")
    # Focus is always visible: the focused control has an outline.
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


# --- the embeddable player ------------------------------------------------------------------


async def test_the_embed_plays_inside_another_sites_frame(page: Any, artist: RunningNode) -> None:
    [morning] = [t for t in await artist.node.catalog.tracks() if t.title == "Morning"]
    embed = f"{artist.url}embed/{morning.id.removeprefix('urn:uuid:')}"

    # Another site: another origin, served on loopback too.
    async def blog(request: web.Request) -> web.Response:
        html = (
            '<!doctype html><title>Blog</title><link rel="icon" href="data:,">'
            f'<iframe src="{embed}" width="600" height="260">'
            f'</iframe><iframe src="{artist.url}" width="600" height="260"></iframe>'
        )
        return web.Response(text=html, content_type="text/html")

    other = web.Application()
    other.router.add_get("/blog.html", blog)
    runner = web.AppRunner(other)
    await runner.setup()
    sock = loopback_socket()
    await web.SockSite(runner, sock).start()
    try:
        await page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/blog.html")
        await _play_in_frame(page)
        # Every other page refuses to be framed (frame-ancestors 'none', X-Frame-Options).
        artist_frame = page.frames[2]
        assert await artist_frame.locator("[data-track]").count() == 0
        refused = [e for e in page.console_errors if "frame-ancestors 'none'" in e]
        assert len(refused) == 1 and refused[0].startswith(f"Framing '{artist.url}'")
        page.console_errors.remove(refused[0])
    finally:
        await runner.cleanup()


async def _play_in_frame(page: Any) -> None:
    frame = page.frame_locator("iframe").first
    await frame.locator("[data-signature].signed").wait_for()
    assert await frame.get_by_text("Not for AI training").count() == 1
    await frame.get_by_role("button", name="Play “Morning”").click()
    inner = page.frames[1]
    await inner.wait_for_function("() => document.querySelector('audio').currentTime > 0.3")


# --- admin ----------------------------------------------------------------------------------


async def test_an_upload_shows_progress_and_the_track_appears(
    page: Any, artist: RunningNode, tmp_path: Path
) -> None:
    await log_in(page, artist)
    await page.screenshot(path=screenshot_path("admin.png", tmp_path), full_page=True)
    # Record every value the progress bar shows.
    await page.evaluate(
        "window.shown = [];"
        "new MutationObserver(() => window.shown.push(document.querySelector('#upload-bar').value))"
        ".observe(document.querySelector('#upload-bar'), {attributes: true});"
    )
    await page.get_by_label("Audio files").set_input_files([str(FLAC), str(WAV)])
    await page.get_by_label("AI training").select_option("notAllowed")
    async with page.expect_response("**/admin/upload") as answer:
        await page.get_by_role("button", name="Publish").click()
    assert (await answer.value).status == 201
    added = [t.title for t in await artist.node.catalog.tracks()][:2]
    assert len(set(added) - {"Evening", "Morning"}) >= 1
    await page.get_by_text(f"Published “{added[1]}”, “{added[0]}”.").wait_for()
    shown = await page.evaluate("window.shown")
    assert shown and shown[-1] == 100 and all(0 <= v <= 100 for v in shown)
    assert await page.locator("[data-progress]").is_visible()

    await eventually_count(page.locator("[data-track-row]"), 4)  # the dashboard, reloaded
    await page.goto(artist.url)
    assert await titles(page) == [*added, "Evening", "Morning"]
    await eventually_count(page.locator("[data-signature].signed"), 4)


async def test_an_upload_without_javascript_posts_the_plain_form(
    browser: Any, artist: RunningNode
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await log_in(page, artist)
        await page.get_by_label("Audio files").set_input_files(str(MP3))
        await page.get_by_role("button", name="Publish").click()
        await page.get_by_text("Published “").wait_for()
        assert await page.locator("[data-track-row]").count() == 3
    finally:
        await context.close()


async def test_withdrawing_asks_first_then_removes_the_track(
    page: Any, artist: RunningNode
) -> None:
    await log_in(page, artist)
    await page.get_by_role("link", name="Withdraw “Morning”").click()
    await page.get_by_role("heading", name="Withdraw “Morning”?").wait_for()
    assert await page.get_by_role("link", name="Cancel: keep it published").count() == 1
    await page.get_by_role("button", name="Withdraw “Morning”").click()
    await page.get_by_text("Withdrew “Morning”.").wait_for()
    await page.goto(artist.url)
    assert await titles(page) == ["Evening"]
    await page.locator("[data-feed-check].signed").wait_for()


async def test_editing_a_title_publishes_a_new_revision(page: Any, artist: RunningNode) -> None:
    await log_in(page, artist)
    await page.get_by_role("link", name="Edit “Evening”").click()
    await page.get_by_label("Title").fill("Late evening")
    await page.get_by_role("button", name="Save and publish").click()
    await page.get_by_text("Published revision 2 of “Late evening”.").wait_for()
    await page.goto(artist.url)
    assert await titles(page) == ["Late evening", "Morning"]
    await eventually_count(page.locator("[data-signature].signed"), 2)


async def test_a_follow_added_in_the_admin_shows_its_status(
    page: Any, artist: RunningNode, tmp_path: Path
) -> None:
    bea = await RunningNode.create(tmp_path / "bea", "Bea Example")
    try:
        await bea.publisher.add(FLAC, TrackChoices(title="Harbour"))
        await log_in(page, artist)
        await page.get_by_role("link", name="Follows", exact=True).click()
        await page.get_by_label("Address of their Stave node").fill(bea.url)
        await page.get_by_role("button", name="Follow", exact=True).click()
        await page.get_by_text("Following Bea Example: 1 tracks.").wait_for()
        entry = page.locator(f'[data-follow="{bea.did}"]')
        assert await entry.locator("[data-follow-tracks]").inner_text() == "1 (feed 2)"
        assert await entry.locator("[data-follow-mirror]").inner_text() == "off"
        assert await entry.locator("[data-follow-error]").inner_text() == "none"
        assert (await entry.locator("[data-follow-sync]").inner_text()).startswith("20")

        await entry.get_by_role("button", name="Mirror Bea Example").click()
        await page.get_by_text("Mirroring of Bea Example is on.").wait_for()
        assert await entry.locator("[data-follow-mirror]").inner_text() == "on"

        # The listener's timeline plays it with the same player, and checks its signature.
        await page.goto(artist.url + "timeline")
        await page.locator("[data-signature].signed").wait_for()
        await page.get_by_role("button", name="Play “Harbour”").click()
        await page.wait_for_function("() => document.querySelector('audio').currentTime > 0.3")
        await page.screenshot(path=screenshot_path("timeline.png", tmp_path), full_page=True)
    finally:
        await bea.stop()


async def eventually_count(locator: Any, count: int) -> None:
    async def matches() -> bool:
        return bool(await locator.count() == count)

    await eventually(matches, timeout=TIMEOUT_MS / 1000, what=f"{count} × {locator}")

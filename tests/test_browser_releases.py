"""A release in a real browser: Debian's Chromium, driven by Playwright, against a real node on
127.0.0.1 serving real fixture audio.

The release page plays track 1 and then track 2 by itself (the next track loaded while the
first plays), the browser checks the signed release and every track's manifest (and warns when
the release was altered on the way), and the artist page shows the release by its cover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from node.publish import TrackChoices
from tests.support.browser import (
    CHROMIUM_FLAGS,
    DESKTOP,
    PHONE,
    chromium_path,
    playwright_module,
    screenshot_path,
)
from tests.support.federation import RunningNode
from tests.support.shared import FIXTURES
from tests.test_release_pages import sign_release

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

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


class Artist:
    def __init__(self, node: RunningNode, release: dict[str, Any]) -> None:
        self.node = node
        self.release = release
        self.url = node.url + "releases/" + release["id"].removeprefix("urn:uuid:")


@pytest_asyncio.fixture(loop_scope="module")
async def artist(tmp_path: Path) -> AsyncIterator[Artist]:
    """Ada's node with the album "Day and Night": 1 "Morning" (MP3, its cover the album's),
    2 "Evening" (Ogg), 3 "Night" (FLAC); and a single, "Loose End" (WAV)."""
    node = await RunningNode.create(tmp_path / "ada", "Ada Example")
    add = node.publisher.add
    morning = await add(FIXTURES / "tone.mp3", TrackChoices(title="Morning"))
    evening = await add(FIXTURES / "tone.ogg", TrackChoices(title="Evening"))
    night = await add(FIXTURES / "tone.flac", TrackChoices(title="Night"))
    await add(FIXTURES / "tone.wav", TrackChoices(title="Loose End"))
    release = await sign_release(
        node.node,
        node.publisher,
        [(morning, 1, 1), (evening, 1, 2), (night, 1, 3)],
        "Day and Night",
        cover=morning["cover"],
        credits=[{"role": "producer", "name": "Bea Example"}],
        description="Three short tones, from morning to night.",
    )
    try:
        yield Artist(node, release)
    finally:
        await node.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport=DESKTOP)
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield opened
    finally:
        await context.close()
    assert errors == [], errors  # no script error on any page a test visited


def words(text: str) -> str:
    return " ".join(text.split())


async def test_the_release_plays_track_1_then_track_2_by_itself(
    page: Any, artist: Artist, tmp_path: Path
) -> None:
    await page.goto(artist.url)
    titles = await page.locator("[data-track] .track-title").all_inner_texts()
    assert [t.strip() for t in titles] == ["Morning", "Evening", "Night"]

    await page.get_by_role("button", name="Play “Morning”").click()
    await page.wait_for_function(
        "() => document.querySelectorAll('audio[data-audio]')[0].currentTime > 0.3"
    )
    # While track 1 plays, track 2 is loading (preload="none" until then); track 3 is not yet.
    preloads = await page.evaluate(
        "[...document.querySelectorAll('audio[data-audio]')].map(a => a.preload)"
    )
    assert preloads == ["auto", "auto", "none"]
    await page.locator("[data-release-check].signed").wait_for()
    await page.screenshot(path=screenshot_path("release-desktop.png", tmp_path))

    # On a desktop the original is streamed (the listening copy is for phones).
    morning = artist.release["tracks"][0]["cid"]
    assert await page.evaluate("document.querySelector('audio[data-audio]').currentSrc") == (
        artist.node.url + "ipfs/" + morning
    )

    # Nobody presses anything: track 1 ends (2 s) and track 2 starts by itself.
    await page.wait_for_function(
        "() => { const a = document.querySelectorAll('audio[data-audio]');"
        " return a[0].ended && !a[1].paused && a[1].currentTime > 0.3; }"
    )
    assert await page.locator(".player-title").inner_text() == "Evening"
    assert await page.locator("[data-track].current .track-title").inner_text() == "Evening"
    session = await page.evaluate("navigator.mediaSession.metadata.title")
    assert session == "Evening"


async def test_the_browser_checks_the_release_and_every_track(page: Any, artist: Artist) -> None:
    await page.goto(artist.url)
    banner = page.locator("[data-release-check].signed")
    await banner.wait_for()
    text = words(await banner.inner_text())
    assert f"this release and its 3 tracks are signed by {artist.node.did}" in text
    marks = page.locator("[data-signature].signed")
    assert await marks.count() == 3
    assert await page.locator("[data-signature].failed").count() == 0


async def test_a_release_altered_in_flight_shows_the_warning(page: Any, artist: Artist) -> None:
    async def rename(route: Any) -> None:
        response = await route.fetch()
        html = (await response.text()).replace("Day and Night", "Day and Nite")
        await route.fulfill(response=response, body=html)

    await page.route(artist.url, rename)
    await page.goto(artist.url)
    warning = page.locator("[data-release-check].failed")
    await warning.wait_for()
    assert await warning.get_attribute("role") == "alert"
    text = words(await warning.inner_text())
    assert "Warning: this release failed its signature check" in text
    assert "signature does not match" in text


async def test_a_page_that_reorders_the_tracks_is_caught(page: Any, artist: Artist) -> None:
    async def reorder(route: Any) -> None:
        response = await route.fetch()
        html = await response.text()
        items = html.split("<li>")
        # The three track cards are the last three <li> of the track list: swap 1 and 2.
        first = next(i for i, item in enumerate(items) if "data-track-id" in item)
        items[first], items[first + 1] = items[first + 1], items[first]
        await route.fulfill(response=response, body="<li>".join(items))

    await page.route(artist.url, reorder)
    await page.goto(artist.url)
    warning = page.locator("[data-release-check].failed")
    await warning.wait_for()
    assert "not the release's, in its order" in await warning.inner_text()


async def test_the_artist_page_shows_the_release_by_its_cover(
    browser: Any, artist: Artist, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(artist.node.url)
        card = page.locator(".release-card")
        assert await card.count() == 1
        cover = card.locator("img.cover")
        await page.wait_for_function(
            "() => document.querySelector('.release-card img.cover').naturalWidth > 0"
        )
        assert await cover.get_attribute("alt") == "Cover art of “Day and Night”"
        banner = page.locator("[data-feed-check].signed")
        await banner.wait_for()
        assert "its 1 release and 1 track are signed by" in words(await banner.inner_text())
        singles = await page.locator("[data-track] .track-title").all_inner_texts()
        assert [t.strip() for t in singles] == ["Loose End"]
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        await page.screenshot(path=screenshot_path("artist-releases-phone.png", tmp_path))
        await card.get_by_role("link", name="Day and Night").click()
        await page.wait_for_url(artist.url)
        await page.get_by_role("heading", name="Day and Night", level=1).wait_for()
    finally:
        await context.close()


async def test_a_release_renamed_on_the_artist_page_is_caught_against_the_feed(
    page: Any, artist: Artist
) -> None:
    async def rename(route: Any) -> None:
        response = await route.fetch()
        html = (await response.text()).replace("Day and Night", "Day and Nite")
        await route.fulfill(response=response, body=html)

    await page.route(artist.node.url, rename)
    await page.goto(artist.node.url)
    banner = page.locator("[data-feed-check].failed")
    await banner.wait_for()
    assert "a release on this page did not verify" in await banner.inner_text()


async def test_the_release_page_reads_without_javascript_and_fits_a_phone(
    browser: Any, artist: Artist
) -> None:
    for javascript in (False, True):
        context = await browser.new_context(viewport=PHONE, java_script_enabled=javascript)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            await page.goto(artist.url)
            controls = await page.evaluate(
                "[...document.querySelectorAll('audio[data-audio]')].map(a => a.controls)"
            )
            assert controls == [not javascript] * 3
            text = words(await page.locator("main").inner_text())
            assert "Producer Bea Example" in text
            assert "Not for AI training" in text
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]
        finally:
            await context.close()


async def test_a_phone_streams_the_listening_copy_and_plays_on(
    browser: Any, artist: Artist
) -> None:
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(artist.url)
        renditions = await page.evaluate(
            "[...document.querySelectorAll('audio[data-audio]')].map(a => a.dataset.rendition)"
        )
        assert all(renditions), renditions  # the node made an Opus copy of every track
        await page.get_by_role("button", name="Play “Morning”").click()
        await page.wait_for_function(
            "() => { const a = document.querySelectorAll('audio[data-audio]');"
            " return a[0].ended && !a[1].paused && a[1].currentTime > 0.3; }"
        )
        played = await page.evaluate(
            "[...document.querySelectorAll('audio[data-audio]')].slice(0, 2)"
            ".map(a => new URL(a.currentSrc).pathname)"
        )
        assert played == renditions[:2]
        # The original stays the download.
        original = artist.release["tracks"][0]["cid"]
        assert await page.locator(f'a[download][href="/ipfs/{original}"]').count() == 1
    finally:
        await context.close()

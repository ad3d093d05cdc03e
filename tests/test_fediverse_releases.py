"""A release posted to the fediverse once, on a real node on 127.0.0.1: one `Note` with its
tracks' playable `Audio` (the first four, all Mastodon shows), a link to the release page, its
terms in words and the artist's FEP-8b32 proof; no post for any of its tracks; an `Update` when
it is revised, a `Delete` and a 410 `Tombstone` when it is withdrawn; a loose track posted as
before. A real inbox server on loopback records what arrives at each follower inbox."""

from __future__ import annotations

import asyncio
import html
import json
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node import media
from node.catalog import CatalogWrite, open_catalog
from node.catalog.schema import MIGRATIONS
from node.fediverse.notes import MAX_AUDIO_ATTACHMENTS, verify_object
from node.feed import format_timestamp
from node.publish import TrackChoices
from node.release import build_release, release_track_entry, revise_release
from node.signing import sign_document
from node.terms import Terms
from tests.support.federation import RunningNode, eventually
from tests.test_fediverse_posts import InboxServer, add_followers, get, get_json
from tests.test_fediverse_posts import inbox_server as inbox_server  # the fixture

FILES = ("tone.mp3", "tone.ogg", "tone.flac", "tone.m4a", "tone.wav")
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


@pytest.fixture
async def artist(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await RunningNode.create(tmp_path / "artist", "Ada Example")
    try:
        yield running
    finally:
        await running.stop()


def shared_fixture(name: str) -> Path:
    from tests.support.shared import FIXTURES

    return FIXTURES / name


async def publish_release(
    node: RunningNode,
    names: tuple[str, ...] = FILES,
    *,
    title: str = "First Light",
    terms: Terms | None = None,
    description: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Tracks and the release listing them, signed and published in one transaction and one
    feed, as publishing a folder does: (the signed release, its track manifests in order)."""
    publisher = node.publisher
    track_terms = terms or publisher.default_terms()
    created: list[str] = []
    manifests = []
    for name in names:
        source = shared_fixture(name)
        info = await asyncio.to_thread(media.probe, source)
        manifests.append(
            await publisher._prepare(source, info, TrackChoices(), track_terms, created)
        )
    release = sign_document(
        build_release(
            release_id=f"urn:uuid:{uuid.uuid4()}",
            revision=1,
            artist=node.did,
            title=title,
            kind="album" if len(names) > 1 else "single",
            released="2026-11-26",
            published=format_timestamp(datetime.now(UTC)),
            tracks=[release_track_entry(m, 1, n) for n, m in enumerate(manifests, start=1)],
            cover=manifests[0].get("cover"),
            description=description,
            terms=terms,
        ),
        node.node.identity,
    )

    async def change(tx: CatalogWrite) -> None:
        for manifest in manifests:
            await tx.put_track(manifest)
        await tx.put_release(release)

    await publisher._feed_after(change)
    return release, manifests


async def rename_track_in_release(
    node: RunningNode, release: dict[str, Any], manifest: dict[str, Any], title: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The track's next revision under a new title and the release's next, in one feed."""
    unsigned = {k: v for k, v in manifest.items() if k != "proof"}
    unsigned.update(revision=manifest["revision"] + 1, title=title)
    renamed = sign_document(unsigned, node.node.identity)
    revised = revise_release(release, {renamed["id"]: renamed})
    assert revised is not None
    signed = sign_document(revised, node.node.identity)

    async def change(tx: CatalogWrite) -> None:
        await tx.put_track(renamed)
        await tx.put_release(signed)

    await node.publisher._feed_after(change)
    return signed, renamed


async def withdraw_release(node: RunningNode, release_id: str) -> None:
    async def change(tx: CatalogWrite) -> None:
        await tx.withdraw_release(release_id, format_timestamp(datetime.now(UTC)))

    await node.publisher._feed_after(change)


def uuid_of(document: dict[str, Any]) -> str:
    return str(document["id"]).removeprefix("urn:uuid:")


def of_kind(note: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in note["attachment"] if a["type"] == kind]


async def test_a_release_is_one_note_and_its_tracks_have_no_posts(artist: RunningNode) -> None:
    release, manifests = await publish_release(artist, description="Five tones, one light.")
    base = artist.url
    post_url = f"{base}posts/{uuid_of(release)}"
    page_url = f"{base}releases/{uuid_of(release)}"

    outbox = await get_json(base + "actor/outbox")
    assert outbox["totalItems"] == 1
    [create] = (await get_json(outbox["first"]))["orderedItems"]
    assert create["type"] == "Create" and create["actor"] == base + "actor"
    note = create["object"]
    assert note == await get_json(post_url)
    catalog = artist.node.catalog
    for manifest in manifests:
        assert await catalog.fediverse_post(manifest["id"]) is None
        await get(f"{base}posts/{uuid_of(manifest)}", 404, {"Accept": "application/activity+json"})
    post = await catalog.fediverse_post(release["id"])
    assert post is not None and post.kind == "release" and post.revision == 1
    info = json.loads((await get(base + "nodeinfo/2.1", 200))[1])
    assert info["usage"]["localPosts"] == 1

    assert note["id"] == post_url and note["type"] == "Note"
    assert note["attributedTo"] == base + "actor"
    assert note["to"] == [PUBLIC] and note["cc"] == [base + "actor/followers"]
    assert note["url"] == page_url
    assert note["published"] == release["published"] and "updated" not in note
    content = note["content"]
    assert f'<a href="{page_url}">First Light</a>' in content
    assert "Album, released 2026-11-26, 5 tracks." in content
    titles = [m["title"] for m in manifests]
    assert "<ol>" + "".join(f"<li>{t}</li>" for t in titles) + "</ol>" in content
    assert "Five tones, one light." in content
    terms = artist.publisher.default_terms()
    assert html.escape(terms.in_words()) in content and "Not for AI training" in content

    audio = of_kind(note, "Audio")
    assert len(audio) == MAX_AUDIO_ATTACHMENTS == 4  # five tracks, four shown
    for attachment, manifest in zip(audio, manifests, strict=False):
        assert attachment["name"] == manifest["title"]
        assert attachment["mediaType"] == manifest["audio"]["mediaType"]
        assert attachment["url"] == f"{base}ipfs/{manifest['audio']['cid']}"
        response, body = await get(attachment["url"], 200)
        assert len(body) == manifest["audio"]["size"]
        assert response.headers["Content-Type"] == manifest["audio"]["mediaType"]
        # Every track shows the release's cover.
        assert attachment["icon"]["url"] == f"{base}ipfs/{release['cover']['cid']}"
    values = {a["name"]: a["value"] for a in of_kind(note, "PropertyValue")}
    assert values["Release ID"] == release["id"] and values["Released"] == "2026-11-26"
    assert values["AI training"] == "notAllowed" and values["Terms"] == terms.in_words()
    [link] = of_kind(note, "Link")
    assert link["href"] == page_url + "/feed.rss" and link["mediaType"] == "application/rss+xml"
    verify_object(note, artist.did, base + "actor#ed25519-key")


async def test_release_changes_are_delivered_once_to_each_inbox(
    artist: RunningNode, inbox_server: InboxServer
) -> None:
    inboxes = await add_followers(artist, inbox_server.url)
    base = artist.url

    async def arrived(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return inbox_server.of_type(kind) if len(inbox_server.of_type(kind)) >= 3 else []

    release, manifests = await publish_release(artist, FILES[:3])
    post_url = f"{base}posts/{uuid_of(release)}"
    creates = await eventually(lambda: arrived("Create"), what="the Create at every inbox")
    assert sorted(path for path, _ in creates) == sorted(inboxes)  # once each
    assert {body["object"]["id"] for _, body in creates} == {post_url}  # no track's post
    assert len(of_kind(creates[0][1]["object"], "Audio")) == 3

    revised, _ = await rename_track_in_release(artist, release, manifests[1], "Second Light")
    updates = await eventually(lambda: arrived("Update"), what="the Update at every inbox")
    assert sorted(path for path, _ in updates) == sorted(inboxes)
    updated = updates[0][1]["object"]
    assert updated["id"] == post_url and "<li>Second Light</li>" in updated["content"]
    assert updated["updated"] >= updated["published"]
    assert of_kind(updated, "Audio")[1]["name"] == "Second Light"
    verify_object(updated, artist.did, base + "actor#ed25519-key")
    assert await get_json(post_url) == updated
    post = await artist.node.catalog.fediverse_post(release["id"])
    assert post is not None and post.revision == revised["revision"] == 2

    await withdraw_release(artist, release["id"])
    deletes = await eventually(lambda: arrived("Delete"), what="the Delete at every inbox")
    assert sorted(path for path, _ in deletes) == sorted(inboxes)
    tombstone = deletes[0][1]["object"]
    assert tombstone["id"] == post_url and tombstone["type"] == "Tombstone"
    assert tombstone["formerType"] == "Note" and tombstone["deleted"]
    assert await get_json(post_url, 410) == tombstone
    assert (await get_json(base + "actor/outbox"))["totalItems"] == 0

    # Three changes, each once to each of three inboxes; a restart announces nothing again.
    assert len(inbox_server.received) == 9
    await artist.stop()
    await artist.restart()
    assert len(await artist.node.catalog.deliveries()) == 9
    assert len(inbox_server.received) == 9


async def test_a_loose_track_is_posted_beside_releases(artist: RunningNode) -> None:
    loose = await artist.publisher.add(shared_fixture("tone.opus"))
    release, manifests = await publish_release(artist, ("tone.aiff",), title="A Single")
    catalog = artist.node.catalog
    track_post = await catalog.fediverse_post(loose["id"])
    assert track_post is not None and track_post.kind == "track"
    assert track_post.object["url"] == f"{artist.url}tracks/{uuid_of(loose)}"
    assert await catalog.fediverse_post(manifests[0]["id"]) is None
    note = (await catalog.fediverse_post(release["id"])).object  # type: ignore[union-attr]
    assert "Single, released 2026-11-26, 1 track." in note["content"]
    assert "icon" not in of_kind(note, "Audio")[0]  # neither release nor track has a cover
    assert (await get_json(artist.url + "actor/outbox"))["totalItems"] == 2

    # A track posted on its own before a release listed it keeps its one post, kept current.
    later = sign_document(
        build_release(
            release_id=f"urn:uuid:{uuid.uuid4()}",
            revision=1,
            artist=artist.did,
            title="Collected",
            kind="compilation",
            released="2026-12-01",
            published=format_timestamp(datetime.now(UTC)),
            tracks=[release_track_entry(loose, 1, 1), release_track_entry(manifests[0], 1, 2)],
        ),
        artist.node.identity,
    )

    async def put(tx: CatalogWrite) -> None:
        await tx.put_release(later)

    await artist.publisher._feed_after(put)
    assert (await get_json(artist.url + "actor/outbox"))["totalItems"] == 3
    await artist.publisher.edit(loose["id"], TrackChoices(title="Renamed"))
    track_post = await catalog.fediverse_post(loose["id"])
    assert track_post is not None and track_post.revision == 2
    assert "Renamed" in track_post.object["content"]

    # Withdrawn, a release's tracks that stay published get no posts: the release's was theirs.
    await withdraw_release(artist, release["id"])
    await withdraw_release(artist, later["id"])
    assert await catalog.fediverse_post(manifests[0]["id"]) is None
    assert (await get_json(artist.url + "actor/outbox"))["totalItems"] == 1  # the loose track


async def test_a_track_a_revision_leaves_out_is_loose_again(artist: RunningNode) -> None:
    release, manifests = await publish_release(artist, FILES[:3])
    shorter = {k: v for k, v in release.items() if k != "proof"}
    shorter.update(revision=2, tracks=release["tracks"][:2])
    signed = sign_document(shorter, artist.node.identity)

    async def put(tx: CatalogWrite) -> None:
        await tx.put_release(signed)

    await artist.publisher._feed_after(put)
    catalog = artist.node.catalog
    left_out = await catalog.fediverse_post(manifests[2]["id"])
    assert left_out is not None and left_out.kind == "track"
    assert [await catalog.fediverse_post(m["id"]) for m in manifests[:2]] == [None, None]
    post = await catalog.fediverse_post(release["id"])
    assert post is not None and post.revision == 2 and "2 tracks" in post.object["content"]


async def test_a_release_with_its_own_terms_says_them(artist: RunningNode) -> None:
    own = Terms().with_choices(license="CC-BY-4.0", copyright="2026 Ada", ai_training="allowed")
    release, _ = await publish_release(artist, FILES[:2], terms=own)
    post = await artist.node.catalog.fediverse_post(release["id"])
    assert post is not None
    content = post.object["content"]
    assert html.escape(own.in_words()) in content and "Licensed under CC-BY-4.0" in content
    assert html.escape(artist.publisher.default_terms().in_words()) not in content
    assert "Not for AI training" not in content
    values = {a["name"]: a["value"] for a in of_kind(post.object, "PropertyValue")}
    assert values["License"] == own.license_url and values["AI training"] == "allowed"


async def test_release_texts_are_escaped(artist: RunningNode) -> None:
    title = '<script>alert("x")</script> & <b>Co</b>'
    release, _ = await publish_release(
        artist, FILES[:1], title=title, description="<img src=x onerror=alert(1)>" * 40
    )
    post = await artist.node.catalog.fediverse_post(release["id"])
    assert post is not None
    content = post.object["content"]
    assert "<script>" not in content and "<b>" not in content and "<img" not in content
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;" in content
    )
    assert "…</p>" in content  # the long description is shortened; the page has it all


async def test_posts_from_before_releases_are_track_posts(tmp_path: Path) -> None:
    """A catalog made before migration 7 keeps its posts, each now the post of a track."""
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(MIGRATIONS[:6], start=1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute(
            "INSERT INTO fediverse_posts VALUES ('urn:uuid:1', 'https://a.example/posts/1',"
            " '{}', 1, 0, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        )
    async with open_catalog(path) as catalog:
        post = await catalog.fediverse_post("urn:uuid:1")
        assert post is not None and post.kind == "track"
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE fediverse_posts SET kind = 'podcast'")


async def test_outbox_lists_releases_and_tracks(artist: RunningNode) -> None:
    loose = await artist.publisher.add(shared_fixture("tone.ogg"))
    release, _ = await publish_release(artist, FILES[:2])
    outbox = await get_json(artist.url + "actor/outbox")
    items = (await get_json(outbox["first"]))["orderedItems"]
    assert outbox["totalItems"] == 2 and {i["object"]["url"] for i in items} == {
        f"{artist.url}tracks/{uuid_of(loose)}",
        f"{artist.url}releases/{uuid_of(release)}",
    }


async def test_a_browser_is_sent_to_the_release_page(artist: RunningNode) -> None:
    release, _ = await publish_release(artist, FILES[:1])
    response, _ = await get(f"{artist.url}posts/{uuid_of(release)}", 303, {"Accept": "text/html"})
    assert response.headers["Location"] == f"{artist.url}releases/{uuid_of(release)}"


async def test_fedify_verifies_the_release_notes_proof(artist: RunningNode) -> None:
    """Fedify, an independent implementation, checks the release Note's FEP-8b32 proof
    against the actor's Multikey (skipped without Node.js 22 and Fedify)."""
    from tests.support.fedify import FedifyPeer

    release, _ = await publish_release(artist, FILES[:2])
    with FedifyPeer.start() as peer:
        checked = await asyncio.to_thread(
            peer.verify_object, f"{artist.url}posts/{uuid_of(release)}"
        )
    assert checked["ok"] and checked["verified"] and checked["proofs"] == 1, checked


async def test_a_folder_published_as_a_release_is_announced_once(
    artist: RunningNode, inbox_server: InboxServer, tmp_path: Path
) -> None:
    """Through the release publisher itself: a folder, then an edit, then a withdrawal (which
    withdraws the tracks too): one Create, one Update, one Delete at each inbox, nothing more."""
    from node.releases import ReleaseChoices, ReleasePublisher, release_sources

    inboxes = await add_followers(artist, inbox_server.url)
    folder = tmp_path / "First Light"
    folder.mkdir()
    for n, name in enumerate(FILES, start=1):
        shutil.copyfile(shared_fixture(name), folder / f"{n:02d} {name}")
    publisher = ReleasePublisher(artist.node)
    published = await publisher.add_release(
        release_sources([str(folder)]), ReleaseChoices(title="First Light", kind="album")
    )
    release = published.release
    post_url = f"{artist.url}posts/{uuid_of(release)}"

    async def arrived(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return inbox_server.of_type(kind) if len(inbox_server.of_type(kind)) >= 3 else []

    creates = await eventually(lambda: arrived("Create"), what="the Create at every inbox")
    assert sorted(path for path, _ in creates) == sorted(inboxes)
    note = creates[0][1]["object"]
    assert note["id"] == post_url and "First Light" in note["content"]
    by_cid = {m["audio"]["cid"]: m for m in published.manifests}
    audio = of_kind(note, "Audio")
    assert [a["url"].rsplit("/", 1)[1] for a in audio] == [t["cid"] for t in release["tracks"][:4]]
    assert [a["name"] for a in audio] == [by_cid[t["cid"]]["title"] for t in release["tracks"][:4]]

    await publisher.edit_release(release["id"], ReleaseChoices(title="First Light (Deluxe)"))
    updates = await eventually(lambda: arrived("Update"), what="the Update at every inbox")
    assert "First Light (Deluxe)" in updates[0][1]["object"]["content"]

    await publisher.withdraw_release(release["id"])
    deletes = await eventually(lambda: arrived("Delete"), what="the Delete at every inbox")
    assert {body["object"]["id"] for _, body in deletes} == {post_url}
    assert len(inbox_server.received) == 9
    assert len(await artist.node.catalog.deliveries()) == 9
    assert (await get_json(artist.url + "actor/outbox"))["totalItems"] == 0


async def test_a_release_that_fails_posts_and_queues_nothing(
    artist: RunningNode, inbox_server: InboxServer, tmp_path: Path
) -> None:
    from node.errors import StaveError
    from node.releases import ReleasePublisher, release_sources
    from tests.support.shared import BAD_FIXTURES

    await add_followers(artist, inbox_server.url)
    folder = tmp_path / "Broken"
    folder.mkdir()
    shutil.copyfile(shared_fixture("tone.flac"), folder / "01 tone.flac")
    bad = BAD_FIXTURES[0]
    shutil.copyfile(bad, folder / f"02 {bad.name}")
    with pytest.raises(StaveError, match=bad.name):
        await ReleasePublisher(artist.node).add_release(release_sources([str(folder)]))
    catalog = artist.node.catalog
    assert await catalog.fediverse_post_count() == 0
    assert await catalog.deliveries() == []
    assert inbox_server.received == []

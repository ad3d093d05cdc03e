"""Each published track as a fediverse post, on a real node on 127.0.0.1: the `Note` with its
playable `Audio`, its FEP-8b32 proof, the outbox, `Update` on edit, `Delete` and a 410
`Tombstone` on withdrawal, and every activity delivered once to each distinct inbox of the
followers (a real inbox server on loopback records what arrives)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.catalog import FediverseFollower
from node.cid import base58_decode
from node.errors import VerificationError
from node.fediverse.notes import verify_object
from node.identity import verify_signature
from node.publish import TrackChoices
from node.signing import hash_data, verify_document
from tests.support.federation import RunningNode, eventually
from tests.support.net import loopback_socket, serving
from tests.support.shared import FIXTURES

AP = {"Accept": "application/activity+json"}


@pytest.fixture
async def artist(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await RunningNode.create(tmp_path / "artist", "Ada Example")
    try:
        yield running
    finally:
        await running.stop()


async def get(url: str, status: int, headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers or {}, allow_redirects=False) as response,
    ):
        body = await response.read()
        assert response.status == status, body
        return response, body


async def get_json(url: str, status: int = 200) -> Any:
    response, body = await get(url, status, AP)
    assert response.content_type == "application/activity+json"
    return json.loads(body)


def attachments(note: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in note["attachment"] if a["type"] == kind]


async def test_a_published_track_is_a_note_with_playable_audio(artist: RunningNode) -> None:
    manifest = await artist.publisher.add(FIXTURES / "tone.mp3")  # has a cover
    uuid = manifest["id"].removeprefix("urn:uuid:")
    base = artist.url
    post_url = f"{base}posts/{uuid}"

    outbox = await get_json(base + "actor/outbox")
    assert outbox["totalItems"] == 1
    page = await get_json(outbox["first"])
    [create] = page["orderedItems"]
    assert create["type"] == "Create" and create["actor"] == base + "actor"
    note = create["object"]
    assert note == await get_json(post_url)  # the object dereferences to the same JSON

    assert note["id"] == post_url and note["type"] == "Note"
    assert note["attributedTo"] == base + "actor"
    assert note["to"] == ["https://www.w3.org/ns/activitystreams#Public"]
    assert note["cc"] == [base + "actor/followers"]
    assert note["published"] == manifest["published"] and "updated" not in note
    assert note["url"] == f"{base}tracks/{uuid}"
    content = note["content"]
    assert manifest["title"] in content and "Not for AI training" in content
    assert f'href="{base}tracks/{uuid}"' in content

    [audio] = attachments(note, "Audio")
    assert audio["mediaType"] == manifest["audio"]["mediaType"] == "audio/mpeg"
    assert audio["url"] == f"{base}ipfs/{manifest['audio']['cid']}"
    assert audio["name"] == manifest["title"]
    response, body = await get(audio["url"], 200)
    assert len(body) == manifest["audio"]["size"]
    assert response.headers["Content-Type"] == "audio/mpeg"
    icon = audio["icon"]
    assert icon["type"] == "Image" and icon["mediaType"] == manifest["cover"]["mediaType"]
    _, cover = await get(icon["url"], 200)
    assert len(cover) == manifest["cover"]["size"]

    values = {a["name"]: a["value"] for a in attachments(note, "PropertyValue")}
    assert values["Content ID"] == manifest["audio"]["cid"]
    assert values["AI training"] == "notAllowed"
    assert "Not allowed without the artist's permission" in values["Terms"]
    [link] = attachments(note, "Link")
    assert link["mediaType"] == "application/json"
    signed = json.loads((await get(link["href"], 200))[1])
    assert signed == manifest
    verify_document(signed, artist.did)

    # FEP-8b32: eddsa-jcs-2022 by the artist's key, under the actor's Multikey.
    proof = note["proof"]
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["verificationMethod"] == base + "actor#ed25519-key"
    assert proof["proofPurpose"] == "assertionMethod"
    unsecured = {k: v for k, v in note.items() if k != "proof"}
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    config["@context"] = note["@context"]  # eddsa-jcs-2022 §3.3.5
    signature = base58_decode(proof["proofValue"][1:])
    verify_signature(artist.did, signature, hash_data(config, unsecured))
    verify_object(note, artist.did, base + "actor#ed25519-key")
    tampered = dict(note, content=note["content"].replace("Listen", "Buy"))
    with pytest.raises(VerificationError, match="does not verify"):
        verify_object(tampered, artist.did, base + "actor#ed25519-key")

    response, _ = await get(post_url, 303, {"Accept": "text/html"})
    assert response.headers["Location"] == f"{base}tracks/{uuid}"
    assert response.headers["Vary"] == "Accept"
    info = json.loads((await get(base + "nodeinfo/2.1", 200))[1])
    assert info["usage"]["localPosts"] == 1
    await get(f"{base}posts/{'0' * 8}-0000-4000-8000-{'0' * 12}", 404, AP)
    await get(f"{base}posts/not-a-uuid", 404, AP)


async def test_titles_are_escaped_in_the_content(artist: RunningNode) -> None:
    title = '<script>alert("x")</script> & <b>Co</b>'
    manifest = await artist.publisher.add(FIXTURES / "tone.ogg", TrackChoices(title=title))
    note = await get_json(artist.url + "posts/" + manifest["id"].removeprefix("urn:uuid:"))
    assert "<script>" not in note["content"] and "<b>" not in note["content"]
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;"
        in (note["content"])
    )
    [audio] = attachments(note, "Audio")
    assert audio["name"] == title and "icon" not in audio  # no cover in this file


@dataclass
class InboxServer:
    """A real inbox on 127.0.0.1 that records every POST, by path."""

    url: str = ""
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, json.loads(await request.read())))
        return web.Response(status=202)

    def of_type(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(path, body) for path, body in self.received if body["type"] == kind]


@pytest.fixture
async def inbox_server() -> AsyncIterator[InboxServer]:
    server = InboxServer()
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    sock = loopback_socket()
    server.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    async with serving(app, sock):
        yield server


async def add_followers(node: RunningNode, inbox: str) -> set[str]:
    """Five followers on three servers: four share two shared inboxes, one has none."""
    followers = [
        ("a", "alice", True),
        ("a", "amos", True),
        ("b", "bea", True),
        ("b", "bo", True),
        ("c", "cy", False),
    ]
    async with node.node.catalog.transaction() as tx:
        for server, name, shared in followers:
            actor = f"{inbox}{server}/users/{name}"
            await tx.add_fediverse_follower(
                FediverseFollower(
                    actor=actor,
                    inbox=actor + "/inbox",
                    shared_inbox=f"{inbox}{server}/inbox" if shared else None,
                    domain="127.0.0.1",
                    acct=f"{name}@{server}.example",
                    follow_id=None,
                    followed_at="2026-01-01T00:00:00Z",
                )
            )
    return {"/a/inbox", "/b/inbox", "/c/users/cy/inbox"}


async def test_post_changes_are_delivered_once_to_each_inbox(
    artist: RunningNode, inbox_server: InboxServer
) -> None:
    inboxes = await add_followers(artist, inbox_server.url)
    base = artist.url
    manifest = await artist.publisher.add(FIXTURES / "tone.flac")
    post_url = base + "posts/" + manifest["id"].removeprefix("urn:uuid:")

    async def arrived(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return inbox_server.of_type(kind) if len(inbox_server.of_type(kind)) >= 3 else []

    creates = await eventually(lambda: arrived("Create"), what="the Create at every inbox")
    assert sorted(path for path, _ in creates) == sorted(inboxes)  # once each
    assert all(body["object"] == creates[0][1]["object"] for _, body in creates)
    assert creates[0][1]["object"]["id"] == post_url
    queued = await artist.node.catalog.deliveries()
    assert len(queued) == 3 and {d.inbox for d in queued} == {
        inbox_server.url.rstrip("/") + p for p in inboxes
    }

    await artist.publisher.edit(manifest["id"], TrackChoices(title="Second name"))
    updates = await eventually(lambda: arrived("Update"), what="the Update at every inbox")
    assert sorted(path for path, _ in updates) == sorted(inboxes)
    updated = updates[0][1]["object"]
    assert updated["id"] == post_url and "Second name" in updated["content"]
    assert updated["updated"] >= updated["published"]
    verify_object(updated, artist.did, base + "actor#ed25519-key")
    assert await get_json(post_url) == updated
    post = await artist.node.catalog.fediverse_post(manifest["id"])
    assert post is not None and post.revision == 2 and not post.deleted

    await artist.publisher.withdraw(manifest["id"])
    deletes = await eventually(lambda: arrived("Delete"), what="the Delete at every inbox")
    assert sorted(path for path, _ in deletes) == sorted(inboxes)
    tombstone = deletes[0][1]["object"]
    assert tombstone["id"] == post_url and tombstone["type"] == "Tombstone"
    assert tombstone["formerType"] == "Note" and tombstone["deleted"]
    assert await get_json(post_url, 410) == tombstone
    assert (await get_json(base + "actor/outbox"))["totalItems"] == 0
    await get(base + "tracks/" + manifest["id"].removeprefix("urn:uuid:") + "/manifest.json", 410)

    # Nothing is announced twice: a restart finds every post up to date.
    assert len(inbox_server.received) == 9
    await artist.stop()
    await artist.restart()
    assert len(await artist.node.catalog.deliveries()) == 9
    assert len(inbox_server.received) == 9


async def test_no_followers_no_deliveries(artist: RunningNode) -> None:
    await artist.publisher.add(FIXTURES / "tone.ogg")
    assert await artist.node.catalog.fediverse_post_count() == 1
    assert await artist.node.catalog.deliveries() == []


async def test_fedify_reads_the_actor_and_verifies_the_notes_proof(artist: RunningNode) -> None:
    """Fedify, an independent implementation, looks the actor up and checks the Note's
    FEP-8b32 proof against the actor's Multikey (skipped without Node.js 22 and Fedify)."""
    import asyncio

    from tests.support.fedify import FedifyPeer

    manifest = await artist.publisher.add(FIXTURES / "tone.m4a")
    post_url = artist.url + "posts/" + manifest["id"].removeprefix("urn:uuid:")
    with FedifyPeer.start() as peer:
        found = await asyncio.to_thread(peer.lookup, artist.url + "actor")
        assert found["ok"], found
        checked = await asyncio.to_thread(peer.verify_object, post_url)
    assert checked["ok"] and checked["verified"] and checked["proofs"] == 1, checked

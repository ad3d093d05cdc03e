"""Stave against a real, independent ActivityPub implementation: a Fedify follower
(tests/js/fedify_peer.mjs on Node.js 22) and a real `stave run`, both on 127.0.0.1.

Fedify looks the artist up by its actor URL (and reads its NodeInfo, outbox and followers) and
follows it; the node's Accept, and the Create, Update and Delete that `stave add`, `stave edit`
and `stave withdraw` send, reach Fedify's inbox with HTTP signatures Fedify verifies, and the
Note's FEP-8b32 proof verifies in Fedify too. Fedify's Undo and Delete of its actor remove the
follower; a blocked domain loses its follower and cannot follow; a Fedify in authorized-fetch
mode gets signed key fetches; a follow signed RFC 9421 is taken at the first knock. Requests
Fedify signed and the test then altered, replayed or back-dated are refused, and change nothing.
A node killed with SIGKILL while deliveries are queued sends each of them after restart, once.
WebFinger is tested over plain http directly (Fedify's `acct:` lookup needs https).

Without Node.js 22 and Fedify (scripts/test installs them) the tests skip; with CI=true they fail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.cli import clean_environment, ok, stave, stave_command
from tests.support.federation import make_node_dir
from tests.support.fedify import FedifyPeer, SignedRequest, fedify_runtime
from tests.support.net import free_port
from tests.support.node import first_line
from tests.support.shared import FIXTURES

HANDLE = "ada"
AP_JSON = "application/activity+json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
# Deliveries retried after a 503 wait 15–30 s (delivery.py: 30 s, jitter over its upper half).
RETRY_WAIT = 90.0

T = TypeVar("T")


def eventually(check: Callable[[], T | None], *, what: str, timeout: float = 30.0) -> T:
    """The first truthy result of `check`, polled every 0.1 s; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, accept: str = AP_JSON) -> Response:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Response(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


class StaveRun:
    """A real `stave run` of a data directory on 127.0.0.1:`port`, restartable, killable."""

    def __init__(self, root: Path, port: int, log: Path) -> None:
        self.root = root
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                stave_command(self.root, "run", "--host", "127.0.0.1", "--port", str(self.port)),
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=clean_environment({"PYTHONUNBUFFERED": "1"}),
            )
        line = first_line(self.process, 60)
        assert line == self.url, f"stave run printed {line!r}: {self.output()}"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def _close(self) -> None:
        assert self.process is not None
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    @property
    def actor(self) -> str:
        return f"{self.url}actor"

    def followers(self) -> list[str]:
        """The follower actors in the catalog, read as they are (the node keeps running)."""
        uri = f"file:{self.root / 'catalog.sqlite'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return sorted(row[0] for row in db.execute("SELECT actor FROM fediverse_followers"))

    def deliveries(self) -> list[tuple[str, str, int]]:
        """(activity id, state, attempts) of every delivery in the queue."""
        uri = f"file:{self.root / 'catalog.sqlite'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            rows = db.execute(
                "SELECT a.activity_id, d.state, d.attempts FROM fediverse_deliveries d"
                " JOIN fediverse_activities a ON a.id = d.activity ORDER BY d.id"
            )
            return [(str(a), str(s), int(n)) for a, s, n in rows]


@pytest.fixture(autouse=True)
def fedify_installed() -> None:
    """Skip (or fail, with CI=true) before any node is made when Fedify is not installed."""
    fedify_runtime()


@pytest.fixture
def peer() -> Iterator[FedifyPeer]:
    with FedifyPeer.start() as running:
        yield running


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StaveRun]:
    port = free_port()
    root = asyncio.run(
        make_node_dir(tmp_path / "node", port, "Ada Example", fediverse__handle=HANDLE)
    )
    running = StaveRun(root, port, tmp_path / "run.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def received_of(peer: FedifyPeer, kind: str, match: Callable[[dict[str, Any]], bool]) -> Any:
    """The activities of type `kind` the peer verified and `match` accepts."""
    return [a for a in peer.received() if a["type"] == kind and match(a)]


def object_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def followed(peer: FedifyPeer, node: StaveRun) -> dict[str, Any]:
    """Fedify follows the node's actor; returns the Accept it verified, with the Follow's id
    added as "follow"."""
    sent = peer.follow(node.actor)
    assert sent["ok"], f"{sent['error']}\n{peer.log()}\n{node.output()}"
    follow_id = sent["id"]

    def accept() -> Any:
        found = received_of(peer, "Accept", lambda a: object_id(a["object"]) == follow_id)
        return found[0] if found else None

    what = f"the verified Accept of {follow_id}"
    try:
        found: dict[str, Any] = eventually(accept, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{peer.log()}\n{node.output()}") from None
    return {**found, "follow": follow_id}


def delivered(peer: FedifyPeer, node: StaveRun, kind: str, note: str, timeout: float = 30) -> Any:
    """The verified activity of type `kind` about the post `note`, once it arrives."""

    def check() -> Any:
        found = received_of(peer, kind, lambda a: object_id(a["object"]) == note)
        return found[-1] if found else None

    try:
        return eventually(check, what=f"a verified {kind} of {note}", timeout=timeout)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\ninbox log: {peer.inbox_log()}\n{peer.log()}\n{node.output()}"
        ) from None


def add(node: StaveRun, path: Path, *args: str) -> dict[str, Any]:
    tracks = json.loads(ok(stave(node.root, "add", str(path), "--json", *args)))
    assert len(tracks) == 1, tracks
    track: dict[str, Any] = tracks[0]
    return track


def post_url(node: StaveRun, track_id: str) -> str:
    return f"{node.url}posts/{track_id.removeprefix('urn:uuid:')}"


def one_line(text: str) -> str:
    message = text.strip()
    assert message and len(message.splitlines()) == 1, text
    assert "Traceback" not in message, text
    return message


# --- discovery -------------------------------------------------------------------------------


def test_webfinger_over_http_and_fedify_looks_the_actor_up(
    node: StaveRun, peer: FedifyPeer
) -> None:
    host = f"127.0.0.1:{node.port}"
    by_acct = get(
        f"{node.url}.well-known/webfinger?resource=acct:{HANDLE}@{host}", "application/jrd+json"
    )
    assert by_acct.status == 200, by_acct.body
    assert by_acct.headers["Content-Type"].startswith("application/jrd+json")
    jrd = by_acct.json()
    assert jrd["subject"] == f"acct:{HANDLE}@{host}"
    selves = [link for link in jrd["links"] if link.get("rel") == "self"]
    assert [(s["type"], s["href"]) for s in selves] == [(AP_JSON, node.actor)]
    # The reverse: the actor's URL as the resource names the same actor.
    query = urllib.parse.urlencode({"resource": node.actor})
    by_url = get(f"{node.url}.well-known/webfinger?{query}", "application/jrd+json")
    assert by_url.status == 200, by_url.body
    assert [link["href"] for link in by_url.json()["links"] if link.get("rel") == "self"] == [
        node.actor
    ]
    unknown = get(f"{node.url}.well-known/webfinger?resource=acct:nobody@{host}")
    assert unknown.status == 404
    one_line(unknown.body.decode())
    malformed = get(f"{node.url}.well-known/webfinger?resource=acct:")
    assert malformed.status == 400
    one_line(malformed.body.decode())

    # Fedify looks the self link up and sees a Person with every endpoint a follower needs.
    looked = peer.lookup(node.actor)
    assert looked["ok"], f"{looked['error']}\n{peer.log()}"
    assert looked["actor"] is True
    person = looked["object"]
    assert person["type"] == "Person"
    assert person["id"] == node.actor
    assert person["preferredUsername"] == HANDLE
    assert person["inbox"] == f"{node.actor}/inbox"
    assert person["outbox"] == f"{node.actor}/outbox"
    assert person["followers"] == f"{node.actor}/followers"
    assert person["endpoints"]["sharedInbox"] == f"{node.url}inbox"
    assert person["publicKey"]["id"] == f"{node.actor}#main-key"
    assert person["publicKey"]["owner"] == node.actor
    assert "BEGIN PUBLIC KEY" in person["publicKey"]["publicKeyPem"]

    # Fedify's NodeInfo client finds the document through /.well-known/nodeinfo and parses it
    # strictly.
    info = peer.nodeinfo(node.url)
    assert info["ok"], info
    assert info["nodeinfo"] is not None, f"Fedify found the NodeInfo invalid\n{peer.log()}"
    assert info["nodeinfo"]["software"]["name"] == "stave"
    assert info["nodeinfo"]["protocols"] == ["activitypub"]


# --- following and posting -------------------------------------------------------------------


def test_follow_add_edit_withdraw_reach_fedify_verified(node: StaveRun, peer: FedifyPeer) -> None:
    accept = followed(peer, node)
    assert accept["actor"] == node.actor
    assert node.followers() == [peer.actor]

    # A new track: a Create of a Note with the audio attached, its proof verified by Fedify.
    track = add(node, FIXTURES / "tone.mp3", "--title", "First Light")
    note_id = post_url(node, track["id"])
    create = delivered(peer, node, "Create", note_id)
    assert create["actor"] == node.actor
    note = create["object"]
    assert note["type"] == "Note"
    assert note["attributedTo"] == node.actor
    assert {PUBLIC, "as:Public"} & set(as_list(note.get("to"))), note.get("to")
    assert "First Light" in note["content"]
    assert "Not for AI training" in note["content"]
    audio = [a for a in as_list(note.get("attachment")) if a.get("type") == "Audio"]
    assert len(audio) == 1, note
    link = as_list(audio[0]["url"])[0]
    audio_url = link["href"] if isinstance(link, dict) else link
    assert audio_url.startswith(node.url), audio_url
    assert audio[0]["mediaType"] == "audio/mpeg"
    served = get(audio_url, "*/*")
    assert served.status == 200 and len(served.body) == track["audio"]["size"]
    proof = peer.verify_object(note_id)
    assert proof["ok"], f"{proof['error']}\n{peer.log()}"
    assert (proof["type"], proof["proofs"]) == ("Note", 1), proof
    assert proof["verified"] is True, f"Fedify did not verify the Note's proof\n{peer.log()}"

    # Fedify walks the outbox and the followers: the Create, and the peer.
    outbox = peer.collection(f"{node.actor}/outbox")
    assert outbox["ok"], f"{outbox['error']}\n{peer.log()}"
    assert outbox["totalItems"] == 1
    assert [(a["type"], object_id(a["object"])) for a in outbox["items"]] == [("Create", note_id)]
    followers = peer.collection(f"{node.actor}/followers")
    assert followers["ok"], f"{followers['error']}\n{peer.log()}"
    assert followers["totalItems"] == 1
    assert [object_id(item) for item in followers["items"]] == [peer.actor]

    # An edit: an Update of the same Note.
    ok(stave(node.root, "edit", track["id"], "--title", "First Light (remaster)"))
    update = delivered(peer, node, "Update", note_id)
    assert "First Light (remaster)" in update["object"]["content"]
    assert peer.verify_object(note_id)["verified"] is True

    # A withdrawal: a Delete of a Tombstone; the post's URL answers 410 with it.
    ok(stave(node.root, "withdraw", track["id"]))
    delete = delivered(peer, node, "Delete", note_id)
    assert delete["actor"] == node.actor
    gone = get(note_id)
    assert gone.status == 410
    assert gone.json()["type"] == "Tombstone"

    # Every delivery was signed draft-cavage (Fedify verified each) and sent once, the posts to
    # the peer's shared inbox.
    log = peer.inbox_log()
    sent = [(e["type"], e["scheme"], e["status"]) for e in log]
    assert sent == [(k, "cavage", 202) for k in ("Accept", "Create", "Update", "Delete")], log
    assert [e["path"] for e in log[1:]] == ["/inbox"] * 3, log
    assert peer.rejected() == []

    # Fedify unfollows: its Undo of the Follow removes the follower.
    follow = {"id": accept["follow"], "type": "Follow", "actor": peer.actor, "object": node.actor}
    undone = peer.send(f"{node.actor}/inbox", {"type": "Undo", "object": follow})
    assert undone["ok"], f"{undone['error']}\n{peer.log()}\n{node.output()}"
    assert node.followers() == []

    # It follows again, then its actor is deleted: the follower goes with it.
    followed(peer, node)
    assert node.followers() == [peer.actor]
    deleted = peer.send(f"{node.url}inbox", {"type": "Delete", "object": peer.actor})
    assert deleted["ok"], f"{deleted['error']}\n{peer.log()}\n{node.output()}"
    assert node.followers() == []


def test_a_follow_signed_rfc9421_by_fedify_is_taken_at_the_first_knock(
    node: StaveRun, tmp_path: Path
) -> None:
    """Fedify tries RFC 9421 first when told to, and falls back to draft-cavage on a 401: the
    node's access log shows the one POST it took."""
    with FedifyPeer.start(first_knock="rfc9421") as peer:
        followed(peer, node)
        assert node.followers() == [peer.actor]
    posts = [line for line in node.output().splitlines() if '"POST /actor/inbox' in line]
    assert len(posts) == 1 and '" 202 ' in posts[0], posts


def test_a_follower_in_authorized_fetch_mode_gets_signed_fetches(
    node: StaveRun, tmp_path: Path
) -> None:
    """Fedify serving its actor only to signed GETs, as Mastodon's secure mode does: the node
    fetches the follower's key with a GET signed by its actor key, which Fedify verifies."""
    with FedifyPeer.start(authorized_fetch=True) as peer:
        followed(peer, node)
        assert node.followers() == [peer.actor]
        fetches = peer.actor_fetches()
        assert fetches and all(f["signedBy"] == node.actor for f in fetches), fetches


# --- refusals ----------------------------------------------------------------------------------


def test_a_blocked_domain_loses_its_followers_and_cannot_follow(
    node: StaveRun, peer: FedifyPeer
) -> None:
    followed(peer, node)
    blocked = stave(node.root, "fediverse", "block", "127.0.0.1")
    assert blocked.returncode == 0, blocked.stderr
    assert "1" in blocked.stdout + blocked.stderr
    assert node.followers() == []

    # Fedify's Follow is refused (403, which its sendActivity reports), and nothing changes.
    refused = peer.follow(node.actor)
    assert not refused["ok"] and "403" in refused["error"], refused
    assert node.followers() == []
    add(node, FIXTURES / "tone.mp3")
    time.sleep(2)
    assert [e["type"] for e in peer.inbox_log()] == ["Accept"], peer.inbox_log()

    ok(stave(node.root, "fediverse", "unblock", "127.0.0.1"))
    followed(peer, node)
    assert node.followers() == [peer.actor]


@pytest.mark.parametrize("spec", ["draft-cavage-http-signatures-12", "rfc9421"])
def test_tampered_replayed_and_stale_requests_from_fedify_are_refused(
    node: StaveRun, peer: FedifyPeer, spec: str
) -> None:
    inbox = f"{node.actor}/inbox"
    follow = {"type": "Follow", "object": node.actor}

    # The body changed after Fedify signed it: the digest no longer matches.
    signed = peer.sign(inbox, follow, spec=spec)
    tampered = signed.body.replace(b'"Follow"', b'"Follow" ')
    status, reason = signed.send(body=tampered)
    assert status == 400, (status, reason)
    assert "does not match the body" in one_line(reason), reason
    assert node.followers() == []

    # The body changed and its digest recomputed: the signature (over the digest) fails.
    digest = base64.b64encode(hashlib.sha256(tampered).digest()).decode()
    headers = dict(signed.headers)
    if "digest" in headers:
        headers["digest"] = f"SHA-256={digest}"
    else:
        headers["content-digest"] = f"sha-256=:{digest}:"
    rewritten = SignedRequest(signed.url, headers, tampered)
    status, reason = rewritten.send()
    assert status == 401, (status, reason)
    assert "does not verify" in one_line(reason), reason
    assert node.followers() == []

    # Signed an hour ago: outside the window.
    stale = peer.sign(inbox, follow, spec=spec, ago=3600)
    status, reason = stale.send()
    assert status == 401, (status, reason)
    assert "window" in one_line(reason), reason
    assert node.followers() == []

    # As signed: accepted, and the peer follows.
    status, reason = signed.send()
    assert 200 <= status < 300, (status, reason, node.output())
    assert node.followers() == [peer.actor]
    # Fedify undoes the follow; then the Follow it signed before is sent again, byte for byte.
    undo = peer.sign(inbox, {"type": "Undo", "object": json.loads(signed.body)})
    status, reason = undo.send()
    assert 200 <= status < 300, (status, reason)
    assert node.followers() == []
    status, reason = signed.send()
    assert status == 401, (status, reason)
    assert "replay" in one_line(reason), reason
    assert node.followers() == []


# --- deliveries across SIGKILL -----------------------------------------------------------------


def test_deliveries_queued_when_the_node_is_killed_arrive_after_restart_once(
    node: StaveRun, peer: FedifyPeer
) -> None:
    followed(peer, node)
    first = add(node, FIXTURES / "tone.mp3", "--title", "Before")
    first_note = post_url(node, first["id"])
    delivered(peer, node, "Create", first_note)

    # The peer's inbox answers 503: the next Create is tried, put off for a retry, and the node
    # is killed; a third track is published while the node is down.
    peer.pause(True)
    second = add(node, FIXTURES / "tone.flac", "--title", "During")
    second_note = post_url(node, second["id"])

    def put_off() -> bool:
        """The 503 came and the retry is committed (not merely leased: a kill before the
        commit would hold the delivery for its whole lease)."""
        refused = any(e["status"] == 503 for e in peer.inbox_log())
        return refused and any(s == "pending" and n >= 1 for _, s, n in node.deliveries())

    eventually(put_off, what="the node's first attempt at the paused inbox, put off")
    node.kill()
    third = add(node, FIXTURES / "tone.ogg", "--title", "After")
    third_note = post_url(node, third["id"])
    pending = [(n, s) for _, s, n in node.deliveries() if s == "pending"]
    assert sorted(pending) == [(0, "pending"), (1, "pending")], node.deliveries()

    peer.pause(False)
    node.start()
    delivered(peer, node, "Create", third_note, timeout=RETRY_WAIT)
    delivered(peer, node, "Create", second_note, timeout=RETRY_WAIT)

    # Each Create reached the inbox once with a 2xx — the one delivered before the kill too.
    time.sleep(2)  # time for a duplicate, were one coming
    accepted: dict[str, int] = {}
    for entry in peer.inbox_log():
        if entry["type"] == "Create" and 200 <= (entry["status"] or 0) < 300:
            accepted[entry["id"]] = accepted.get(entry["id"], 0) + 1
    assert sorted(accepted.values()) == [1, 1, 1], peer.inbox_log()
    assert all(state == "done" for _, state, _ in node.deliveries()), node.deliveries()

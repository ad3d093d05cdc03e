"""Hostile web input, driven by hypothesis over real sockets: multipart uploads to
POST /api/tracks (with the right token) and WebSub requests to the hub and to the subscriber's
callbacks. Every input must end in a 2xx or 4xx, never a 5xx or a dropped connection, and one
that is refused must leave the catalog, the store and its tmp/ exactly as they were.

The node runs in a thread of its own (its own event loop), so each example is a plain blocking
HTTP exchange on 127.0.0.1 and hypothesis drives it synchronously.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.datadir import DataDir
from node.web.app import create_app
from tests.support.shared import FIXTURES

UPLOAD_EXAMPLES = 150
WEBSUB_EXAMPLES = 300

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MP3_HEAD = FIXTURES.joinpath("tone.mp3").read_bytes()[:4096]
FIELD_NAMES = ["file", "title", "license", "copyright", "aiTraining", "other", "", "fi\u00e9le"]


class ServedNode:
    """A node's real app, served on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = DataDir(root).admin_token()
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServedNode:
        self._thread.start()
        assert self._ready.wait(30), "the node did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(create_app(self.root))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> int:
        """The status of one request on a fresh connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def state(self) -> tuple[list[tuple[object, ...]], list[str], list[str]]:
        """The catalog's tracks and feeds, the store's files and its tmp/ (read from disk)."""
        with sqlite3.connect(f"file:{self.root / 'catalog.sqlite'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT id, revision FROM tracks ORDER BY id").fetchall()
            rows += db.execute("SELECT sequence FROM feeds ORDER BY sequence").fetchall()
            rows += db.execute("SELECT COUNT(*) FROM websub_subscribers").fetchall()
        store = self.root / "store"
        files = sorted(p.name for p in (store / "files").rglob("*") if p.is_file())
        tmp = sorted(os.listdir(store / "tmp")) if (store / "tmp").exists() else []
        return rows, files, tmp


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    from node.datadir import init_data_dir, open_node
    from node.publish import Publisher

    root = tmp_path_factory.mktemp("fuzzweb") / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")

    async def first_feed() -> None:
        async with open_node(root) as node:
            await Publisher(node).publish_feed()
            node.store.close()

    asyncio.run(first_feed())
    with ServedNode(root) as node:
        yield node


TALLY: Counter[str] = Counter()


def check_status(status: int, target: str) -> None:
    TALLY[f"{target}:{status}"] += 1
    assert status < 500, f"{target}: {status}"


# --- multipart uploads ---------------------------------------------------------------------------

header_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40)
part = st.fixed_dictionaries(
    {
        "name": st.one_of(st.sampled_from(FIELD_NAMES), header_text),
        "filename": st.one_of(st.none(), header_text, st.just("../../etc/passwd")),
        "extra": st.lists(st.tuples(header_text, header_text), max_size=2),
        "body": st.one_of(
            st.binary(max_size=300),
            st.just(MP3_HEAD),
            st.sampled_from([b"CC-BY-4.0", b"notAllowed", b"2026 Ada", b"x" * 5000]),
        ),
        "raw_disposition": st.booleans(),
    }
)


@st.composite
def multipart(draw: st.DrawFn) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["xyzzy", "a" * 70, "--", "b;c"]))
    body = b""
    for p in draw(st.lists(part, max_size=4)):
        disposition = f'form-data; name="{p["name"]}"'
        if p["filename"] is not None:
            disposition += f'; filename="{p["filename"]}"'
        if p["raw_disposition"]:
            disposition = draw(header_text)
        lines = [f"Content-Disposition: {disposition}"]
        lines += [f"{k}: {v}" for k, v in p["extra"]]
        body += f"--{boundary}\r\n".encode() + "\r\n".join(lines).encode("latin-1")
        body += b"\r\n\r\n" + p["body"] + b"\r\n"
    if draw(st.booleans()):
        body += f"--{boundary}--\r\n".encode()
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(body)))))
    if cut is not None:
        body = body[:cut]
    declared = draw(st.sampled_from([boundary, boundary, "other", ""]))
    return body, f"multipart/form-data; boundary={declared}"


@settings(FUZZ, max_examples=UPLOAD_EXAMPLES)
@given(upload=multipart())
def test_fuzzed_uploads_end_in_a_client_error_or_a_publish(
    served: ServedNode, upload: tuple[bytes, str]
) -> None:
    body, content_type = upload
    before = served.state()
    status = served.request(
        "POST",
        "/api/tracks",
        body,
        {"Authorization": f"Bearer {served.token}", "Content-Type": content_type},
    )
    check_status(status, "upload")
    after = served.state()
    assert after[2] == [] or after[2] == before[2], "an upload left files in tmp/"
    if status != 201:
        assert after == before


# --- WebSub ---------------------------------------------------------------------------------------

HUB_FIELDS = ["hub.mode", "hub.topic", "hub.callback", "hub.lease_seconds", "hub.secret"]
callback = st.one_of(
    st.text(max_size=30).filter(lambda t: "://" not in t),
    st.builds(lambda p: "http://127.0.0.1:9/" + quote(p), st.text(max_size=20)),
)
hub_value = st.one_of(
    st.sampled_from(["subscribe", "unsubscribe", "publish", "", "-1", "99999999999999999999"]),
    st.text(max_size=40),
    st.just("http://127.0.0.1:8080/feed.json"),
)


@settings(FUZZ, max_examples=WEBSUB_EXAMPLES // 2)
@given(
    fields=st.dictionaries(
        st.one_of(st.sampled_from(HUB_FIELDS), st.text(max_size=12)),
        hub_value,
        max_size=6,
    ),
    where=callback,
)
def test_fuzzed_hub_requests_end_in_a_client_error_or_accepted(
    served: ServedNode, fields: dict[str, str], where: str
) -> None:
    if "hub.callback" in fields:
        fields["hub.callback"] = where  # never anything outside loopback
    before = served.state()
    status = served.request(
        "POST",
        "/websub",
        urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    check_status(status, "hub")
    assert served.state() == before


@settings(FUZZ, max_examples=WEBSUB_EXAMPLES // 2)
@given(
    callback_id=st.text(
        st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=40
    ),
    query=st.dictionaries(st.sampled_from([*HUB_FIELDS, "hub.challenge", "x"]), hub_value),
    body=st.binary(max_size=2000),
    signature=st.one_of(st.none(), header_text.map(lambda t: "sha256=" + t.strip())),
    post=st.booleans(),
)
def test_fuzzed_callback_requests_end_in_a_client_error(
    served: ServedNode,
    callback_id: str,
    query: dict[str, str],
    body: bytes,
    signature: str | None,
    post: bool,
) -> None:
    before = served.state()
    path = f"/websub/callback/{callback_id}?{urlencode(query)}"
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    status = served.request("POST", path, body, headers) if post else served.request("GET", path)
    check_status(status, "callback")
    assert served.state() == before


def test_zz_report_inputs_per_target() -> None:
    """Prints how many inputs each web target ran, by status (pytest -s shows it)."""
    targets = Counter(key.split(":")[0] for key in TALLY.elements())
    print("web fuzz inputs:", dict(targets), dict(sorted(TALLY.items())))

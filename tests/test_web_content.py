"""`/ipfs/{cid}`: whole files, byte ranges, conditional requests and the trustless gateway."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.catalog import TrackRecord
from node.cid import CID, DAG_PB, RAW
from node.cid import base58_encode as b58encode
from node.store import Store
from node.web import create_app
from node.web.content import ByteRange, RangeNotSatisfiable, parse_ranges
from node.web.state import NODE, PUBLISHER
from tests.support import car
from tests.support.shared import AUDIO_FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

IMMUTABLE = "public, max-age=29030400, immutable"
BIG_SIZE = 3 * 1024 * 1024 + 12345  # four leaves under a dag-pb root
UNKNOWN = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # sha256 of "foo\n"


@pytest.fixture
def big_file(published_data_dir: Path) -> tuple[str, bytes]:
    """Content larger than one chunk, stored without being in the catalog."""
    data = random.Random(7).randbytes(BIG_SIZE)
    with Store(published_data_dir / "store") as store:
        cid = store.put_bytes(data).cid
    assert cid.startswith("bafybei")
    return cid, data


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, published_data_dir: Path, big_file: tuple[str, bytes]
) -> Client:
    return await aiohttp_client(create_app(published_data_dir))


async def tracks(client: Client) -> list[TrackRecord]:
    return await client.server.app[NODE].catalog.tracks()


def stored_bytes(client: Client, cid: str) -> bytes:
    return client.server.app[NODE].store.path(cid).read_bytes()


# --- whole files --------------------------------------------------------------------------------


async def test_every_track_is_served_whole_with_its_media_type(client: Client) -> None:
    published = await tracks(client)
    assert len(published) == len(AUDIO_FIXTURES)
    for track in published:
        audio = track.manifest["audio"]
        response = await client.get(f"/ipfs/{audio['cid']}")
        assert response.status == 200
        body = await response.read()
        assert len(body) == audio["size"] == int(response.headers["Content-Length"])
        assert CID.parse(audio["cid"]).matches(body)
        assert response.headers["Content-Type"] == audio["mediaType"]
        assert response.headers["ETag"] == f'"{audio["cid"]}"'
        assert response.headers["Cache-Control"] == IMMUTABLE
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_covers_feeds_and_other_content_have_their_types(
    client: Client, big_file: tuple[str, bytes]
) -> None:
    covers = [t.manifest["cover"] for t in await tracks(client) if t.manifest.get("cover")]
    assert covers, "the fixtures carry cover art"
    for cover in covers:
        response = await client.get(f"/ipfs/{cover['cid']}")
        assert response.headers["Content-Type"] == cover["mediaType"]
        assert response.headers["Content-Type"].startswith("image/")
    for feed in await client.server.app[NODE].catalog.feeds():
        response = await client.get(f"/ipfs/{feed.cid}")
        assert response.headers["Content-Type"] == "application/json"
    response = await client.get(f"/ipfs/{big_file[0]}")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert await response.read() == big_file[1]


async def test_head_sends_headers_only(client: Client, big_file: tuple[str, bytes]) -> None:
    response = await client.head(f"/ipfs/{big_file[0]}")
    assert response.status == 200
    assert response.headers["Content-Length"] == str(BIG_SIZE)
    assert response.headers["ETag"] == f'"{big_file[0]}"'
    assert await response.read() == b""


async def test_a_cid_in_another_form_names_the_same_file(
    client: Client, big_file: tuple[str, bytes]
) -> None:
    v0 = b58encode(CID.parse(big_file[0]).multihash)  # CIDv0: the bare base58btc multihash
    assert v0.startswith("Qm")
    response = await client.get(f"/ipfs/{v0}")
    assert response.status == 200
    assert response.headers["ETag"] == f'"{v0}"'
    assert await response.read() == big_file[1]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/ipfs/{UNKNOWN}", 404),
        (f"/ipfs/{UNKNOWN}?format=raw", 404),
        (f"/ipfs/{UNKNOWN}?format=car", 404),
        ("/ipfs/bafynotacid", 400),
        ("/ipfs/Qm123", 400),
        ("/ipfs/not%20a%20cid", 400),
    ],
)
async def test_unknown_content_is_404_and_malformed_cids_400(
    client: Client, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status == status
    assert "Traceback" not in await response.text()


async def test_withdrawn_content_is_no_longer_served(client: Client) -> None:
    track = (await tracks(client))[0]
    assert (await client.get(f"/ipfs/{track.audio_cid}")).status == 200
    await client.server.app[PUBLISHER].withdraw(track.id)
    for query in ("", "?format=raw", "?format=car"):
        assert (await client.get(f"/ipfs/{track.audio_cid}{query}")).status == 404


@pytest.mark.parametrize("tag", ['"{cid}"', 'W/"{cid}"', '"x", "{cid}"', "*"])
async def test_if_none_match_gives_304(client: Client, tag: str) -> None:
    cid = (await tracks(client))[0].audio_cid
    response = await client.get(f"/ipfs/{cid}", headers={"If-None-Match": tag.format(cid=cid)})
    assert response.status == 304
    assert response.headers["ETag"] == f'"{cid}"'
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert await response.read() == b""


# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, BIG_SIZE - 1),
        ("bytes=-100", BIG_SIZE - 100, BIG_SIZE - 1),
        ("bytes=1048570-1048590", 1048570, 1048590),  # across a chunk boundary
        ("bytes=5-999999999", 5, BIG_SIZE - 1),  # clamped to the end
        ("bytes=-999999999", 0, BIG_SIZE - 1),  # a suffix longer than the file
        ("bytes=7-7", 7, 7),
    ],
    ids=["first-bytes", "open-ended", "suffix", "chunk-boundary", "clamped", "long-suffix", "one"],
)
async def test_single_range_is_206(
    client: Client, big_file: tuple[str, bytes], header: str, start: int, end: int
) -> None:
    cid, data = big_file
    response = await client.get(f"/ipfs/{cid}", headers={"Range": header})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{BIG_SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["ETag"] == f'"{cid}"'
    assert await response.read() == data[start : end + 1]


@pytest.mark.parametrize(
    "header", ["bytes=99999999-", f"bytes={BIG_SIZE}-{BIG_SIZE + 9}", "bytes=-0"]
)
async def test_unsatisfiable_range_is_416(
    client: Client, big_file: tuple[str, bytes], header: str
) -> None:
    response = await client.get(f"/ipfs/{big_file[0]}", headers={"Range": header})
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{BIG_SIZE}"


@pytest.mark.parametrize("header", ["bytes=9-5", "items=0-5", "bytes=abc", "bytes=", "bytes=1-2-3"])
async def test_invalid_range_is_ignored(
    client: Client, big_file: tuple[str, bytes], header: str
) -> None:
    response = await client.get(f"/ipfs/{big_file[0]}", headers={"Range": header})
    assert response.status == 200
    assert len(await response.read()) == BIG_SIZE


async def test_several_ranges_are_multipart_byteranges(
    client: Client, big_file: tuple[str, bytes]
) -> None:
    cid, data = big_file
    response = await client.get(f"/ipfs/{cid}", headers={"Range": "bytes=2000000-2000009, 0-4, -3"})
    assert response.status == 206
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    body = await response.read()
    assert int(response.headers["Content-Length"]) == len(body)
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = [
        (part["Content-Range"], part["Content-Type"], part.get_payload(decode=True))
        for part in message.iter_parts()
    ]
    assert parts == [
        (f"bytes 2000000-2000009/{BIG_SIZE}", "application/octet-stream", data[2000000:2000010]),
        (f"bytes 0-4/{BIG_SIZE}", "application/octet-stream", data[0:5]),
        (f"bytes {BIG_SIZE - 3}-{BIG_SIZE - 1}/{BIG_SIZE}", "application/octet-stream", data[-3:]),
    ]


async def test_overlapping_ranges_are_coalesced(
    client: Client, big_file: tuple[str, bytes]
) -> None:
    cid, data = big_file
    response = await client.get(f"/ipfs/{cid}", headers={"Range": "bytes=10-19,0-9,15-30"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 0-30/{BIG_SIZE}"
    assert await response.read() == data[:31]


async def test_if_range_with_our_etag_keeps_the_range(
    client: Client, big_file: tuple[str, bytes]
) -> None:
    cid, data = big_file
    matching = await client.get(
        f"/ipfs/{cid}", headers={"Range": "bytes=0-9", "If-Range": f'"{cid}"'}
    )
    assert matching.status == 206
    assert await matching.read() == data[:10]
    for stale in ('"bafkother"', "Thu, 26 Nov 2026 16:00:00 GMT"):
        response = await client.get(
            f"/ipfs/{cid}", headers={"Range": "bytes=0-9", "If-Range": stale}
        )
        assert response.status == 200
        assert len(await response.read()) == BIG_SIZE


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, [ByteRange(0, 0)]),
        ("bytes=0-", 10, [ByteRange(0, 9)]),
        ("bytes=-1", 10, [ByteRange(9, 9)]),
        ("bytes=8-20", 10, [ByteRange(8, 9)]),
        ("bytes=0-1, 4-5", 10, [ByteRange(0, 1), ByteRange(4, 5)]),
        ("bytes=4-5,0-1", 10, [ByteRange(4, 5), ByteRange(0, 1)]),
        ("bytes=0-1,2-3", 10, [ByteRange(0, 3)]),
        ("bytes=0-1,50-60", 10, [ByteRange(0, 1)]),
        ("bytes=5-4", 10, None),
        ("bits=0-1", 10, None),
        ("bytes=0-1," + ",".join(["2-3"] * 100), 10, None),
        ("bytes=１-2", 10, None),  # non-ASCII digits
    ],
)
def test_parse_ranges(header: str, size: int, expected: list[ByteRange] | None) -> None:
    assert parse_ranges(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_parse_ranges_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_ranges(header, size)


# --- trustless gateway: raw blocks --------------------------------------------------------------


@pytest.mark.parametrize("how", ["query", "accept"])
async def test_raw_block_of_a_small_file(client: Client, how: str) -> None:
    cid = (await tracks(client))[0].audio_cid
    if how == "query":
        response = await client.get(f"/ipfs/{cid}?format=raw")
    else:
        response = await client.get(f"/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.raw"})
    assert response.status == 200
    block = await response.read()
    assert block == stored_bytes(client, cid)
    assert CID.parse(cid).matches(block)
    headers = response.headers
    assert headers["Content-Type"] == "application/vnd.ipld.raw"
    assert headers["Content-Disposition"] == f'attachment; filename="{cid}.bin"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["ETag"] == f'"{cid}.raw"'
    assert headers["Cache-Control"] == IMMUTABLE
    assert "Accept" in headers["Vary"]
    if how == "query":
        assert "Content-Location" not in headers
    else:
        assert headers["Content-Location"] == f"/ipfs/{cid}?format=raw"


async def test_raw_blocks_of_a_large_file(client: Client, big_file: tuple[str, bytes]) -> None:
    cid, data = big_file
    root = await client.get(f"/ipfs/{cid}?format=raw")
    root_block = await root.read()
    assert CID.parse(cid).codec == DAG_PB
    assert hashlib.sha256(root_block).digest() == CID.parse(cid).digest
    # the first leaf is the first MiB of the file
    first_leaf = CID.of_block(data[: 1024 * 1024], RAW)
    leaf = await client.get(f"/ipfs/{first_leaf}?format=raw")
    assert leaf.status == 200
    assert await leaf.read() == data[: 1024 * 1024]
    assert (await client.get(f"/ipfs/{first_leaf}")).status == 404  # a block, not a file


async def test_raw_304(client: Client) -> None:
    cid = (await tracks(client))[0].audio_cid
    response = await client.get(
        f"/ipfs/{cid}?format=raw", headers={"If-None-Match": f'"{cid}.raw"'}
    )
    assert response.status == 304


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_bafkqaaa_probe(client: Client, method: str) -> None:
    response = await client.request(method, "/ipfs/bafkqaaa?format=raw")
    assert response.status == 200
    assert await response.read() == b""
    accept = await client.request(
        method, "/ipfs/bafkqaaa", headers={"Accept": "application/vnd.ipld.raw"}
    )
    assert accept.status == 200
    assert accept.headers["Content-Type"] == "application/vnd.ipld.raw"


async def test_bafkqaaa_car_has_the_root_and_no_blocks(client: Client) -> None:
    response = await client.get("/ipfs/bafkqaaa?format=car")
    assert response.status == 200
    roots, blocks = read_car(await response.read())
    assert roots == [CID.parse("bafkqaaa")]
    assert blocks == []


# --- trustless gateway: CARs --------------------------------------------------------------------


def read_car(data: bytes) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """A CARv1's roots and blocks, each block checked against its CID."""
    header, blocks = car.read_car(data)
    assert header["version"] == 1
    for cid, block in blocks:
        assert cid.matches(block), f"block {cid} does not hash to its CID"
    return header["roots"], blocks


@pytest.mark.parametrize("how", ["query", "accept"])
async def test_car_of_a_large_file(client: Client, big_file: tuple[str, bytes], how: str) -> None:
    cid, data = big_file
    if how == "query":
        response = await client.get(f"/ipfs/{cid}?format=car")
    else:
        response = await client.get(
            f"/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.car; version=1"}
        )
    assert response.status == 200
    headers = response.headers
    assert headers["Content-Type"].startswith("application/vnd.ipld.car; version=1")
    assert "dups=n" in headers["Content-Type"] and "order=dfs" in headers["Content-Type"]
    assert headers["Content-Disposition"] == f'attachment; filename="{cid}.car"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Accept-Ranges"] == "none"
    assert headers["ETag"] == f'"{cid}.car"'
    roots, blocks = read_car(await response.read())
    assert roots == [CID.parse(cid)]
    assert blocks[0][0] == CID.parse(cid)
    leaves = [block for block_cid, block in blocks if block_cid.codec == RAW]
    assert len(blocks) == 1 + len(leaves) == 5
    assert b"".join(leaves) == data  # depth-first order is file order


async def test_car_of_every_published_file(client: Client) -> None:
    for track in await tracks(client):
        roots, blocks = read_car(
            await (await client.get(f"/ipfs/{track.audio_cid}?format=car")).read()
        )
        assert roots == [CID.parse(track.audio_cid)]
        assert [block for _, block in blocks] == [stored_bytes(client, track.audio_cid)]


async def test_car_dag_scope_block_has_the_root_only(
    client: Client, big_file: tuple[str, bytes]
) -> None:
    cid, _ = big_file
    response = await client.get(f"/ipfs/{cid}?format=car&dag-scope=block")
    assert response.headers["ETag"] == f'"{cid}.car.block.dups-n"'
    _, blocks = read_car(await response.read())
    assert [block_cid for block_cid, _ in blocks] == [CID.parse(cid)]


async def test_car_304_and_head(client: Client, big_file: tuple[str, bytes]) -> None:
    cid, _ = big_file
    cached = await client.get(f"/ipfs/{cid}?format=car", headers={"If-None-Match": f'"{cid}.car"'})
    assert cached.status == 304
    head = await client.head(f"/ipfs/{cid}?format=car")
    assert head.status == 200
    assert head.headers["Content-Type"].startswith("application/vnd.ipld.car")
    assert await head.read() == b""


@pytest.mark.parametrize(
    "query",
    [
        "format=dag-json",
        "format=ipns-record",
        "format=car&car-version=2",
        "format=car&car-order=random",
        "format=car&car-dups=maybe",
        "format=car&dag-scope=everything",
        "format=car&entity-bytes=0:99",
    ],
)
async def test_unsupported_requests_are_400(
    client: Client, big_file: tuple[str, bytes], query: str
) -> None:
    response = await client.get(f"/ipfs/{big_file[0]}?{query}")
    assert response.status == 400
    assert "Traceback" not in await response.text()


async def test_a_car_that_breaks_off_is_cut_short(
    client: Client, big_file: tuple[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    cid, _ = big_file
    stored = client.server.app[NODE].store.path(cid)
    stored.chmod(0o644)
    with stored.open("r+b") as f:  # the last leaves' bytes go missing after indexing
        f.truncate(2 * 1024 * 1024 + 100)
    response = await client.get(f"/ipfs/{cid}?format=car")
    assert response.status == 200  # sent before the damage was met
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    assert any("broke off" in record.getMessage() for record in caplog.records)

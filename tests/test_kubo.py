"""The Kubo RPC client against real Kubo daemons on loopback (see kubo_daemon.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from node.errors import KuboError
from node.kubo import KuboClient, ipns_name
from tests.support.kubo import KUBO_VERSION, KuboDaemon, kubo_binary
from tests.support.shared import AUDIO_FIXTURES, SHARED

pytestmark = pytest.mark.kubo

MIB = 1024 * 1024
VECTORS: list[dict[str, Any]] = json.loads((SHARED / "vectors" / "unixfs-cids.json").read_text())[
    "vectors"
]
HELLO_WORLD_CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


# --- daemons and clients -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def online_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[KuboDaemon]]:
    """Two online daemons that know no peers until a test connects them."""
    pair = [KuboDaemon(kubo_binary(), tmp_path_factory.mktemp(f"kubo-{n}")) for n in "ab"]
    try:
        for daemon in pair:
            daemon.start()
        yield pair
    finally:
        for daemon in pair:
            daemon.stop()


@pytest.fixture
async def client(kubo: KuboDaemon) -> AsyncIterator[KuboClient]:
    async with KuboClient(kubo.api) as kubo_client:
        yield kubo_client


async def rpc(api: str, command: str, **params: str) -> bytes:
    """A bare RPC call, for what the client deliberately does not offer (config, block/rm)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{api}/api/v0/{command}", params=params) as response,
    ):
        body = await response.read()
        assert response.status == 200, body
        return body


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- node -------------------------------------------------------------------------------------


async def test_version_and_id(online_pair: list[KuboDaemon]) -> None:
    kubo = online_pair[0]
    async with KuboClient(kubo.api) as client:
        assert await client.version() == KUBO_VERSION.removeprefix("v")
        peer = await client.id()
    assert peer.peer_id == kubo.peer_id
    assert kubo.swarm_address in peer.addresses
    assert peer.agent_version.startswith("kubo/0.42.0")


# --- content ----------------------------------------------------------------------------------


async def test_add_pin_cat_round_trip(client: KuboClient, tmp_path: Path) -> None:
    path = tmp_path / "track.bin"
    data = random_file(path, 2 * MIB + 12345)

    cid = await client.add(path)

    assert cid.startswith("bafybei")  # over 1 MiB: a dag-pb root over raw leaves
    assert await client.pin_ls(cid) == {}  # add does not pin unless asked
    await client.pin_add(cid)
    assert await client.pin_ls(cid) == {cid: "recursive"}
    assert cid in await client.pin_ls()
    chunks = [chunk async for chunk in client.cat(cid)]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= MIB


async def test_add_bytes_gives_the_reference_cids(client: KuboClient) -> None:
    assert await client.add_bytes(b"hello world") == HELLO_WORLD_CID
    empty = next(v["cid"] for v in VECTORS if v.get("data_utf8") == "")
    assert await client.add_bytes(b"") == empty
    assert await read_all(client.cat(HELLO_WORLD_CID)) == b"hello world"


async def test_add_with_pin_pins(client: KuboClient) -> None:
    cid = await client.add_bytes(b"pinned on add " + os.urandom(8), pin=True)
    assert await client.pin_ls(cid) == {cid: "recursive"}


async def test_kubo_import_settings_cannot_change_the_cid(
    client: KuboClient, kubo: KuboDaemon
) -> None:
    data = os.urandom(3 * MIB)
    expected = await client.add_bytes(data)
    changed = {
        "Import.CidVersion": 0,
        "Import.UnixFSRawLeaves": False,
        "Import.UnixFSChunker": "size-262144",
        "Import.UnixFSFileMaxLinks": 2,
        "Import.HashFunction": "sha2-512",
    }
    saved = {key: await rpc(kubo.api, "config", arg=key) for key in changed}
    try:
        for key, value in changed.items():
            await _set_config(kubo.api, key, value)
        assert await client.add_bytes(data) == expected
    finally:
        for key, answer in saved.items():
            await _set_config(kubo.api, key, json.loads(answer)["Value"])


async def _set_config(api: str, key: str, value: object) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{api}/api/v0/config",
            params=[("arg", key), ("arg", json.dumps(value)), ("json", "true")],
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def test_add_streams_the_file_from_disk(client: KuboClient, tmp_path: Path) -> None:
    path = tmp_path / "long.bin"
    with path.open("wb") as f:
        for _ in range(48):
            f.write(os.urandom(MIB))
    tracemalloc.start()
    try:
        cid = await client.add(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cid.startswith("bafybei")
    assert peak < 8 * MIB, f"add held {peak / MIB:.1f} MiB at once for a 48 MiB file"


async def test_add_of_a_missing_file_names_it(client: KuboClient, tmp_path: Path) -> None:
    with pytest.raises(KuboError, match=r"^kubo add: cannot read .*missing\.mp3"):
        await client.add(tmp_path / "missing.mp3")


# --- pins -------------------------------------------------------------------------------------


async def test_pin_rm_is_idempotent(client: KuboClient) -> None:
    cid = await client.add_bytes(b"unpin me " + os.urandom(8), pin=True)
    assert await client.pin_rm(cid) is True
    assert await client.pin_rm(cid) is False
    assert await client.pin_ls(cid) == {}
    never_pinned = await client.add_bytes(b"never pinned " + os.urandom(8))
    assert await client.pin_rm(never_pinned) is False


# --- errors -----------------------------------------------------------------------------------


async def test_bad_cid_is_a_kubo_error_with_kubos_message(client: KuboClient) -> None:
    with pytest.raises(KuboError, match=r"^kubo pin/add: .*not-a-cid") as refused:
        await client.pin_add("not-a-cid")
    assert "invalid" in str(refused.value).lower()
    with pytest.raises(KuboError, match=r"^kubo cat: .*not-a-cid"):
        await read_all(client.cat("not-a-cid"))
    with pytest.raises(KuboError, match=r"^kubo pin/rm: .*not-a-cid"):
        await client.pin_rm("not-a-cid")


@pytest.mark.parametrize("command", ["version", "cat", "add_bytes"])
async def test_unreachable_kubo_is_a_clear_error(command: str) -> None:
    api = f"http://127.0.0.1:{closed_port()}"
    async with KuboClient(api) as client:
        with pytest.raises(KuboError) as refused:
            if command == "version":
                await client.version()
            elif command == "cat":
                await read_all(client.cat(HELLO_WORLD_CID))
            else:
                await client.add_bytes(b"x")
    assert str(refused.value) == f"Kubo is not reachable at {api}: connection refused"


async def test_a_silent_kubo_is_a_timeout_error() -> None:
    release = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    api = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with KuboClient(api, timeout=0.3) as client:
            with pytest.raises(KuboError, match=rf"^kubo version: no answer from Kubo at {api}"):
                await client.version()
            with pytest.raises(KuboError, match=rf"^kubo cat: no answer from Kubo at {api}"):
                await read_all(client.cat(HELLO_WORLD_CID))
    finally:
        release.set()
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()


async def test_a_stream_that_fails_part_way_raises_kubos_trailer(
    client: KuboClient, kubo: KuboDaemon
) -> None:
    data = os.urandom(3 * MIB)
    cid = await client.add_bytes(data)
    refs = [json.loads(line)["Ref"] for line in (await rpc(kubo.api, "refs", arg=cid)).split()]
    assert len(refs) == 3
    await rpc(kubo.api, "block/rm", arg=refs[1])  # the second leaf: the stream breaks mid-file

    received = b""
    # Kubo has answered 200 and sent the first MiB before it meets the hole: only the
    # X-Stream-Error trailer tells the stream is not whole.
    with pytest.raises(KuboError, match=r"^kubo cat: failed to fetch all nodes$"):
        async for chunk in client.cat(cid):
            received += chunk
    assert received == data[:MIB]  # what came before the failure was real and in order

    with pytest.raises(KuboError, match=rf"^kubo dag/export: .*{refs[1]}.*not found"):
        await read_all(client.dag_export(cid))


async def test_authorization_is_sent(tmp_path_factory: pytest.TempPathFactory) -> None:
    daemon = KuboDaemon(kubo_binary(), tmp_path_factory.mktemp("kubo-locked"))
    daemon.require_authorization("s3cret")
    daemon.start()
    try:
        async with KuboClient(daemon.api) as anonymous:
            with pytest.raises(KuboError, match=r"^kubo version: HTTP 403: .*Access Denied"):
                await anonymous.version()
            with pytest.raises(KuboError, match=r"^kubo cat: HTTP 403: .*Access Denied"):
                await read_all(anonymous.cat(HELLO_WORLD_CID))
        async with KuboClient(daemon.api, authorization="Bearer s3cret") as authorized:
            assert await authorized.version() == KUBO_VERSION.removeprefix("v")
            cid = await authorized.add_bytes(b"hello world")
            assert await read_all(authorized.cat(cid)) == b"hello world"
    finally:
        daemon.stop()


# --- keys and IPNS ----------------------------------------------------------------------------


def new_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


async def test_key_import_and_ipns_round_trip(client: KuboClient) -> None:
    pem = new_pem()
    name = await client.key_import("artist-ipns", pem)
    assert name == ipns_name(pem)
    assert name.startswith("k51")
    assert (await client.key_list())["artist-ipns"] == name
    assert await client.key_import("artist-ipns", pem) == name  # the same key again: reused

    first = await client.add_bytes(b"feed 1 " + os.urandom(8), pin=True)
    assert await client.name_publish(first, "artist-ipns", lifetime_hours=168) == name
    assert await client.name_resolve(name) == f"/ipfs/{first}"

    second = await client.add_bytes(b"feed 2 " + os.urandom(8), pin=True)
    await client.name_publish(second, "artist-ipns", lifetime_hours=24)
    assert await client.name_resolve(f"/ipns/{name}") == f"/ipfs/{second}"


async def test_key_import_refuses_a_different_key_under_a_taken_name(
    client: KuboClient,
) -> None:
    await client.key_import("artist-taken", new_pem())
    with pytest.raises(KuboError, match="different key named 'artist-taken'"):
        await client.key_import("artist-taken", new_pem())


async def test_key_import_passes_kubos_refusal_of_a_bad_key(client: KuboClient) -> None:
    with pytest.raises(KuboError, match=r"^kubo key/import: .*PEM"):
        await client.key_import("not-a-key", b"this is not a PEM key")
    assert "not-a-key" not in await client.key_list()


async def test_name_publish_with_an_unknown_key_is_a_kubo_error(client: KuboClient) -> None:
    with pytest.raises(KuboError, match=r"^kubo name/publish: no key by the given name"):
        await client.name_publish(HELLO_WORLD_CID, "no-such-key", lifetime_hours=1)


# --- CAR --------------------------------------------------------------------------------------


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def car_blocks(car: bytes) -> tuple[bytes, list[tuple[int, bytes, bytes]]]:
    """A CARv1's header bytes and its blocks as (codec, sha2-256 digest, block bytes)."""
    header_length, pos = read_varint(car, 0)
    header = car[pos : pos + header_length]
    pos += header_length
    blocks = []
    while pos < len(car):
        length, pos = read_varint(car, pos)
        end = pos + length
        version, p = read_varint(car, pos)
        assert version == 1
        codec, p = read_varint(car, p)
        hash_code, p = read_varint(car, p)
        digest_length, p = read_varint(car, p)
        assert (hash_code, digest_length) == (0x12, 32)
        blocks.append((codec, car[p : p + 32], car[p + 32 : end]))
        pos = end
    return header, blocks


async def test_dag_export_is_a_car_of_the_whole_dag(client: KuboClient) -> None:
    data = os.urandom(2 * MIB + 7)
    cid = await client.add_bytes(data)

    car = await read_all(client.dag_export(cid))

    header, blocks = car_blocks(car)
    assert b"roots" in header and b"version" in header
    for _, digest, block in blocks:
        assert hashlib.sha256(block).digest() == digest
    assert [codec for codec, _, _ in blocks] == [0x70, 0x55, 0x55, 0x55]  # dag-pb root, 3 leaves
    assert b"".join(block for codec, _, block in blocks if codec == 0x55) == data


# --- two daemons ------------------------------------------------------------------------------


async def test_a_second_daemon_fetches_by_cid_over_swarm(
    online_pair: list[KuboDaemon], tmp_path: Path
) -> None:
    node_a, node_b = online_pair
    path = tmp_path / "published.bin"
    data = random_file(path, MIB + MIB // 2)
    async with (
        KuboClient(node_a.api) as publisher,
        KuboClient(node_b.api, timeout=30) as peer,
    ):
        cid = await publisher.add(path, pin=True)
        with pytest.raises(KuboError, match=r"^kubo cat: .*not found"):
            await read_all(peer.cat(cid, offline=True))  # B has nothing of it yet

        await peer.swarm_connect(node_a.swarm_address)

        assert await read_all(peer.cat(cid)) == data
        await peer.pin_add(cid)
        assert await peer.pin_ls(cid) == {cid: "recursive"}


# --- CIDs equal Stave's own -------------------------------------------------------------------


def kubo_random_bytes(seed: str, size: int) -> Iterator[bytes]:
    """Kubo's deterministic test data: the ChaCha20 keystream keyed by SHA-256(seed)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(seed.encode())
    encryptor = Cipher(algorithms.ChaCha20(digest.finalize(), bytes(16)), mode=None).encryptor()
    while size:
        piece = min(size, MIB)
        size -= piece
        yield encryptor.update(bytes(piece))


def vector_params() -> list[Any]:
    params = []
    for vector in VECTORS:
        if vector["profile"] != "unixfs-v1-2025" or vector.get("size", 0) >= 2 * 1024**3:
            continue
        source = (
            f"seed={vector['seed']},size={vector['size']}"
            if "seed" in vector
            else f"data={vector['data_utf8']!r}"
        )
        marks = [pytest.mark.slow] if vector.get("size", 0) > 64 * MIB else []
        params.append(pytest.param(vector, id=source, marks=marks))
    return params


def stave_cid(path: Path) -> str:
    try:
        from node.cid import import_path
    except ImportError as e:
        pytest.skip(f"node.cid is not importable yet: {e}")
    return str(import_path(path).root)


@pytest.mark.parametrize("vector", vector_params())
async def test_kubo_cid_equals_the_vector_and_stave(
    client: KuboClient, vector: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "vector.bin"
    with path.open("wb") as f:
        if "seed" in vector:
            for chunk in kubo_random_bytes(vector["seed"], vector["size"]):
                f.write(chunk)
        else:
            f.write(vector["data_utf8"].encode())
    try:
        cid = await client.add(path)
        assert cid == vector["cid"]
        assert stave_cid(path) == cid
    finally:
        path.unlink()


@pytest.mark.parametrize("fixture", AUDIO_FIXTURES, ids=[p.name for p in AUDIO_FIXTURES])
async def test_kubo_cid_equals_stave_for_fixture_audio(client: KuboClient, fixture: Path) -> None:
    assert await client.add(fixture) == stave_cid(fixture)


# --- the test daemon itself -------------------------------------------------------------------


async def test_a_killed_daemon_restarts_at_the_same_address_with_its_pins(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    daemon = KuboDaemon(kubo_binary(), tmp_path_factory.mktemp("kubo-restart"), offline=True)
    daemon.start()
    try:
        async with KuboClient(daemon.api) as client:
            cid = await client.add_bytes(b"survives a crash " + os.urandom(8), pin=True)
        daemon.kill()
        async with KuboClient(daemon.api) as client:
            with pytest.raises(KuboError, match=r"^Kubo is not reachable at "):
                await client.version()
        daemon.start()
        async with KuboClient(daemon.api) as client:
            assert await client.pin_ls(cid) == {cid: "recursive"}
    finally:
        daemon.stop()

"""Pinning to a real Kubo: the durable pin queue, IPNS, and `stave status / pin / verify ipns://`.

Every Kubo here is a real daemon on loopback with a temporary repo (see kubo_daemon.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.cid import import_path
from node.datadir import Node, init_data_dir, open_node
from node.errors import ConfigError, UsageError, VerificationError
from node.ipns import did_from_ipns_name, ipns_name
from node.kubo import KuboClient
from node.kubo import ipns_name as ipns_name_of_pem
from node.pinning import (
    AUTHORIZATION_ENV,
    PinWorker,
    ipns_key_name,
    kubo_authorization,
    pin_for_a_moment,
    process_pins,
    queue_state,
    setup,
)
from node.pinning import ipns_name as node_ipns_name
from node.publish import Publisher, TrackChoices
from tests.support.audio import write_noise_wav
from tests.support.cli import ok, stave
from tests.support.kubo import KuboDaemon, kubo_binary
from tests.support.net import free_port
from tests.support.node import write_node_config
from tests.support.shared import AUDIO_FIXTURES, FIXTURES

pytestmark = pytest.mark.kubo

MIB = 1024 * 1024
WITH_COVER = [FIXTURES / f"tone.{ext}" for ext in ("mp3", "flac", "m4a")]


# --- daemons, nodes and the command ------------------------------------------------------------


@pytest.fixture
async def client(kubo: KuboDaemon) -> AsyncIterator[KuboClient]:
    async with KuboClient(kubo.api) as kubo_client:
        yield kubo_client


def kubo_node(root: Path, api: str, **settings: object) -> Path:
    """An initialised node that pins to the Kubo at `api`."""
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")
    write_node_config(root, ipfs__backend="kubo", ipfs__api=api, **settings)
    return root


def status(data_dir: Path) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(ok(stave(data_dir, "status", "--json")))
    return answer


def store_file(data_dir: Path, cid: str) -> Path:
    return data_dir / "store" / "files" / cid


async def read_all(client: KuboClient, cid: str) -> bytes:
    return b"".join([chunk async for chunk in client.cat(cid, offline=True)])


def block_count(repo: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(repo / "blocks"))


# --- publishing pins --------------------------------------------------------------------------


async def test_stave_add_pins_every_file_and_feed_under_stave_s_cids(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    root = kubo_node(tmp_path / "node", kubo.api)
    result = await asyncio.to_thread(stave, root, "add", *map(str, AUDIO_FIXTURES), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # everything pinned within the command's wait: no notice
    manifests = json.loads(result.stdout)

    async with open_node(root) as node:
        feeds = [feed.cid for feed in await node.catalog.feeds()]
        queue = await queue_state(node.catalog)
    content = [m["audio"]["cid"] for m in manifests]
    content += [m["cover"]["cid"] for m in manifests if "cover" in m]
    content += [r["cid"] for m in manifests for r in m["renditions"]]  # the listening copies
    assert len(feeds) == 1
    assert queue.pinned == len(set(content + feeds))
    assert (queue.pending, queue.failed) == (0, 0)
    pins = await client.pin_ls()
    for cid in content + feeds:
        assert pins.get(cid) == "recursive", cid
        stored = store_file(root, cid)
        # Kubo's CID for the stored bytes (terms written) is Stave's, and the bytes round-trip.
        assert await client.add(stored) == cid
        assert await read_all(client, cid) == stored.read_bytes()
    originals = {p.read_bytes() for p in AUDIO_FIXTURES}
    for manifest in manifests:  # what is pinned is the copy with the terms written in
        assert store_file(root, manifest["audio"]["cid"]).read_bytes() not in originals


async def test_withdraw_and_edit_unpin_what_nothing_references(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    async with open_node(kubo_node(tmp_path / "node", kubo.api)) as node:
        publisher = Publisher(node)
        mp3, flac = await publisher.add_many(WITH_COVER[:2])
        cover = mp3["cover"]["cid"]
        assert flac["cover"]["cid"] == cover  # the two share one cover image
        await process_pins(node, client, once=True)
        assert (await client.pin_ls(mp3["audio"]["cid"])) == {mp3["audio"]["cid"]: "recursive"}

        await publisher.withdraw(mp3["id"])
        assert (await node.catalog.pin(mp3["audio"]["cid"])).want == "unpinned"  # type: ignore[union-attr]
        await process_pins(node, client, once=True)
        assert await client.pin_ls(mp3["audio"]["cid"]) == {}
        assert await node.catalog.pin(mp3["audio"]["cid"]) is None  # done, forgotten
        assert await client.pin_ls(cover) == {cover: "recursive"}  # flac still shows it

        edited = await publisher.edit(flac["id"], TrackChoices(license="CC-BY-4.0"))
        assert edited["audio"]["cid"] != flac["audio"]["cid"]
        await process_pins(node, client, once=True)
        assert await client.pin_ls(flac["audio"]["cid"]) == {}
        assert await client.pin_ls(edited["audio"]["cid"]) == {edited["audio"]["cid"]: "recursive"}
        latest = await node.catalog.latest_feed()
        assert latest is not None
        assert await client.pin_ls(latest.cid) == {latest.cid: "recursive"}
        queue = await queue_state(node.catalog)
        assert (queue.pending, queue.unpins_pending, queue.failed) == (0, 0, 0)


async def test_the_embedded_backend_queues_nothing(tmp_path: Path) -> None:
    root = tmp_path / "node"
    init_data_dir(root, "Ada Example")
    async with open_node(root) as node:
        await Publisher(node).add(WITH_COVER[0])
        assert await node.catalog.pins() == []
        assert await node_ipns_name(node) is None
    found = status(root)
    assert found["backend"] == "embedded"
    assert found["kubo"] is None
    refused = stave(root, "pin")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        'stave: pin: the node does not use Kubo; set [ipfs] backend = "kubo"'
    )


async def test_switching_to_kubo_later_pins_what_was_published_before(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    root = tmp_path / "node"
    init_data_dir(root, "Ada Example")
    async with open_node(root) as node:
        manifest = await Publisher(node).add(WITH_COVER[0])
    write_node_config(root, ipfs__backend="kubo", ipfs__api=kubo.api)
    result = await asyncio.to_thread(stave, root, "pin")
    assert result.returncode == 0, result.stderr
    for cid in (manifest["audio"]["cid"], manifest["cover"]["cid"]):
        assert await client.pin_ls(cid) == {cid: "recursive"}


# --- Kubo down, slow or killed ----------------------------------------------------------------


async def test_kubo_down_publishing_succeeds_and_the_queue_finishes_later(
    tmp_path: Path,
) -> None:
    daemon = KuboDaemon(kubo_binary(), tmp_path / "kubo")  # not started yet: nothing listens
    root = kubo_node(tmp_path / "node", daemon.api)

    started = time.monotonic()
    result = await asyncio.to_thread(stave, root, "add", str(WITH_COVER[0]))
    assert time.monotonic() - started < 30
    assert result.returncode == 0, result.stderr
    track_id, audio_cid, _ = result.stdout.split(maxsplit=2)
    notice = result.stderr.strip()
    assert len(notice.splitlines()) == 1, notice
    assert notice.startswith("stave: published; Kubo: 4 pins pending (")
    assert f"Kubo is not reachable at {daemon.api}" in notice

    found = await asyncio.to_thread(status, root)
    assert found["kubo"]["reachable"] is False
    assert found["pins"]["pending"] == 4  # audio, its listening copy, cover and the feed
    assert found["pins"]["pinned"] == 0
    assert all("not reachable" in p["lastError"] for p in found["pins"]["open"])
    assert found["ipns"]["publishedSequence"] is None
    text = ok(await asyncio.to_thread(stave, root, "status"))
    assert "0 pinned, 4 pending, 0 failed" in text
    assert audio_cid in text

    daemon.start()
    try:
        result = await asyncio.to_thread(stave, root, "pin")
        assert result.returncode == 0, result.stderr
        found = await asyncio.to_thread(status, root)
        assert (found["pins"]["pinned"], found["pins"]["pending"]) == (4, 0)
        assert found["ipns"]["publishedSequence"] == found["feed"]["sequence"] == 1
        async with KuboClient(daemon.api) as client:
            assert await client.pin_ls(audio_cid) == {audio_cid: "recursive"}
    finally:
        daemon.stop()
    assert track_id.startswith("urn:uuid:")


async def test_a_retried_pin_waits_longer_each_time(tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    root = kubo_node(tmp_path / "node", api, ipfs__retry_min_seconds=10)
    async with open_node(root) as node, KuboClient(api) as client:
        audio_cid = (await Publisher(node).add(FIXTURES / "tone.ogg"))["audio"]["cid"]
        worker = PinWorker(node, client, quiet=True, jitter=lambda: 1.0)
        waits = []
        for _ in range(3):
            before = time.time()
            await worker.run_once(everything=True)
            record = await node.catalog.pin(audio_cid)
            assert record is not None
            waits.append(record.next_attempt - before)
            assert record.state == "pending"
            assert record.last_error is not None
            assert "not reachable" in record.last_error
        assert [round(w) for w in waits] == [10, 20, 40]
        assert record.attempts == 3
        # Nothing is due before its time: a normal round leaves every pin alone.
        await worker.run_once()
        assert (await node.catalog.pin(record.cid)).attempts == 3  # type: ignore[union-attr]
    assert worker.backoff(40) == 3600  # capped at ipfs.retry_max_seconds
    half = PinWorker(node, client, jitter=lambda: 0.0)
    assert half.backoff(0) == 5  # jitter takes off at most half


@pytest.mark.slow
async def test_kubo_killed_in_the_middle_of_publishing_loses_nothing(tmp_path: Path) -> None:
    daemon = KuboDaemon(kubo_binary(), tmp_path / "kubo", offline=True)
    daemon.start()
    try:
        root = kubo_node(tmp_path / "node", daemon.api, ipfs__publish_wait_seconds=120)
        source = tmp_path / "long-take.wav"
        write_noise_wav(source, 160 * MIB)
        blocks_before = block_count(daemon.repo)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STAVE_")}
        command = subprocess.Popen(
            [sys.executable, "-m", "node", "--data-dir", str(root), "add", str(source)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        deadline = time.monotonic() + 120
        while block_count(daemon.repo) < blocks_before + 8:  # Kubo is taking the file in
            assert command.poll() is None, command.communicate()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        daemon.kill()  # SIGKILL, as a crash would
        stdout, stderr = await asyncio.to_thread(command.communicate, timeout=120)
        assert command.returncode == 0, stderr
        audio_cid = stdout.split()[1]
        assert "pending" in stderr
        found = await asyncio.to_thread(status, root)
        pending = {p["cid"] for p in found["pins"]["open"] if p["state"] == "pending"}
        assert audio_cid in pending

        daemon.start()  # the same repo, at the same address
        result = await asyncio.to_thread(stave, root, "pin")
        assert result.returncode == 0, result.stderr
        found = await asyncio.to_thread(status, root)
        assert (found["pins"]["pending"], found["pins"]["failed"]) == (0, 0)
        async with KuboClient(daemon.api) as client:
            assert await client.pin_ls(audio_cid) == {audio_cid: "recursive"}
            digest = hashlib.sha256()
            async for chunk in client.cat(audio_cid, offline=True):
                digest.update(chunk)
        expected = hashlib.sha256(store_file(root, audio_cid).read_bytes()).hexdigest()
        assert digest.hexdigest() == expected
    finally:
        daemon.stop()


async def test_a_corrupted_store_file_is_refused_loudly_and_never_pinned(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = kubo_node(tmp_path / "node", kubo.api)
    async with open_node(root) as node:
        manifest = await Publisher(node).add(FIXTURES / "tone.opus")
        cid = manifest["audio"]["cid"]
        stored = store_file(root, cid)
        good = stored.read_bytes()
        stored.chmod(0o644)
        with stored.open("r+b") as f:  # one flipped bit, as a failing disk would leave it
            f.seek(2000)
            byte = f.read(1)
            f.seek(2000)
            f.write(bytes([byte[0] ^ 1]))
        with caplog.at_level(logging.ERROR, logger="node.pinning"):
            await process_pins(node, client, once=True)
        record = await node.catalog.pin(cid)
        assert record is not None
        assert record.state == "failed"
        assert record.last_error is not None
        assert record.last_error.startswith("Kubo computed bafkrei")
        assert f"for the stored file {cid}" in record.last_error
        assert "refusing to pin it" in record.last_error
        assert [r.levelname for r in caplog.records if cid in r.getMessage()] == ["ERROR"]
        assert await client.pin_ls(cid) == {}
        kubo_cid = record.last_error.split()[2]
        assert await client.pin_ls(kubo_cid) == {}  # not pinned under the wrong CID either
        # Retrying changes nothing while the file stays corrupted.
        await process_pins(node, client, once=True)
        assert (await node.catalog.pin(cid)).state == "failed"  # type: ignore[union-attr]

    found = await asyncio.to_thread(status, root)
    assert found["pins"]["failed"] == 1
    assert found["pins"]["open"][0]["cid"] == cid
    assert found["ipns"]["publishedSequence"] == found["feed"]["sequence"]  # the feed is fine
    result = await asyncio.to_thread(stave, root, "pin")
    assert result.returncode == 1
    assert result.stderr.startswith("stave: Kubo: 1 failed (Kubo computed")
    assert "refusing to pin it" in ok(await asyncio.to_thread(stave, root, "status"))

    stored.write_bytes(good)  # the file repaired (from a backup, say)
    result = await asyncio.to_thread(stave, root, "pin", "--retry-failed")
    assert result.returncode == 0, result.stderr
    assert await client.pin_ls(cid) == {cid: "recursive"}


# --- IPNS -------------------------------------------------------------------------------------


async def test_the_feed_is_published_under_the_artist_s_ipns_name_and_verifies(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    root = kubo_node(tmp_path / "node", kubo.api)
    result = await asyncio.to_thread(stave, root, "add", str(FIXTURES / "tone.flac"))
    assert result.returncode == 0, result.stderr
    track_id = result.stdout.split()[0]

    async with open_node(root) as node:
        name = ipns_name(node.identity.did)
        assert name == ipns_name_of_pem(node.identity.pem_cleartext())
        assert await node_ipns_name(node) == name
        latest = await node.catalog.latest_feed()
    assert latest is not None
    assert (await client.key_list())[ipns_key_name(node.identity.did)] == name
    assert await client.name_resolve(name) == f"/ipfs/{latest.cid}"
    found = await asyncio.to_thread(status, root)
    assert found["ipns"]["name"] == name
    assert found["ipns"]["publishedSequence"] == latest.sequence == 1

    verdict = await asyncio.to_thread(stave, root, "verify", f"ipns://{name}")
    assert verdict.returncode == 0, verdict.stderr
    assert verdict.stdout.startswith(f"ipns://{name}: valid: feed 1 ({latest.cid}) signed by")
    assert "1 track" in verdict.stdout

    # The next feed change moves the name.
    ok(await asyncio.to_thread(stave, root, "withdraw", track_id))
    async with open_node(root) as node:
        latest = await node.catalog.latest_feed()
    assert latest is not None and latest.sequence == 2
    assert await client.name_resolve(name) == f"/ipfs/{latest.cid}"
    verdict = await asyncio.to_thread(stave, root, "verify", f"ipns://{name}", "--json")
    assert verdict.returncode == 0, verdict.stderr
    answer = json.loads(verdict.stdout)
    assert (answer["valid"], answer["sequence"], answer["tracks"]) == (True, 2, 0)
    assert answer["cid"] == latest.cid


async def test_a_feed_under_someone_else_s_name_is_invalid(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    root = kubo_node(tmp_path / "node", kubo.api)
    async with open_node(root) as node:
        await Publisher(node).publish_feed()
        await process_pins(node, client, once=True)
        latest = await node.catalog.latest_feed()
    assert latest is not None
    # Another key points its name at this artist's (valid, signed) feed.
    impostor_root = tmp_path / "impostor"
    impostor = init_data_dir(impostor_root, "Impostor")
    name = await client.key_import("impostor", impostor.pem_cleartext())
    await client.name_publish(latest.cid, "impostor")

    verdict = await asyncio.to_thread(stave, root, "verify", f"ipns://{name}")
    assert verdict.returncode == 1, verdict.stderr
    assert "INVALID" in verdict.stdout
    assert f"but the name is the key of {impostor.did}" in verdict.stdout

    # A name nobody published: invalid, not a crash.
    stranger = ipns_name(init_data_dir(tmp_path / "stranger", "Stranger").did)
    verdict = await asyncio.to_thread(stave, root, "verify", f"ipns://{stranger}")
    assert verdict.returncode == 1
    assert "could not resolve the name" in verdict.stdout

    # A feed that does not verify: a name pointing at bytes that are not a feed.
    junk = await client.add_bytes(b'{"type":"StaveFeed"}', pin=True)
    await client.name_publish(junk, "impostor")
    verdict = await asyncio.to_thread(stave, root, "verify", f"ipns://{name}")
    assert verdict.returncode == 1
    assert f"the feed {junk} does not verify" in verdict.stdout


async def test_verify_ipns_with_kubo_down_is_an_error(tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{free_port()}"
    root = kubo_node(tmp_path / "node", api)
    name = ipns_name(init_data_dir(tmp_path / "other", "Other").did)
    result = await asyncio.to_thread(stave, root, "verify", f"ipns://{name}")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"stave: Kubo is not reachable at {api}")
    result = await asyncio.to_thread(stave, root, "verify", "ipns://not-a-name")
    assert result.returncode == 2
    assert "IPNS name 'not-a-name'" in result.stderr


@pytest.mark.parametrize("form", ["base36", "base32", "path"])
def test_ipns_names_and_dids_are_the_same_key(tmp_path: Path, form: str) -> None:
    from node.cid import base32_encode

    did = init_data_dir(tmp_path / "node", "Ada").did
    name = ipns_name(did)
    assert name.startswith("k51qzi5uqu5d")
    number = int(name[1:], 36)
    written = {
        "base36": name,
        "base32": "b" + base32_encode(number.to_bytes((number.bit_length() + 7) // 8, "big")),
        "path": f"/ipns/{name}",
    }[form]
    assert did_from_ipns_name(written) == did


def test_names_that_are_not_ed25519_keys() -> None:
    # An RSA peer id (a sha2-256 multihash, base58btc): a name, but not of an Ed25519 key.
    with pytest.raises(VerificationError, match="not an Ed25519 key"):
        did_from_ipns_name("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    with pytest.raises(UsageError, match="not a base36"):
        did_from_ipns_name("example.com")
    # The CIDv1 of a raw block (not libp2p-key) in base36.
    number = int.from_bytes(bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(b"x").digest(), "big")
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    with pytest.raises(UsageError, match="libp2p-key"):
        did_from_ipns_name("k" + digits)


# --- the running node -------------------------------------------------------------------------


NODE = web.AppKey("node", Node)


@asynccontextmanager
async def running_app(root: Path) -> AsyncIterator[web.Application]:
    """An app that opens the node at `root` and runs the pin worker's `setup`, started (not
    served) for the length of the block."""

    async def open_the_node(app: web.Application) -> AsyncIterator[None]:
        async with open_node(root) as node:
            app[NODE] = node
            yield

    app = web.Application()
    app.cleanup_ctx.append(open_the_node)
    setup(app, NODE)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def test_the_running_node_drains_the_queue_continuously(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    root = kubo_node(tmp_path / "node", kubo.api)
    async with running_app(root) as app:
        node = app[NODE]
        # Published while the app runs, on the app's own catalog connection (as the admin
        # API does): the worker, on its own connection, pins it without being asked.
        manifest = await Publisher(node).add(WITH_COVER[2])
        cid = manifest["audio"]["cid"]
        deadline = time.monotonic() + 30
        while await client.pin_ls(cid) == {} or await node_ipns_name(node) is None:
            assert time.monotonic() < deadline, await queue_state(node.catalog)
            await asyncio.sleep(0.1)
        latest = await node.catalog.latest_feed()
        assert latest is not None
        name = ipns_name(node.identity.did)
        assert await node_ipns_name(node) == name
        deadline = time.monotonic() + 30
        while await client.name_resolve(name) != f"/ipfs/{latest.cid}":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)


async def test_the_worker_stays_off_with_the_embedded_backend(tmp_path: Path) -> None:
    root = tmp_path / "node"
    init_data_dir(root, "Ada")
    async with running_app(root):
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "stave-pin-queue"]


# --- two daemons ------------------------------------------------------------------------------


async def test_a_track_published_through_one_kubo_is_fetched_by_another(
    tmp_path: Path,
) -> None:
    pair = [KuboDaemon(kubo_binary(), tmp_path / f"kubo-{n}") for n in "ab"]
    try:
        for daemon in pair:
            daemon.start()
        first, second = pair
        root = kubo_node(tmp_path / "node", first.api)
        ok(await asyncio.to_thread(stave, root, "add", str(FIXTURES / "tone.wav")))
        async with open_node(root) as node:
            (track,) = await node.catalog.tracks()
        assert (await asyncio.to_thread(status, root))["pins"]["pending"] == 0
        async with KuboClient(second.api, timeout=30) as client:
            await client.swarm_connect(first.swarm_address)
            fetched = b"".join([chunk async for chunk in client.cat(track.audio_cid)])
            assert await client.add_bytes(fetched) == track.audio_cid
        assert fetched == store_file(root, track.audio_cid).read_bytes()
        assert str(import_path(store_file(root, track.audio_cid)).root) == track.audio_cid
    finally:
        for daemon in pair:
            daemon.stop()


# --- the Kubo API's authorization secret ------------------------------------------------------


async def test_authorization_comes_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = f"http://127.0.0.1:{free_port()}"
    root = kubo_node(tmp_path / "node", api, ipfs__authorization_file="kubo-secret")
    monkeypatch.delenv(AUTHORIZATION_ENV, raising=False)
    async with open_node(root) as node:
        with pytest.raises(ConfigError, match=r"^ipfs.authorization_file .*kubo-secret: cannot"):
            kubo_authorization(node)
        (root / "kubo-secret").write_text("Bearer from-the-file\n")
        assert kubo_authorization(node) == "Bearer from-the-file"
        monkeypatch.setenv(AUTHORIZATION_ENV, "Bearer from-the-environment")
        assert kubo_authorization(node) == "Bearer from-the-environment"


async def test_a_kubo_that_refuses_the_secret_leaves_pins_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = KuboDaemon(kubo_binary(), tmp_path / "kubo", offline=True)
    daemon.require_authorization("s3cret")
    daemon.start()
    try:
        root = kubo_node(tmp_path / "node", daemon.api, ipfs__authorization_file="secret")
        (root / "secret").write_text("Bearer wrong\n")
        monkeypatch.delenv(AUTHORIZATION_ENV, raising=False)
        async with open_node(root) as node:
            await Publisher(node).add(FIXTURES / "tone.ogg")
            queue = await pin_for_a_moment(node, 10)
            assert (queue.pinned, queue.pending) == (0, 3)  # the audio, its rendition and the feed
            assert "403" in queue.notice()
            (root / "secret").write_text("Bearer s3cret\n")
            queue = await pin_for_a_moment(node, 10)
            assert (queue.pinned, queue.pending) == (3, 0)
    finally:
        daemon.stop()


async def test_the_node_document_names_the_ipns_feed(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path, aiohttp_client: Any
) -> None:
    from node.signing import verify_document
    from node.web import create_app

    root = kubo_node(tmp_path / "node", kubo.api)
    ok(await asyncio.to_thread(stave, root, "add", str(FIXTURES / "tone.ogg")))
    http = await aiohttp_client(create_app(root))
    deadline = time.monotonic() + 30
    while True:
        response = await http.get("/.well-known/stave")
        assert response.status == 200
        document = json.loads(await response.read())
        if document["ipns"] is not None:
            break
        assert time.monotonic() < deadline, "the node document never named the IPNS feed"
        await asyncio.sleep(0.2)
    assert document["ipns"] == ipns_name(document["artist"])
    verify_document(document, document["artist"])
    resolved = await client.name_resolve(document["ipns"])
    async with open_node(root) as node:
        latest = await node.catalog.latest_feed()
    assert latest is not None and resolved == f"/ipfs/{latest.cid}"


async def test_a_mirror_with_kubo_pins_what_it_mirrors_and_unpins_withdrawals(
    kubo: KuboDaemon, client: KuboClient, tmp_path: Path
) -> None:
    from tests.support.federation import RunningNode, eventually

    artist = await RunningNode.create(tmp_path / "artist", "Ada")
    mirror = await RunningNode.create(
        tmp_path / "mirror", "Mirror", ipfs__backend="kubo", ipfs__api=kubo.api
    )
    try:
        track = await artist.publisher.add(FIXTURES / "tone.flac")
        await mirror.runtime.follows.follow(artist.url, mirror=True)
        cids = [track["audio"]["cid"], track["cover"]["cid"]]
        assert all(mirror.node.store.has(cid) for cid in cids)

        async def pinned() -> bool:
            return all([await client.pin_ls(cid) for cid in cids])

        await eventually(pinned, what="the mirror's Kubo to pin the mirrored files")
        assert await read_all(client, cids[0]) == store_file(mirror.root, cids[0]).read_bytes()

        await artist.publisher.withdraw(track["id"])

        async def unpinned() -> bool:
            return not await client.pin_ls(cids[0])

        await eventually(unpinned, what="the withdrawn track to be unpinned at the mirror")
        assert not mirror.node.store.has(cids[0])
    finally:
        await mirror.stop()
        await artist.stop()

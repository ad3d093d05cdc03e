"""Listening renditions: an Opus copy of every track, with the track's terms in its tags, under
its own CID, in the signed manifest, served over HTTP and listed in RSS; `stave renditions make`
for a catalog made without them."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node import media
from node.cid import cid_of_bytes
from node.datadir import init_data_dir, open_node
from node.errors import ConfigError, UnsupportedMedia, VerificationError
from node.manifest import verify_manifest
from node.media.renditions import OPUS_MEDIA_TYPE, parse_rendition, transcode
from node.media.terms import TAGGED_FIELDS
from node.publish import Publisher, TrackChoices
from node.settings import parse_config
from node.signing import sign_document, verify_document
from node.web import create_app
from node.web.rss import PODCAST
from tests.support.cli import ok, stave
from tests.support.node import WEB_ARTIST, WEB_URL, write_node_config
from tests.support.shared import AUDIO_FIXTURES, BAD_FIXTURES, FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


def decoded_seconds(path: Path) -> float:
    """The length of a file's audio as PyAV decodes it, sample by sample."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def opus_stream(path: Path) -> tuple[str, int, int]:
    """The codec, sample rate and channel count of a file's first audio stream."""
    with av.open(str(path)) as container:
        context = container.streams.audio[0].codec_context
        return context.name, context.sample_rate, context.channels


def feed_count(root: Path) -> int:
    with sqlite3.connect(root / "catalog.sqlite") as db:
        count: int = db.execute("SELECT COUNT(*) FROM feeds").fetchone()[0]
    return count


def sri(path: Path) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


async def published(root: Path, source: Path, **settings: Any) -> dict[str, Any]:
    """A fresh node at `root` with `source` published as a single; its signed manifest."""
    init_data_dir(root, WEB_ARTIST, WEB_URL)
    if settings:
        write_node_config(root, **settings)
    async with open_node(root) as node:
        return await Publisher(node).add(source)


@pytest.mark.parametrize("fixture", AUDIO_FIXTURES, ids=lambda p: p.name)
async def test_every_format_gets_an_opus_rendition_with_its_terms_served_by_cid(
    fixture: Path, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    root = tmp_path / "node"
    manifest = await published(root, fixture)
    async with open_node(root) as node:
        verify_document(manifest, node.identity.did)
        [rendition] = manifest["renditions"]
        original = node.store.path(manifest["audio"]["cid"])
        copy = node.store.path(rendition["cid"])

        assert rendition["mediaType"] == OPUS_MEDIA_TYPE
        assert rendition["bitrate"] == 128_000
        assert rendition["size"] == copy.stat().st_size
        assert rendition["integrity"] == sri(copy)
        codec, rate, channels = opus_stream(copy)
        assert (codec, rate) == ("opus", 48_000)
        assert channels == opus_stream(original)[2]
        assert decoded_seconds(copy) == pytest.approx(decoded_seconds(fixture), abs=0.1)

        terms = media.read_terms(copy)
        assert terms["STAVE_TRACK"] == manifest["id"]
        assert terms["STAVE_ARTIST"] == node.identity.did
        assert terms["LICENSE"] == manifest["terms"]["license"]
        in_original = media.read_terms(original)
        assert {k: terms.get(k) for k in TAGGED_FIELDS} == {
            k: in_original.get(k) for k in TAGGED_FIELDS
        }

    client = await aiohttp_client(create_app(root))
    response = await client.get(f"/ipfs/{rendition['cid']}")
    assert response.status == 200
    assert response.headers["Content-Type"] == OPUS_MEDIA_TYPE
    assert cid_of_bytes(await response.read()) == rendition["cid"]


async def test_rss_lists_the_rendition_as_an_alternate_enclosure_with_its_integrity(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    root = tmp_path / "node"
    manifest = await published(root, FIXTURES / "tone.flac")
    client = await aiohttp_client(create_app(root))
    response = await client.get("/feed.rss")
    item = ET.fromstring(await response.read()).find("channel/item")
    assert item is not None
    enclosure = item.find("enclosure")
    assert enclosure is not None and enclosure.get("type") == "audio/flac"  # the original stays
    original, opus = item.findall(f"{{{PODCAST}}}alternateEnclosure")
    assert original.get("default") == "true" and original.get("type") == "audio/flac"
    rendition = manifest["renditions"][0]
    assert opus.attrib == {
        "type": "audio/ogg",
        "codecs": "opus",
        "length": str(rendition["size"]),
        "bitrate": "128000",
        "title": "Opus 128 kb/s",
    }
    sources = [s.get("uri") for s in opus.findall(f"{{{PODCAST}}}source")]
    assert sources == [WEB_URL + "ipfs/" + rendition["cid"], "ipfs://" + rendition["cid"]]
    integrity = opus.find(f"{{{PODCAST}}}integrity")
    assert integrity is not None
    assert integrity.attrib == {"type": "sri", "value": rendition["integrity"]}


async def test_no_renditions_when_the_setting_is_empty(tmp_path: Path) -> None:
    manifest = await published(tmp_path / "node", FIXTURES / "tone.wav", media__renditions=[])
    assert "renditions" not in manifest


async def test_several_bitrates_each_once(tmp_path: Path) -> None:
    manifest = await published(
        tmp_path / "node", FIXTURES / "tone.mp3", media__renditions=["opus:96", "opus:32"]
    )
    bitrates = [r["bitrate"] for r in manifest["renditions"]]
    assert bitrates == [96_000, 32_000]
    assert manifest["renditions"][0]["size"] > manifest["renditions"][1]["size"]


async def test_editing_the_terms_writes_them_into_the_renditions_too(tmp_path: Path) -> None:
    root = tmp_path / "node"
    first = await published(root, FIXTURES / "tone.ogg")
    async with open_node(root) as node:
        edited = await Publisher(node).edit(first["id"], TrackChoices(license="CC-BY-4.0"))
        [old], [new] = first["renditions"], edited["renditions"]
        assert new["cid"] != old["cid"]
        assert media.read_terms(node.store.path(new["cid"]))["LICENSE"] == "CC-BY-4.0"
        assert not node.store.has(old["cid"])  # nothing references the old copy
        retitled = await Publisher(node).edit(first["id"], TrackChoices(title="Same terms"))
        assert retitled["renditions"] == edited["renditions"]


async def test_withdrawing_a_track_removes_its_renditions(tmp_path: Path) -> None:
    root = tmp_path / "node"
    manifest = await published(root, FIXTURES / "tone.m4a")
    async with open_node(root) as node:
        await Publisher(node).withdraw(manifest["id"])
        assert not node.store.has(manifest["renditions"][0]["cid"])
        assert manifest["renditions"][0]["cid"] not in await node.catalog.referenced_cids()


def test_renditions_make_revises_each_track_once_and_goes_on_where_it_stopped(
    tmp_path: Path,
) -> None:
    root = tmp_path / "node"
    ok(stave(root, "init", "--name", WEB_ARTIST))
    write_node_config(root, media__renditions=[])
    for name in ("tone.wav", "tone.flac"):
        ok(stave(root, "add", str(FIXTURES / name)))

    write_node_config(root, media__renditions=["opus:96"])
    made = stave(root, "renditions", "make")
    assert made.returncode == 0, made.stderr
    assert [line.split(" ", 2)[:2] for line in made.stderr.splitlines()] == [
        ["renditions:", "1/2"],
        ["renditions:", "2/2"],
    ]
    assert "2 track(s)" in made.stdout
    tracks = json.loads(ok(stave(root, "list", "--json")))
    assert [t["revision"] for t in tracks] == [2, 2]
    first_copies = {t["id"]: t["renditions"] for t in tracks}
    assert all(r[0]["bitrate"] == 96_000 for r in first_copies.values())

    # A track published with every configured rendition is skipped; one that lacks a newly
    # configured kind gets only that one made, the ones it has kept as they are.
    write_node_config(root, media__renditions=["opus:96", "opus:24"])
    ok(stave(root, "add", str(FIXTURES / "tone.mp3")))
    again = stave(root, "renditions", "make")
    assert again.returncode == 0, again.stderr
    assert [line.split(" ", 2)[1] for line in again.stderr.splitlines()] == ["1/2", "2/2"]
    tracks = json.loads(ok(stave(root, "list", "--json")))
    revisions = {t["id"]: t["revision"] for t in tracks}
    for track_id, copies in first_copies.items():
        assert revisions[track_id] == 3
        now = next(t["renditions"] for t in tracks if t["id"] == track_id)
        assert now[0] == copies[0] and now[1]["bitrate"] == 24_000

    done = stave(root, "renditions", "make")
    assert done.returncode == 0 and done.stderr == ""
    assert "already" in done.stdout


def test_renditions_make_with_none_configured_says_so(tmp_path: Path) -> None:
    root = tmp_path / "node"
    ok(stave(root, "init", "--name", WEB_ARTIST))
    write_node_config(root, media__renditions=[])
    result = stave(root, "renditions", "make")
    assert result.returncode == 2
    assert result.stderr == "stave: renditions: media.renditions is [], so there are none to make\n"


@pytest.mark.parametrize("bad", BAD_FIXTURES, ids=lambda p: p.name)
def test_a_file_ffmpeg_cannot_decode_is_refused_in_one_line(bad: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia) as refused:
        transcode(bad, tmp_path / "copy.opus", parse_rendition("opus:128"))
    message = str(refused.value)
    assert message.startswith(f"{bad.name}: ") and "\n" not in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize(
    "value",
    ['"opus:128"', '["mp3:128"]', '["opus:4"]', '["opus:96", "opus:96"]', "[128]"],
)
def test_a_bad_renditions_setting_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^config key media\.renditions: "):
        parse_config(f"[media]\nrenditions = {value}\n")


@pytest.mark.parametrize(
    "renditions",
    [{"cid": "bafk"}, [{"cid": 5, "mediaType": "audio/ogg", "size": 1, "bitrate": 1}], ["x"]],
    ids=["not-a-list", "cid-not-a-string", "entry-not-an-object"],
)
async def test_a_manifest_with_malformed_renditions_does_not_verify(
    renditions: Any, tmp_path: Path
) -> None:
    root = tmp_path / "node"
    manifest = await published(root, FIXTURES / "tone.wav")
    async with open_node(root) as node:
        unsigned = {k: v for k, v in manifest.items() if k != "proof"}
        forged = sign_document({**unsigned, "renditions": renditions}, node.identity)
        with pytest.raises(VerificationError, match=r"renditions|rendition lacks"):
            verify_manifest(forged, node.identity.did)


def test_renditions_make_that_cannot_decode_a_track_names_it_and_changes_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "node"
    ok(stave(root, "init", "--name", WEB_ARTIST))
    write_node_config(root, media__renditions=[])
    ok(stave(root, "add", str(FIXTURES / "tone.flac")))
    [track] = json.loads(ok(stave(root, "list", "--json")))
    stored = root / "store" / "files" / track["audio"]["cid"]
    stored.chmod(0o644)
    stored.write_bytes(b"not audio at all " * 64)  # damage `stave check` would report
    before = sorted(p.name for p in (root / "store" / "files").iterdir())
    feeds = feed_count(root)

    write_node_config(root, media__renditions=["opus:64"])
    result = stave(root, "renditions", "make")
    assert result.returncode == 2
    *progress, error = result.stderr.splitlines()
    assert progress == [f"renditions: 1/1 {track['title']}"]
    prefix = f"stave: track {track['id']} ({track['title']!r}), audio {stored.name}: "
    assert error.startswith(prefix + "cannot transcode (")
    assert sorted(p.name for p in (root / "store" / "files").iterdir()) == before
    assert json.loads(ok(stave(root, "show", track["id"], "--json")))["revision"] == 1
    assert feed_count(root) == feeds

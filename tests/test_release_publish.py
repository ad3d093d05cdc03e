"""Publishing a release (node/releases.py, node/tracklist.py, node/media/names.py): a folder of
mixed formats and a generated second disc as one signed release in one feed, its order, cover,
date and kind from the tags; a bad file changing nothing; editing and withdrawing a release."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node import media
from node.cid import cid_of_bytes
from node.datadir import init_data_dir, open_node
from node.errors import UnsupportedMedia, UsageError
from node.feed import FollowState, verify_feed
from node.media.names import tag_date, tag_number
from node.publish import Publisher, TrackChoices
from node.release import verify_release
from node.releases import Credit, ReleaseChoices, ReleasePublisher, release_sources
from tests.support.albums import ALBUM, DATE, JPEG, make_album, set_tags
from tests.support.audio import silent_wav
from tests.support.shared import AUDIO_FIXTURES, BAD_FIXTURES


@pytest.fixture
async def root(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")
    async with open_node(root) as node:
        await Publisher(node).publish_feed()
    return root


def snapshot(root: Path) -> dict[str, Any]:
    """Every table of the catalog and every file of the store: what a refusal must not touch."""
    with sqlite3.connect(root / "catalog.sqlite") as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {n: sorted(map(repr, db.execute(f"SELECT * FROM {n}").fetchall())) for n in names}
    store = root / "store"
    return {
        "catalog": tables,
        "files": sorted(p.name for p in (store / "files").iterdir()),
        "tmp": sorted(p.name for p in (store / "tmp").iterdir()),
    }


def source_name(root: Path, manifest: dict[str, Any]) -> str:
    """Which file of `make_album`'s folder a published track was made from."""
    if manifest["title"] in ("a", "b", "c"):  # the generated WAVs have no title tag
        return f"CD2/{manifest['title']}.wav"
    return f"tone.{media.probe(root / 'store' / 'files' / manifest['audio']['cid']).format}"


def feed_document(root: Path, cid: str) -> dict[str, Any]:
    """The feed stored under `cid`, verified as a follower would (releases included)."""
    body = (root / "store" / "files" / cid).read_bytes()
    artist = json.loads(body)["artist"]
    return verify_feed(body, FollowState(artist=artist), max_bytes=1 << 24)


@pytest.mark.parametrize("source", AUDIO_FIXTURES, ids=lambda p: p.suffix[1:])
def test_every_format_gives_disc_track_album_artist_and_date(tmp_path: Path, source: Path) -> None:
    copy = tmp_path / source.name
    shutil.copyfile(source, copy)
    copy.chmod(0o644)
    set_tags(copy, album="Night Drive", albumartist="Ada & Co", date="2025-05-06", disc="2/3")
    set_tags(copy, track="07/12")
    info = media.probe(copy)
    assert (info.album, info.album_artist, info.date) == ("Night Drive", "Ada & Co", "2025-05-06")
    assert (info.disc, info.track) == (2, 7)


@pytest.mark.parametrize(
    ("text", "number"),
    [("3", 3), ("03", 3), ("3/12", 3), (" 4 / 9 ", 4), ("0", None), ("A1", None), ("", None)],
)
def test_tag_number(text: str, number: int | None) -> None:
    assert tag_number(text) == number


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("2025-05-06", "2025-05-06"),
        ("2025-05-06T10:00:00Z", "2025-05-06"),
        ("2025", "2025"),
        ("2025-05", "2025-05"),
        ("2025-02-30", "2025-02"),
        ("2025-13-01", "2025"),
        ("May 2025", None),
    ],
)
def test_tag_date(text: str, date: str | None) -> None:
    assert tag_date(text) == date


async def test_a_folder_is_one_signed_release_in_one_feed(root: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    async with open_node(root) as node:
        before = await node.catalog.latest_feed()
        assert before is not None
        published = await ReleasePublisher(node).add_release(release_sources([str(album.folder)]))
        release = published.release
        did = node.identity.did
        feed = await node.catalog.latest_feed()
        record = await node.catalog.release(release["id"])
        assert record.document == release
    verify_release(release, did)
    assert (release["title"], release["kind"], release["released"]) == (ALBUM, "album", DATE)
    assert release["revision"] == 1 and "terms" not in release
    # play order: disc and track tags, then names; a file without tags goes last on its disc
    by_id = {m["id"]: m for m in published.manifests}
    sources = {m["id"]: source_name(root, m) for m in published.manifests}
    assert [(t["disc"], t["number"]) for t in release["tracks"]] == album.places
    assert [sources[t["id"]] for t in release["tracks"]] == album.order
    for entry in release["tracks"]:
        manifest = by_id[entry["id"]]
        assert (entry["revision"], entry["cid"]) == (1, manifest["audio"]["cid"])
    assert by_id[release["tracks"][-1]["id"]]["title"] == "c"
    # the cover file, not a picture inside a track; tracks without a picture show it
    assert release["cover"] == {"cid": cid_of_bytes(JPEG), "mediaType": "image/jpeg", "size": 134}
    covers = {sources[i]: m.get("cover", {}).get("cid") for i, m in by_id.items()}
    assert covers["tone.ogg"] == covers["CD2/c.wav"] == release["cover"]["cid"]
    assert covers["tone.flac"] != release["cover"]["cid"]  # its own embedded picture
    # one new feed, listing the release and every track
    assert feed is not None and feed.sequence == before.sequence + 1
    document = feed_document(root, feed.cid)
    assert {t["id"] for t in document["tracks"]} == set(by_id)
    assert [r["id"] for r in document.get("releases", [])] == [release["id"]]


async def test_a_bad_file_in_the_folder_changes_nothing(root: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    async with open_node(root) as node:
        await ReleasePublisher(node).add_release(release_sources([str(AUDIO_FIXTURES[1])]))
    before = snapshot(root)
    for bad in BAD_FIXTURES:
        shutil.copyfile(bad, album.folder / "CD2" / bad.name)
        async with open_node(root) as node:
            with pytest.raises(UnsupportedMedia) as refused:
                await ReleasePublisher(node).add_release(release_sources([str(album.folder)]))
        message = str(refused.value)
        assert message.startswith(f"{bad.name}: ") and "\n" not in message
        assert snapshot(root) == before
        (album.folder / "CD2" / bad.name).unlink()


async def test_a_bad_cover_changes_nothing(root: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    (album.folder / "cover.jpg").write_text("not a picture")
    before = snapshot(root)
    async with open_node(root) as node:
        with pytest.raises(UnsupportedMedia, match=r"^cover\.jpg: not a JPEG, PNG"):
            await ReleasePublisher(node).add_release(release_sources([str(album.folder)]))
    assert snapshot(root) == before


async def test_several_files_with_choices_and_the_embedded_cover(
    root: Path, tmp_path: Path
) -> None:
    files = [tmp_path / "b side.wav", tmp_path / "a side.wav"]
    for path in files:
        silent_wav(path, 1.0)
    flac = next(p for p in AUDIO_FIXTURES if p.suffix == ".flac")
    names = [str(p) for p in (*files, flac)]
    async with open_node(root) as node:
        publisher = ReleasePublisher(node)
        # two files without album tags: the release needs a title
        with pytest.raises(UsageError, match="--title"):
            await publisher.add_release(release_sources(names[:2]))
        published = await publisher.add_release(
            release_sources(names),
            ReleaseChoices(
                title="Two Sides",
                kind="compilation",
                released="2024-02-29",
                credits=(Credit("producer", "Ada Example"), Credit("mastering", "Bo")),
                description="Both sides.",
                upc="012345678905",
            ),
            TrackChoices(license="CC-BY-4.0"),
        )
        did = node.identity.did
    release = published.release
    verify_release(release, did)
    assert (release["title"], release["kind"], release["released"]) == (
        "Two Sides",
        "compilation",
        "2024-02-29",
    )
    assert release["credits"] == [
        {"role": "producer", "name": "Ada Example"},
        {"role": "mastering", "name": "Bo"},
    ]
    assert (release["description"], release["upc"]) == ("Both sides.", "012345678905")
    assert release["terms"]["license"] == "CC-BY-4.0"  # differs from the node's
    # the FLAC is tagged track 1, the WAVs are not: it leads, then the WAVs by name
    titles = [m["title"] for m in published.manifests]
    assert titles == [published.manifests[0]["title"], "a side", "b side"]
    cover = media.probe(flac).cover
    assert cover is not None
    assert release["cover"]["cid"] == cid_of_bytes(cover.data)


@pytest.mark.parametrize(
    ("choices", "needle"),
    [
        (ReleaseChoices(kind="mixtape"), "--kind"),
        (ReleaseChoices(released="2025-02-30"), "--released"),
        (ReleaseChoices(title=" "), "--title"),
        (ReleaseChoices(upc="12ab"), "--upc"),
        (ReleaseChoices(credits=(Credit("producer", " "),)), "--credit"),
    ],
)
async def test_bad_choices_change_nothing(
    root: Path, tmp_path: Path, choices: ReleaseChoices, needle: str
) -> None:
    album = make_album(tmp_path / "music")
    before = snapshot(root)
    async with open_node(root) as node:
        with pytest.raises(UsageError, match=needle):
            await ReleasePublisher(node).add_release(release_sources([str(album.folder)]), choices)
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("count", "seconds", "kind"), [(1, 2.0, "single"), (3, 1.5, "ep"), (7, 1.5, "album")]
)
async def test_the_kind_follows_the_tracks(
    root: Path, tmp_path: Path, count: int, seconds: float, kind: str
) -> None:
    files = [silent_wav(tmp_path / f"{n}.wav", seconds if n == 0 else 1.0) for n in range(count)]
    async with open_node(root) as node:
        published = await ReleasePublisher(node).add_release(
            release_sources([str(p) for p in files]), ReleaseChoices(title="T")
        )
    assert published.release["kind"] == kind


async def test_edit_signs_the_next_revision(root: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    async with open_node(root) as node:
        publisher = ReleasePublisher(node)
        first = (await publisher.add_release(release_sources([str(album.folder)]))).release
        latest = await node.catalog.latest_feed()
        assert latest is not None
        sequence = latest.sequence
        with pytest.raises(UsageError, match="nothing to change"):
            await publisher.edit_release(first["id"], ReleaseChoices())
        second = await publisher.edit_release(
            first["id"][9:17],
            ReleaseChoices(
                title="Night Drive (Deluxe)",
                kind="compilation",
                credits=(Credit("mixing", "Cy"),),
                description="Now longer.",
            ),
        )
        third = await publisher.edit_release(
            first["id"], ReleaseChoices(credits=(), description="", released="2025-06-01")
        )
        feed = await node.catalog.latest_feed()
        did = node.identity.did
        revisions = [await node.catalog.release_revision(first["id"], n) for n in (1, 2, 3)]
    for document in (second, third):
        verify_release(document, did)
    assert (second["revision"], second["title"], second["kind"]) == (
        2,
        "Night Drive (Deluxe)",
        "compilation",
    )
    assert second["credits"] == [{"role": "mixing", "name": "Cy"}]
    assert second["tracks"] == first["tracks"] and second["published"] == first["published"]
    assert third["revision"] == 3 and third["released"] == "2025-06-01"
    assert "credits" not in third and "description" not in third
    assert revisions == [first, second, third]
    assert feed is not None and feed.sequence == sequence + 2
    assert feed_document(root, feed.cid)["releases"][0] == third


async def test_withdraw_takes_the_release_and_its_tracks(root: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    async with open_node(root) as node:
        publisher = ReleasePublisher(node)
        kept = (await publisher.add_release(release_sources([str(AUDIO_FIXTURES[1])]))).release
        published = await publisher.add_release(release_sources([str(album.folder)]))
        release = published.release
        record, withdrawn = await publisher.withdraw_release(release["id"])
        assert record.withdrawn_at is not None
        assert withdrawn == [t["id"] for t in release["tracks"]]
        with pytest.raises(UsageError, match="was withdrawn"):
            await publisher.withdraw_release(release["id"])
        with pytest.raises(UsageError, match="was withdrawn"):
            await publisher.edit_release(release["id"], ReleaseChoices(title="Again"))
        assert [r.id for r in await node.catalog.releases()] == [kept["id"]]
        assert [t.id for t in await node.catalog.tracks()] == [kept["tracks"][0]["id"]]
        referenced = await node.catalog.referenced_cids()
        feed = await node.catalog.latest_feed()
        # --keep-tracks: the release goes, its tracks stay as loose tracks
        record, withdrawn = await publisher.withdraw_release(kept["id"], keep_tracks=True)
        assert withdrawn == [] and len(await node.catalog.tracks()) == 1
    files = {p.name for p in (root / "store" / "files").iterdir()}
    for manifest in published.manifests:
        assert manifest["audio"]["cid"] not in files | referenced
    assert release["cover"]["cid"] not in files
    assert feed is not None
    document = feed_document(root, feed.cid)
    assert [r["id"] for r in document.get("releases", [])] == [kept["id"]]
    assert [r["id"] for r in document.get("withdrawnReleases", [])] == [release["id"]]


async def test_releases_follow_their_tracks(root: Path, tmp_path: Path) -> None:
    """Editing or withdrawing a track revises the releases listing it, in the same feed, so the
    feed stays one a follower accepts; a release whose last track goes is withdrawn."""
    files = [silent_wav(tmp_path / f"{n}.wav", 1.0) for n in range(3)]
    async with open_node(root) as node:
        publisher = ReleasePublisher(node)
        first = await publisher.add_release(
            release_sources([str(p) for p in files]), ReleaseChoices(title="Three")
        )
        one, two, three = (m["id"] for m in first.manifests)
        edited = await publisher.edit(two, TrackChoices(title="Two", license="CC-BY-4.0"))
        await publisher.withdraw(one)
        did = node.identity.did
        (record,) = await node.catalog.releases()
        feed = await node.catalog.latest_feed()
        assert feed is not None
        document = feed_document(root, feed.cid)
        assert document["releases"] == [record.document]
        verify_release(record.document, did)
        assert record.revision == 3
        assert [(t["id"], t["number"], t["revision"]) for t in record.document["tracks"]] == [
            (two, 1, 2),
            (three, 2, 1),
        ]
        assert record.document["tracks"][0]["cid"] == edited["audio"]["cid"]
        await publisher.withdraw(two)
        await publisher.withdraw(three)
        assert await node.catalog.releases() == []
        feed = await node.catalog.latest_feed()
        assert feed is not None
        document = feed_document(root, feed.cid)
    assert document["releases"] == [] and document["tracks"] == []
    assert [r["id"] for r in document["withdrawnReleases"]] == [record.id]


async def test_edit_reorders_the_tracks(root: Path, tmp_path: Path) -> None:
    files = [silent_wav(tmp_path / f"{n}.wav", 1.0) for n in range(3)]
    async with open_node(root) as node:
        publisher = ReleasePublisher(node)
        first = (
            await publisher.add_release(
                release_sources([str(p) for p in files]), ReleaseChoices(title="Three")
            )
        ).release
        a, b, c = (t["id"] for t in first["tracks"])
        # c moves to a second disc, b before a on the first
        places = ((a, 1, 5), (b, 1, 2), (c, 2, 9))
        second = await publisher.edit_release(first["id"], ReleaseChoices(places=places))
        before = snapshot(root)
        for bad in (((a, 1, 1), (b, 1, 2)), ((a, 1, 1), (b, 1, 2), (c, 0, 3))):
            with pytest.raises(UsageError, match=r"^order: "):
                await publisher.edit_release(first["id"], ReleaseChoices(places=bad))
        assert snapshot(root) == before
        verify_release(second, node.identity.did)
    assert [(t["id"], t["disc"], t["number"]) for t in second["tracks"]] == [
        (b, 1, 1),
        (a, 1, 2),
        (c, 2, 1),
    ]

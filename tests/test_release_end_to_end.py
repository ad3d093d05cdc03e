"""A release from folder to follower, end to end (issue 14's first test): `stave add DIR` of the
shared fixtures in all seven formats plus a generated second disc, on a running node; its order,
cover and signed document; the feed listing it; a real follower on 127.0.0.1 accepting it and
mirroring every file (renditions included); `stave check` clean on both; an export and import
keeping it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from node import media
from node.feed import FollowState, verify_feed
from node.release import verify_release
from tests.support.albums import ALBUM, DATE, JPEG, make_album
from tests.support.cli import ok, stave, stave_async
from tests.support.federation import RunningNode

PASSPHRASE = {"STAVE_EXPORT_PASSPHRASE": "correct horse battery staple"}


def source_of(root: Path, manifest: dict[str, Any]) -> str:
    """The file of `make_album`'s folder a track was made from: the generated WAVs are titled
    by their names, each fixture is the one file of its format."""
    if manifest["title"] in ("a", "b", "c"):
        return f"CD2/{manifest['title']}.wav"
    return f"tone.{media.probe(root / 'store' / 'files' / manifest['audio']['cid']).format}"


def files_of(manifest: dict[str, Any]) -> list[str]:
    """Every CID a track needs: its audio, its cover, its listening renditions."""
    cids = [manifest["audio"]["cid"], *(r["cid"] for r in manifest.get("renditions", []))]
    if manifest.get("cover"):
        cids.append(manifest["cover"]["cid"])
    return cids


async def test_a_folder_published_as_a_release_reaches_a_mirroring_follower(
    tmp_path: Path,
) -> None:
    album = make_album(tmp_path / "music")
    artist = await RunningNode.create(tmp_path / "artist", "Ada Example")
    follower = await RunningNode.create(tmp_path / "follower", "Mira Mirror")
    try:
        code, out, err = await stave_async(artist.root, "add", str(album.folder))
        assert code == 0, err
        assert "release " in out

        (record,) = await artist.node.catalog.releases()
        release = record.document
        verify_release(release, artist.did)
        assert (release["title"], release["kind"], release["released"]) == (ALBUM, "album", DATE)
        # the order: disc and track tags, then the file names; the cover from cover.jpg
        manifests = {t.id: t.manifest for t in await artist.node.catalog.tracks()}
        assert [(t["disc"], t["number"]) for t in release["tracks"]] == album.places
        assert [source_of(artist.root, manifests[t["id"]]) for t in release["tracks"]] == (
            album.order
        )
        for entry in release["tracks"]:
            manifest = manifests[entry["id"]]
            assert (entry["revision"], entry["cid"]) == (
                manifest["revision"],
                manifest["audio"]["cid"],
            )
            assert manifest["renditions"], "every track has a listening copy"
        cover = release["cover"]["cid"]
        assert artist.node.store.path(cover).read_bytes() == JPEG

        # the signed feed lists it, verified as a follower verifies it
        latest = await artist.node.catalog.latest_feed()
        assert latest is not None
        body = artist.node.store.path(latest.cid).read_bytes()
        feed = verify_feed(body, FollowState(artist=artist.did), max_bytes=1 << 24)
        assert [r["id"] for r in feed["releases"]] == [release["id"]]

        # a follower accepts it and mirrors everything it needs
        outcome = await follower.runtime.follows.follow(artist.url, mirror=True)
        assert outcome.sync.verdict == "accepted", outcome
        (followed,) = await follower.node.catalog.followed_releases(artist.did)
        assert followed.document == release
        assert follower.node.store.path(cover).read_bytes() == JPEG
        for manifest in manifests.values():
            for cid in files_of(manifest):
                assert follower.node.store.has(cid), (manifest["title"], cid)
                assert (
                    follower.node.store.path(cid).read_bytes()
                    == artist.node.store.path(cid).read_bytes()
                )
    finally:
        await follower.stop()
        await artist.stop()

    for root in (artist.root, follower.root):
        report = json.loads(ok(stave(root, "check", "--json")))
        assert report["ok"] is True and report["problems"] == [], report
    assert json.loads(ok(stave(artist.root, "check", "--json")))["checked"]["releases"] == 1

    # backed up and restored: the same release, the same files, checking clean
    archive = tmp_path / "backup.tar"
    ok(stave(artist.root, "export", "--with-key", str(archive), env=PASSPHRASE))
    restored = tmp_path / "restored"
    ok(stave(restored, "import", str(archive), env=PASSPHRASE))
    shown = json.loads(ok(stave(restored, "release", "show", release["id"], "--json")))
    assert shown == release
    for manifest in manifests.values():
        for cid in files_of(manifest):
            assert (restored / "store" / "files" / cid).exists(), cid
    assert (restored / "store" / "files" / cover).read_bytes() == JPEG
    report = json.loads(ok(stave(restored, "check", "--json")))
    assert report["ok"] is True and report["checked"]["releases"] == 1, report


def _track_ids(root: Path) -> list[str]:
    return [m["id"] for m in json.loads(ok(stave(root, "list", "--json")))]


def test_withdrawing_a_release_or_its_last_track_leaves_nothing_stored(tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    root = tmp_path / "node"
    ok(stave(root, "init", "--name", "Ada Example"))
    empty = sorted(p.name for p in (root / "store" / "files").iterdir())

    # `stave release withdraw`: the release, its tracks, their renditions and the cover go
    ok(stave(root, "add", str(album.folder)))
    (release,) = json.loads(ok(stave(root, "release", "list", "--json")))
    ok(stave(root, "release", "withdraw", release["id"]))
    assert _track_ids(root) == []
    assert json.loads(ok(stave(root, "check", "--json")))["problems"] == []
    left = {p.name for p in (root / "store" / "files").iterdir()} - set(empty)
    assert left, "the feeds signed since are stored"
    for cid in left:  # and nothing else: no audio, rendition or cover is left behind
        assert json.loads((root / "store" / "files" / cid).read_bytes())["type"] == "StaveFeed"

    # withdrawing a release's tracks one by one: the last one takes the release and its cover
    pair = tmp_path / "pair"
    pair.mkdir()
    for name in ("tone.mp3", "tone.flac"):
        (pair / name).write_bytes((album.folder / name).read_bytes())
    (pair / "cover.jpg").write_bytes(JPEG)
    ok(stave(root, "add", str(pair)))
    (second,) = json.loads(ok(stave(root, "release", "list", "--json")))
    cover = second["cover"]["cid"]
    assert (root / "store" / "files" / cover).exists()
    for track_id in _track_ids(root):
        ok(stave(root, "withdraw", track_id))
    assert json.loads(ok(stave(root, "release", "list", "--json"))) == []
    assert not (root / "store" / "files" / cover).exists()
    report = json.loads(ok(stave(root, "check", "--json")))
    assert report["ok"] is True and report["problems"] == [], report

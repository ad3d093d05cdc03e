"""The release document (docs/protocol-extensions.md, "Releases"): signing, verifying, refusal
vectors, revising; and the catalog's releases area over a real SQLite file."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node.catalog import open_catalog
from node.errors import ReleaseNotFound, VerificationError
from node.feed import FollowState, build_feed, judge_feed, serialize
from node.identity import Identity
from node.manifest import build_manifest, content_ref
from node.release import (
    RELEASE_KINDS,
    build_release,
    check_release_tracks,
    release_track_entry,
    revise_release,
    track_versions,
    verify_release,
)
from node.signing import sign_document
from node.terms import Terms

AUDIO_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
COVER_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfxqq3luxukurq3gepq"
OTHER_CID = "bafkreidvbhs33ighmljlvr7zbv2ywwzcmp5adtf4kqvlly67cy56bdtmve"
PUBLISHED = "2026-11-26T16:00:00Z"


def manifest(identity: Identity, *, revision: int = 1, cid: str = AUDIO_CID) -> dict[str, Any]:
    """A signed track manifest by `identity` (its audio need not exist for these checks)."""
    return sign_document(
        build_manifest(
            track_id=f"urn:uuid:{uuid.uuid4()}",
            revision=revision,
            artist=identity.did,
            title="A track",
            published=PUBLISHED,
            duration_seconds=1.5,
            audio=content_ref(cid, "audio/flac", 1234),
            cover=None,
            terms=Terms(),
        ),
        identity,
    )


def release(identity: Identity, manifests: list[dict[str, Any]], **members: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "release_id": f"urn:uuid:{uuid.uuid4()}",
        "revision": 1,
        "artist": identity.did,
        "title": "An album",
        "kind": "album",
        "released": "2026-11-26",
        "published": PUBLISHED,
        "tracks": [release_track_entry(m, 1, n) for n, m in enumerate(manifests, start=1)],
        "cover": content_ref(COVER_CID, "image/jpeg", 20331),
        "credits": [{"role": "producer", "name": "Ada Example"}],
        "description": "Songs.",
        "upc": "012345678905",
    }
    fields.update(members)
    return sign_document(build_release(**fields), identity)


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


def test_a_signed_release_verifies_and_has_the_agreed_members(identity: Identity) -> None:
    tracks = [manifest(identity), manifest(identity)]
    document = release(identity, tracks, terms=Terms().with_choices(license="CC-BY-4.0"))
    verify_release(document, identity.did)
    assert document["type"] == "StaveRelease" and document["kind"] in RELEASE_KINDS
    assert [e["id"] for e in document["tracks"]] == [t["id"] for t in tracks]
    assert document["tracks"][1] == {
        "id": tracks[1]["id"],
        "revision": 1,
        "cid": AUDIO_CID,
        "disc": 1,
        "number": 2,
    }
    assert document["terms"]["license"] == "CC-BY-4.0"
    assert document["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    check_release_tracks(document, track_versions(tracks))


def test_optional_members_are_left_out_when_not_given(identity: Identity) -> None:
    document = release(identity, [manifest(identity)], cover=None, credits=None, upc=None)
    document = release(identity, [manifest(identity)], cover=None, credits=[], description=None)
    for key in ("cover", "credits", "description", "terms"):
        assert key not in document
    verify_release(document, identity.did)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document[key] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key)


def _track(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["tracks"][0][key] = value

    return change


def _twice(document: dict[str, Any]) -> None:
    document["tracks"].append(dict(document["tracks"][0], disc=2))


def _same_place(document: dict[str, Any]) -> None:
    document["tracks"].append(dict(document["tracks"][0], id=f"urn:uuid:{uuid.uuid4()}"))


# Each: a change made to the document before it is signed again, and the reason it is refused.
REFUSALS = {
    "wrong type": (_set("type", "StaveTrack"), "type 'StaveTrack' is not StaveRelease"),
    "no tracks member": (_drop("tracks"), "lacks tracks"),
    "no kind": (_drop("kind"), "lacks kind"),
    "id not a urn:uuid": (_set("id", "album-1"), "id is not a urn:uuid"),
    "revision zero": (_set("revision", 0), "revision is not a positive integer"),
    "revision a boolean": (_set("revision", True), "revision is not a positive integer"),
    "empty title": (_set("title", "  "), "title is not a non-empty string"),
    "unknown kind": (_set("kind", "mixtape"), "kind 'mixtape' is not one of album"),
    "released not a date": (_set("released", "26/11/2026"), "is not a date (YYYY-MM-DD)"),
    "released day 31 Nov": (_set("released", "2026-11-31"), "is not a date"),
    "published no zone": (_set("published", "2026-11-26T16:00:00"), "not an RFC 3339"),
    "no tracks": (_set("tracks", []), "tracks is not a non-empty list"),
    "track without id": (_track("id", 7), "a tracks entry has no id"),
    "track revision missing": (_track("revision", None), "revision is not a positive integer"),
    "track disc zero": (_track("disc", 0), "disc is not a positive integer"),
    "track bad CID": (_track("cid", "bafynot"), "CID is not valid"),
    "track listed twice": (_twice, "is listed twice"),
    "two tracks one place": (_same_place, "disc 1 number 1 is taken"),
    "cover without CID": (_set("cover", {"mediaType": "image/png", "size": 1}), "cover has no"),
    "cover negative size": (
        _set("cover", {"cid": COVER_CID, "mediaType": "image/png", "size": -1}),
        "cover size is not a non-negative integer",
    ),
    "credits not pairs": (_set("credits", [{"role": "mixing"}]), "credits is not a list"),
    "upc a number": (_set("upc", 12345), "upc is not a string"),
    "terms without licence": (_set("terms", {"tdmReservation": 1}), "terms lack license"),
    "terms bad reservation": (
        _set("terms", {"license": "ARR", "tdmReservation": 2}),
        "terms.tdmReservation must be 0 or 1",
    ),
}


@pytest.mark.parametrize("change, reason", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_malformed_release_is_refused_even_when_signed(
    identity: Identity, change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    document = {k: v for k, v in release(identity, [manifest(identity)]).items() if k != "proof"}
    document = copy.deepcopy(document)
    change(document)
    with pytest.raises(VerificationError, match=r"^release ") as refused:
        verify_release(sign_document(document, identity), identity.did)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_release_by_another_artist_or_tampered_is_refused(identity: Identity) -> None:
    document = release(identity, [manifest(identity)])
    other = Identity.generate()
    with pytest.raises(VerificationError, match="is not " + other.did):
        verify_release(document, other.did)
    forged = sign_document({**document, "artist": other.did}, identity)
    with pytest.raises(VerificationError, match="proof is by"):
        verify_release(forged, other.did)
    tampered = {**document, "title": "Another album"}
    with pytest.raises(VerificationError, match="signature"):
        verify_release(tampered, identity.did)
    with pytest.raises(VerificationError, match="not a JSON object"):
        verify_release([document], identity.did)
    with pytest.raises(VerificationError, match="no proof"):
        verify_release({k: v for k, v in document.items() if k != "proof"}, identity.did)


def test_track_entries_must_name_the_feeds_tracks(identity: Identity) -> None:
    tracks = [manifest(identity), manifest(identity)]
    document = release(identity, tracks)
    with pytest.raises(VerificationError, match="is not in the feed"):
        check_release_tracks(document, track_versions(tracks[:1]))
    revised = sign_document({**tracks[1], "revision": 2}, identity)
    with pytest.raises(VerificationError, match=r"revision 1 with audio .* is not the feed's"):
        check_release_tracks(document, track_versions([tracks[0], revised]))
    recut = sign_document({**tracks[1], "audio": content_ref(OTHER_CID, "audio/flac", 9)}, identity)
    with pytest.raises(VerificationError, match="is not the feed's"):
        check_release_tracks(document, track_versions([tracks[0], recut]))


def test_a_release_is_revised_when_a_track_is(identity: Identity) -> None:
    tracks = [manifest(identity), manifest(identity)]
    document = release(identity, tracks)
    assert revise_release(document, {t["id"]: t for t in tracks}) is None
    second = sign_document(
        {**tracks[1], "revision": 2, "audio": content_ref(OTHER_CID, "audio/flac", 9)}, identity
    )
    unsigned = revise_release(document, {tracks[0]["id"]: tracks[0], second["id"]: second})
    assert unsigned is not None and "proof" not in unsigned
    assert unsigned["revision"] == 2 and unsigned["id"] == document["id"]
    assert unsigned["tracks"][1] == release_track_entry(second, 1, 2)
    assert unsigned["tracks"][0] == document["tracks"][0]
    signed = sign_document(unsigned, identity)
    verify_release(signed, identity.did)
    check_release_tracks(signed, track_versions([tracks[0], second]))


# --- the catalog's releases area -------------------------------------------------------------


async def test_the_catalog_keeps_releases_their_revisions_and_withdrawals(
    identity: Identity, tmp_path: Path
) -> None:
    tracks = [manifest(identity), manifest(identity), manifest(identity)]
    older = release(identity, tracks[:2], released="2025-01-01")
    newer = release(identity, tracks[2:], kind="single", released="2026-11-26", cover=None)
    async with open_catalog(tmp_path / "catalog.sqlite") as catalog:
        assert await catalog.releases() == [] and await catalog.withdrawn_releases() == []
        async with catalog.transaction() as tx:
            for track in tracks:
                await tx.put_track(track)
            await tx.put_release(older)
            await tx.put_release(newer)
        assert [r.id for r in await catalog.releases()] == [newer["id"], older["id"]]
        record = await catalog.release(older["id"])
        assert (record.revision, record.title, record.kind, record.released) == (
            1,
            "An album",
            "album",
            "2025-01-01",
        )
        assert record.cover_cid == COVER_CID and record.document == older
        assert record.withdrawn_at is None and record.published == PUBLISHED
        assert (await catalog.find_release(older["id"][9:17])).id == older["id"]
        assert (await catalog.find_release(older["id"])).id == older["id"]
        assert (await catalog.release_of_track(tracks[1]["id"])).id == older["id"]  # type: ignore[union-attr]
        assert await catalog.release_of_track("urn:uuid:none") is None
        assert COVER_CID in await catalog.referenced_cids()

        revised = sign_document(
            {**{k: v for k, v in older.items() if k != "proof"}, "revision": 2, "title": "B"},
            identity,
        )
        async with catalog.transaction() as tx:
            await tx.put_release(revised)
        assert (await catalog.release(older["id"])).revision == 2
        assert await catalog.release_revision(older["id"], 1) == older
        assert await catalog.release_revision(older["id"], 2) == revised
        assert await catalog.release_revision(older["id"], 3) is None

        async with catalog.transaction() as tx:
            await tx.withdraw_release(older["id"], "2026-11-27T10:00:00Z")
        assert [r.id for r in await catalog.releases()] == [newer["id"]]
        assert len(await catalog.releases(include_withdrawn=True)) == 2
        assert await catalog.withdrawn_releases() == [
            {"id": older["id"], "at": "2026-11-27T10:00:00Z"}
        ]
        assert await catalog.release_of_track(tracks[1]["id"]) is None
        assert COVER_CID not in await catalog.referenced_cids()
        assert (await catalog.release(older["id"])).withdrawn_at == "2026-11-27T10:00:00Z"


async def test_an_unknown_release_is_a_one_line_error(tmp_path: Path) -> None:
    async with open_catalog(tmp_path / "catalog.sqlite") as catalog:
        for ask in (
            catalog.release("urn:uuid:0000"),
            catalog.find_release("0000"),
            catalog.find_release(""),
        ):
            with pytest.raises(ReleaseNotFound, match="no such release in the catalog"):
                await ask
        with pytest.raises(ReleaseNotFound):
            async with catalog.transaction() as tx:
                await tx.withdraw_release("urn:uuid:0000", PUBLISHED)


async def test_an_ambiguous_prefix_names_no_release(identity: Identity, tmp_path: Path) -> None:
    first = release(identity, [manifest(identity)], release_id="urn:uuid:abc-1")
    second = release(identity, [manifest(identity)], release_id="urn:uuid:abc-2")
    async with open_catalog(tmp_path / "catalog.sqlite") as catalog:
        async with catalog.transaction() as tx:
            await tx.put_release(first)
            await tx.put_release(second)
        with pytest.raises(ReleaseNotFound, match="more than one release starts with that id"):
            await catalog.find_release("abc")
        assert (await catalog.find_release("abc-2")).id == second["id"]


# --- releases in the feed: build_feed and judge_feed --------------------------------------


def feed_bytes(
    identity: Identity,
    tracks: list[dict[str, Any]],
    releases: list[dict[str, Any]],
    withdrawn_releases: list[dict[str, str]] | None = None,
    *,
    signer: Identity | None = None,
) -> bytes:
    document = build_feed(
        artist=identity.did,
        name="Ada Example",
        url="http://127.0.0.1:1/",
        sequence=1,
        previous=None,
        updated=datetime.now(UTC),
        expires_days=7,
        terms=Terms(),
        tracks=tracks,
        withdrawn=[],
        releases=releases,
        withdrawn_releases=withdrawn_releases,
    )
    return serialize(sign_document(document, signer or identity, created=document["updated"]))


def judge(identity: Identity, body: bytes) -> dict[str, Any]:
    return judge_feed(body, FollowState(identity.did), max_bytes=1 << 24)


def test_a_feed_lists_releases_and_their_tombstones(identity: Identity) -> None:
    tracks = [manifest(identity), manifest(identity)]
    album = release(identity, tracks)
    gone = {"id": f"urn:uuid:{uuid.uuid4()}", "at": PUBLISHED}
    feed = judge(identity, feed_bytes(identity, tracks, [album], [gone]))
    assert feed["releases"] == [album] and feed["withdrawnReleases"] == [gone]
    empty = judge(identity, feed_bytes(identity, tracks, []))
    assert empty["releases"] == [] and empty["withdrawnReleases"] == []


def test_a_feed_without_release_members_is_still_accepted(identity: Identity) -> None:
    """Feeds signed before releases existed have neither member."""
    tracks = [manifest(identity)]
    document = json.loads(feed_bytes(identity, tracks, []))
    for key in ("releases", "withdrawnReleases", "proof"):
        del document[key]
    body = serialize(sign_document(document, identity))
    assert "releases" not in judge(identity, body)


def _other_artists(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    other = Identity.generate()
    return [release(other, tracks, artist=other.did)]


def _forged_artist(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return [release(Identity.generate(), tracks, artist=identity.did)]


def _bad_proof(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return [{**release(identity, tracks), "title": "Changed after signing"}]


def _no_proof(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return [{k: v for k, v in release(identity, tracks).items() if k != "proof"}]


def _missing_track(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return [release(identity, [*tracks, manifest(identity)])]


def _old_revision(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return [release(identity, [sign_document({**tracks[0], "revision": 7}, identity)])]


def _other_audio(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    recut = {**tracks[0], "audio": content_ref(OTHER_CID, "audio/flac", 9)}
    return [release(identity, [sign_document(recut, identity)])]


def _duplicate(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    album = release(identity, tracks)
    return [album, release(identity, tracks[:1], release_id=album["id"])]


def _malformed(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return [release(identity, tracks, kind="mixtape")]


def _not_an_object(identity: Identity, tracks: list[dict[str, Any]]) -> list[Any]:
    return ["urn:uuid:1"]


FEED_REFUSALS = {
    "release by another artist": (_other_artists, "is not did:key:"),
    "release signed by another key": (_forged_artist, "proof is by"),
    "release with a bad proof": (_bad_proof, "signature"),
    "release without a proof": (_no_proof, "no proof"),
    "track not in the feed": (_missing_track, "is not in the feed"),
    "track at another revision": (_old_revision, "revision 7 with audio"),
    "track with other audio": (_other_audio, "is not the feed's"),
    "the same release twice": (_duplicate, "listed twice in the feed"),
    "a malformed release": (_malformed, "kind 'mixtape'"),
    "a release that is no object": (_not_an_object, "release is not a JSON object"),
}


@pytest.mark.parametrize("make, reason", FEED_REFUSALS.values(), ids=FEED_REFUSALS.keys())
def test_a_feed_with_a_bad_release_is_rejected_whole(
    identity: Identity, make: Callable[[Identity, list[dict[str, Any]]], list[Any]], reason: str
) -> None:
    tracks = [manifest(identity), manifest(identity)]
    body = feed_bytes(identity, tracks, [release(identity, tracks[1:]), *make(identity, tracks)])
    with pytest.raises(VerificationError) as refused:
        judge(identity, body)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


TOMBSTONE_REFUSALS = {
    "not a list": ({"id": "urn:uuid:1"}, "withdrawnReleases is not a list"),
    "entry without at": ([{"id": "urn:uuid:1"}], "malformed withdrawnReleases entry"),
    "entry not an object": (["urn:uuid:1"], "malformed withdrawnReleases entry"),
}


@pytest.mark.parametrize(
    "value, reason", TOMBSTONE_REFUSALS.values(), ids=TOMBSTONE_REFUSALS.keys()
)
def test_malformed_release_tombstones_reject_the_feed(
    identity: Identity, value: Any, reason: str
) -> None:
    document = json.loads(feed_bytes(identity, [], []))
    document["withdrawnReleases"] = value
    with pytest.raises(VerificationError, match=reason):
        judge(identity, serialize(sign_document(document, identity)))


def test_a_release_both_listed_and_withdrawn_rejects_the_feed(identity: Identity) -> None:
    tracks = [manifest(identity)]
    album = release(identity, tracks)
    body = feed_bytes(identity, tracks, [album], [{"id": album["id"], "at": PUBLISHED}])
    with pytest.raises(VerificationError, match="both listed and withdrawn"):
        judge(identity, body)

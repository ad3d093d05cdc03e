"""What `stave check` (node/check.py) finds wrong with a node's releases: each current release
verifies, agrees with its catalog row, lists current tracks at their revision and audio, and
has its cover stored at its signed size; the latest feed lists exactly the current releases and
withdraws exactly the withdrawn ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.catalog import ReleaseRecord, TrackRecord
from node.datadir import Node
from node.errors import VerificationError
from node.release import verify_release

# A problem: the subject (a release id or a CID) and a one-line message.
Problem = tuple[str, str]


def release_covers(releases: list[ReleaseRecord]) -> tuple[dict[str, str], dict[str, str]]:
    """The covers of current releases and of withdrawn ones: CID -> what references it."""
    current: dict[str, str] = {}
    withdrawn: dict[str, str] = {}
    for release in releases:
        if release.cover_cid is None:
            continue
        what = f"release {release.id} ({release.title!r}) cover"
        if release.withdrawn_at is None:
            current[release.cover_cid] = what
        else:
            withdrawn.setdefault(release.cover_cid, what)
    return current, withdrawn


def release_problems(
    node: Node,
    releases: list[ReleaseRecord],
    tracks: list[TrackRecord],
    stored: Mapping[str, bool],
) -> list[Problem]:
    """Every problem of the current releases against their documents, tracks and covers."""
    did = node.identity.did
    live = {t.id: (t.revision, t.audio_cid) for t in tracks if t.withdrawn_at is None}
    problems: list[Problem] = []
    for release in releases:
        if release.withdrawn_at is not None:
            continue
        label = f"release {release.id}"
        document = release.document
        try:
            verify_release(document, did)
        except VerificationError as e:
            problems.append((release.id, str(e)))
            continue
        row = (release.revision, release.title, release.kind, release.released, release.cover_cid)
        cover = document.get("cover")
        signed = (
            document["revision"],
            document["title"],
            document["kind"],
            document["released"],
            cover["cid"] if cover else None,
        )
        if row != signed:
            problems.append(
                (release.id, f"{label}: the catalog says {row}, its signed document {signed}")
            )
        for entry in document["tracks"]:
            found = live.get(entry["id"])
            if found is None:
                problems.append(
                    (release.id, f"{label}: track {entry['id']} is not a current track")
                )
            elif found != (entry["revision"], entry["cid"]):
                problems.append(
                    (
                        release.id,
                        f"{label}: lists track {entry['id']} at revision {entry['revision']}"
                        f" ({entry['cid']}), the catalog has revision {found[0]} ({found[1]})",
                    )
                )
        if cover and stored.get(cover["cid"]):
            size = node.store.size(cover["cid"])
            if cover["size"] != size:
                problems.append(
                    (
                        release.id,
                        f"{label}: its document gives cover {cover['cid']} {cover['size']}"
                        f" bytes, the store holds {size}",
                    )
                )
    return problems


def latest_feed_problems(document: Mapping[str, Any], releases: list[ReleaseRecord]) -> list[str]:
    """What the latest feed says of releases otherwise than the catalog: one line each."""
    listed = sorted((r.get("id"), r.get("revision")) for r in document.get("releases", []))
    current = sorted((r.id, r.revision) for r in releases if r.withdrawn_at is None)
    problems = []
    if listed != current:
        problems.append(
            f"lists {len(listed)} release(s) {_shown(listed)},"
            f" the catalog {len(current)} {_shown(current)}"
        )
    gone = {entry.get("id") for entry in document.get("withdrawnReleases", [])}
    withdrawn = {r.id for r in releases if r.withdrawn_at is not None}
    if gone != withdrawn:
        problems.append(f"withdraws {len(gone)} release(s), the catalog {len(withdrawn)}")
    return problems


def _shown(pairs: list[tuple[Any, Any]]) -> str:
    return "(" + ", ".join(f"{i}@{r}" for i, r in pairs[:3]) + ("…)" if len(pairs) > 3 else ")")

"""Checking a node: is everything it has published still whole, present and consistent?

`check_node` re-hashes every file in the content store, checks the catalog against the store,
and walks the chain of feed documents. What it finds is of two weights:

- a *problem* is damage: content that no longer hashes to its CID, content the catalog
  references but the store lacks, a feed document that does not verify or does not follow the
  one before it, a catalog row that disagrees with the signed document it stands for, a release
  that does not verify or lists what is not a current track (node/releasecheck.py), and a
  withdrawn track or release whose content is still stored (and so still served);
- a *notice* is what an interrupted write leaves behind — a file nothing references yet, a
  half-written file in `tmp/` — or mirrored content the next sync has yet to fetch. Publishing
  stores content before the catalog transaction that references it, so a crash at any moment
  leaves at most notices, never a problem.

With `repair=True` (the caller must hold the node exclusively: `open_node(exclusive=True)`)
unreferenced content and leftovers are removed and the block index is brought up to date.
Damage to referenced content cannot be repaired here: it needs a backup or a mirror.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from node.catalog import FeedRecord, ReleaseRecord, TrackRecord
from node.cid import CID
from node.datadir import Node
from node.errors import IdentityError, StaveError, VerificationError, excerpt
from node.feed import FollowState, judge_feed, parse_json, parse_timestamp
from node.keys import artist_dids
from node.manifest import verify_manifest
from node.releasecheck import latest_feed_problems, release_covers, release_problems

# Feed snapshots are small JSON documents; anything larger is not one Stave wrote.
MAX_FEED_BYTES = 64 * 1024 * 1024

Weight = Literal["problem", "notice"]


@dataclass(frozen=True)
class Finding:
    """One thing `check_node` found: a one-line message about one subject (a CID or a path)."""

    weight: Weight
    kind: str
    subject: str
    message: str
    repairable: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class CheckReport:
    """What a check found, how much it looked at, and what it repaired."""

    files: int = 0
    tracks: int = 0
    releases: int = 0
    feeds: int = 0
    findings: list[Finding] = field(default_factory=list)
    repaired: list[Finding] = field(default_factory=list)
    reindexed: int = 0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.weight == "problem" and f not in self.repaired]

    @property
    def notices(self) -> list[Finding]:
        return [f for f in self.findings if f.weight == "notice" and f not in self.repaired]

    @property
    def ok(self) -> bool:
        """True when nothing is damaged (notices may remain)."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": {
                "files": self.files,
                "tracks": self.tracks,
                "releases": self.releases,
                "feeds": self.feeds,
            },
            "problems": [f.to_json() for f in self.problems],
            "notices": [f.to_json() for f in self.notices],
            "repaired": [f.to_json() for f in self.repaired],
            "reindexed": self.reindexed,
        }


async def check_node(node: Node, *, repair: bool = False) -> CheckReport:
    """Check the node's store, catalog and feed chain; with `repair`, remove what is repairable.

    Never changes anything without `repair`; with it, removes only content nothing references
    and leftovers of interrupted writes, then re-indexes the store.
    """
    report = CheckReport()
    stored = await asyncio.to_thread(_check_files, node, report)
    tracks = await node.catalog.tracks(include_withdrawn=True)
    releases = await node.catalog.releases(include_withdrawn=True)
    feeds = await node.catalog.feeds()
    mirrored = await node.catalog.mirrored_cids()
    report.tracks = sum(1 for t in tracks if t.withdrawn_at is None)
    report.releases = sum(1 for r in releases if r.withdrawn_at is None)
    report.feeds = len(feeds)
    _check_references(report, stored, tracks, releases, feeds, mirrored)
    _check_tracks(node, report, tracks, stored)
    for subject, message in release_problems(node, releases, tracks, stored):
        report.findings.append(Finding("problem", "release", subject, message))
    await asyncio.to_thread(_check_feed_chain, node, report, feeds, tracks, releases, stored)
    _find_leftovers(node, report)
    _check_actor_key(node, report)
    if repair:
        await asyncio.to_thread(_repair, node, report)
    return report


# --- the store -------------------------------------------------------------------------------


def _check_files(node: Node, report: CheckReport) -> dict[str, bool]:
    """Re-hash every stored file; returns each CID-named file and whether its bytes are whole."""
    stored: dict[str, bool] = {}
    for name in sorted(node.store.roots()):
        report.files += 1
        try:
            canonical = str(CID.parse(name).to_v1()) == name
        except StaveError:
            canonical = False
        if not canonical:
            report.findings.append(
                Finding(
                    "notice",
                    "stray",
                    _files(node, name),
                    f"{_files(node, name)} is not named by a CID; nothing can reference it",
                    repairable=True,
                )
            )
            continue
        try:
            whole = node.store.verify(name)
        except StaveError as e:
            report.findings.append(Finding("problem", "unreadable", name, f"{name}: {e}"))
            continue
        stored[name] = whole
    return stored


def _files(node: Node, name: str) -> str:
    return str(node.store.root / "files" / name)


# --- the catalog against the store -----------------------------------------------------------


def _check_references(
    report: CheckReport,
    stored: dict[str, bool],
    tracks: list[TrackRecord],
    releases: list[ReleaseRecord],
    feeds: list[FeedRecord],
    mirrored: set[str],
) -> None:
    # CIDs as the store names its files: a followed artist's manifest may spell one as a CIDv0.
    own: dict[str, str] = {}  # CID -> what references it, for messages
    withdrawn: dict[str, str] = {}
    for track in tracks:
        renditions = [
            ("rendition", r.get("cid"))
            for r in track.manifest.get("renditions") or []
            if isinstance(r, dict) and isinstance(r.get("cid"), str)
        ]
        for role, cid in (("audio", track.audio_cid), ("cover", track.cover_cid), *renditions):
            if cid is None:
                continue
            what = f"track {track.id} ({track.title!r}) {role}"
            if track.withdrawn_at is None:
                own[_normal(cid)] = what
            else:
                withdrawn.setdefault(_normal(cid), what)
    covers, withdrawn_covers = release_covers(releases)
    own.update({_normal(cid): what for cid, what in covers.items()})
    for cid, what in withdrawn_covers.items():
        withdrawn.setdefault(_normal(cid), what)
    for feed in feeds:
        own[_normal(feed.cid)] = f"feed {feed.sequence}"
    mirrored = {_normal(cid) for cid in mirrored}
    for cid, what in own.items():
        if cid not in stored:
            report.findings.append(
                Finding("problem", "missing", cid, f"{what}: {cid} is not in the store")
            )
        elif not stored[cid]:
            report.findings.append(
                Finding("problem", "corrupt", cid, f"{what}: {cid}'s stored bytes hash differently")
            )
    for cid in sorted(mirrored - own.keys()):
        if cid not in stored:
            report.findings.append(
                Finding(
                    "notice", "pending", cid, f"mirrored {cid} is not fetched yet; sync fetches it"
                )
            )
        elif not stored[cid]:
            report.findings.append(
                Finding(
                    "problem", "corrupt", cid, f"mirrored {cid}'s stored bytes hash differently"
                )
            )
    for cid in sorted(stored.keys() - own.keys() - mirrored):
        state = "" if stored[cid] else " (and its bytes hash differently)"
        if cid in withdrawn:
            report.findings.append(
                Finding(
                    "problem",
                    "withdrawn",
                    cid,
                    f"{withdrawn[cid]}: withdrawn, but {cid} is still stored and served{state}",
                    repairable=True,
                )
            )
        else:
            report.findings.append(
                Finding(
                    "notice",
                    "orphan",
                    cid,
                    f"{cid} is stored but nothing references it{state}",
                    repairable=True,
                )
            )


def _normal(cid: str) -> str:
    try:
        return str(CID.parse(cid).to_v1())
    except StaveError:
        return cid


def _check_tracks(
    node: Node, report: CheckReport, tracks: list[TrackRecord], stored: dict[str, bool]
) -> None:
    """Each current track's manifest verifies and agrees with its catalog row and its content."""
    did = node.identity.did
    for track in tracks:
        if track.withdrawn_at is not None:
            continue
        manifest = track.manifest
        label = f"track {track.id}"
        try:
            verify_manifest(manifest, did)
        except VerificationError as e:
            report.findings.append(Finding("problem", "track", track.id, f"{label}: {e}"))
            continue
        row = (track.revision, track.title, track.audio_cid, track.cover_cid)
        cover = manifest.get("cover")
        signed = (
            manifest["revision"],
            manifest["title"],
            manifest["audio"]["cid"],
            cover.get("cid") if isinstance(cover, dict) else None,
        )
        if row != signed:
            report.findings.append(
                Finding(
                    "problem",
                    "track",
                    track.id,
                    f"{label}: the catalog says {row}, its signed manifest {signed}",
                )
            )
        for ref in (manifest["audio"], cover, *manifest.get("renditions", [])):
            if not isinstance(ref, dict):
                continue
            cid = ref.get("cid")
            if not isinstance(cid, str) or not stored.get(cid):
                continue
            size = node.store.size(cid)
            if ref.get("size") != size:
                report.findings.append(
                    Finding(
                        "problem",
                        "track",
                        track.id,
                        f"{label}: its manifest gives {cid} {ref.get('size')} bytes,"
                        f" the store holds {size}",
                    )
                )


# --- the chain of feed documents ---------------------------------------------------------------


def _check_feed_chain(
    node: Node,
    report: CheckReport,
    feeds: list[FeedRecord],
    tracks: list[TrackRecord],
    releases: list[ReleaseRecord],
    stored: dict[str, bool],
) -> None:
    """Each feed follows the one before it, verifies against the key it was signed with (the
    artist's current did, or an earlier one its rotation statements name, never going back),
    and says what its catalog row says."""
    try:
        dids = artist_dids(node.data, node.identity.did)
    except VerificationError as e:
        report.findings.append(Finding("problem", "key", str(node.data.rotation_path), str(e)))
        dids = [node.identity.did]
    earliest = 0  # feeds may move to a later did of the chain, never back to an earlier one
    previous: FeedRecord | None = None
    latest: dict[str, Any] | None = None
    for record in feeds:
        label = f"feed {record.sequence}"

        def problem(message: str, record: FeedRecord = record, label: str = label) -> None:
            report.findings.append(Finding("problem", "feed", record.cid, f"{label}: {message}"))

        if previous is None and record.previous is not None:
            problem(f"the first feed points back at {record.previous}")
        if previous is not None:
            if record.sequence != previous.sequence + 1:
                problem(f"follows feed {previous.sequence}; sequences must increase by one")
            if record.previous != previous.cid:
                problem(f"points back at {record.previous}, not at feed {previous.sequence}")
        previous = record
        latest = None
        if not stored.get(record.cid):
            continue  # missing or corrupt: already a finding
        try:
            document, signer = _verified_feed(node, record, dids[earliest:])
        except StaveError as e:
            problem(f"{record.cid} does not verify: {e}")
            continue
        earliest = dids.index(signer, earliest)
        for name, in_catalog in (
            ("sequence", record.sequence),
            ("previous", record.previous),
            ("updated", record.updated),
            ("expires", record.expires),
        ):
            if document.get(name) != in_catalog:
                problem(
                    f"the catalog says {name} {in_catalog!r}, the document {document.get(name)!r}"
                )
        latest = document
    if latest is not None:
        _check_latest_feed(report, latest, feeds[-1], tracks)
        for message in latest_feed_problems(latest, releases):
            label = f"feed {feeds[-1].sequence}"
            report.findings.append(Finding("problem", "feed", feeds[-1].cid, f"{label} {message}"))


def _verified_feed(node: Node, record: FeedRecord, dids: list[str]) -> tuple[dict[str, Any], str]:
    """The feed document under `record.cid` and its artist, one of `dids`, verified as a
    follower of that artist would have when it was issued."""
    path = node.store.path(record.cid)
    size = path.stat().st_size
    if size > MAX_FEED_BYTES:
        raise VerificationError(f"{size} bytes is too large for a feed document")
    body = path.read_bytes()
    document = parse_json(body)
    if not isinstance(document, dict):
        raise VerificationError("feed is not a JSON object")
    artist = document.get("artist")
    if artist not in dids:
        raise VerificationError(
            f"signed as {excerpt(artist)}, which is not "
            + (f"{dids[0]}" if len(dids) == 1 else f"one of {', '.join(dids)}")
        )
    issued = parse_timestamp(document.get("updated"), "feed updated")
    return judge_feed(body, FollowState(artist), max_bytes=size, now=issued), artist


def _check_latest_feed(
    report: CheckReport, document: dict[str, Any], record: FeedRecord, tracks: list[TrackRecord]
) -> None:
    """The latest feed lists exactly the catalog's current tracks and withdrawals."""
    listed = [(m.get("id"), m.get("revision")) for m in document["tracks"]]
    current = [(t.id, t.revision) for t in tracks if t.withdrawn_at is None]
    if sorted(listed, key=str) != sorted(current, key=str):
        report.findings.append(
            Finding(
                "problem",
                "feed",
                record.cid,
                f"feed {record.sequence} lists {_ids(listed)}, the catalog {_ids(current)}",
            )
        )
    gone = {entry.get("id") for entry in document.get("withdrawn", [])}
    withdrawn = {t.id for t in tracks if t.withdrawn_at is not None}
    if gone != withdrawn:
        report.findings.append(
            Finding(
                "problem",
                "feed",
                record.cid,
                f"feed {record.sequence} withdraws {len(gone)} track(s), the catalog"
                f" {len(withdrawn)}",
            )
        )


def _ids(pairs: Iterable[tuple[Any, Any]]) -> str:
    shown = [f"{track_id}@{revision}" for track_id, revision in pairs]
    return f"{len(shown)} track(s)" + (f" ({', '.join(shown[:3])}…)" if len(shown) > 3 else "")


# --- leftovers and repair --------------------------------------------------------------------


def _find_leftovers(node: Node, report: CheckReport) -> None:
    """Every entry of `tmp/`: half-written files, and the directories uploads are spooled to
    (`stave run` removes an upload's directory when it is done, unless it was killed)."""
    tmp = node.store.root / "tmp"
    try:
        entries = sorted((entry.name, entry.is_dir()) for entry in os.scandir(tmp))
    except FileNotFoundError:
        return
    for name, is_dir in entries:
        path = str(tmp / name)
        what = "an interrupted upload" if is_dir else "an interrupted write"
        report.findings.append(
            Finding("notice", "leftover", path, f"{path} is left from {what}", repairable=True)
        )


def _check_actor_key(node: Node, report: CheckReport) -> None:
    """The actor key signs the node's fediverse requests: one that cannot be read is damage
    (`open_node` has already made it if it was missing)."""
    try:
        node.actor_key  # noqa: B018 - reading it is the check
    except IdentityError as e:
        path = str(node.data.actor_key_path)
        report.findings.append(Finding("problem", "actor-key", path, str(e)))


def _repair(node: Node, report: CheckReport) -> None:
    for finding in report.findings:
        if not finding.repairable:
            continue
        if finding.kind in ("orphan", "withdrawn"):
            node.store.remove(finding.subject)
        elif Path(finding.subject).is_dir():  # an upload's spool directory
            shutil.rmtree(finding.subject, ignore_errors=True)
        else:  # stray and leftover findings name a path
            Path(finding.subject).unlink(missing_ok=True)
        report.repaired.append(finding)
    report.reindexed = node.store.repair()

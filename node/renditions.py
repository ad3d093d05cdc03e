"""Listening renditions of a node's tracks: the small streaming copies phones play.

For each kind in `media.renditions` a track's audio is transcoded (node/media/renditions.py),
the same terms are written into the copy's tags as into the original's (PROTOCOL §10), and the
copy is stored under its own CID. The manifest lists them beside the original:
`renditions: [{cid, mediaType, bitrate, size, integrity}]`, `bitrate` in bits per second as
Podcasting 2.0's `alternateEnclosure` gives it, `integrity` the file's SHA-256 as Subresource
Integrity writes it (what RSS's `podcast:integrity` carries).

Transcoding runs in a thread, one file at a time. Content is stored before anything refers to
it and each CID is appended to the caller's `created` list, so that a caller that fails
removes again what nobody references (the pattern of node/publish.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from node.catalog import CatalogWrite, FeedRecord, TrackRecord
from node.datadir import Node
from node.errors import StoreError, UnsupportedMedia, UsageError
from node.offers import terms_page_url
from node.signing import sign_document
from node.terms import Terms

if TYPE_CHECKING:
    from node.media.renditions import Rendition
    from node.media.terms import EmbeddedTerms

# PyAV and mutagen are imported where a file is transcoded or tagged, never with this module.

_HASH_CHUNK = 1 << 20


def configured_renditions(node: Node) -> list[Rendition]:
    """The kinds of rendition `media.renditions` asks for, in its order; [] for none."""
    from node.media.renditions import parse_rendition

    return [parse_rendition(text) for text in node.config["media.renditions"]]


def embedded_terms(node: Node, terms: Terms, track_id: str) -> EmbeddedTerms:
    """The terms as this node writes them into the tags of a track's files."""
    from node.media.terms import EmbeddedTerms

    return EmbeddedTerms(
        copyright=terms.copyright,
        license=terms.license,
        license_url=terms.license_url,
        terms_in_words=terms.in_words(),
        tdm_reservation=terms.tdm_reservation,
        ai_training=terms.ai_training,
        artist_did=node.identity.did,
        track_id=track_id,
        feed_url=node.feed_url,
        terms_url=terms_page_url(node.base_url, track_id),
        offer_url=offer.url if (offer := terms.offer("aiTraining")) else "",
    )


async def make_renditions(
    node: Node,
    source: Path,
    track_id: str,
    terms: Terms,
    created: list[str],
    kinds: list[Rendition] | None = None,
) -> list[dict[str, Any]]:
    """Transcode `source` into each kind (default: the configured ones), tag and store each
    copy; returns the manifest's `renditions` entries. Each stored CID goes into `created`."""
    entries = []
    for kind in configured_renditions(node) if kinds is None else kinds:
        entry = await asyncio.to_thread(_make, node, source, kind, track_id, terms)
        created.append(entry["cid"])
        entries.append(entry)
    return entries


async def retag_renditions(
    node: Node, renditions: list[dict[str, Any]], track_id: str, terms: Terms, created: list[str]
) -> list[dict[str, Any]]:
    """The renditions again with new terms in their tags (when a track's terms are edited):
    each stored copy copied, tagged and stored anew, without transcoding again."""
    from node import media

    entries = []
    for old in renditions:
        tmp = node.store.tmp_path(".opus")
        try:
            await asyncio.to_thread(shutil.copyfile, node.store.path(old["cid"]), tmp)
            await asyncio.to_thread(media.write_terms, tmp, embedded_terms(node, terms, track_id))
            entry = await asyncio.to_thread(_store, node, tmp, old["mediaType"], old["bitrate"])
        except OSError as e:
            raise StoreError(f"rendition {old['cid']}: cannot copy ({e.strerror})") from e
        finally:
            tmp.unlink(missing_ok=True)
        created.append(entry["cid"])
        entries.append(entry)
    return entries


def rendition_cids(manifest: dict[str, Any]) -> list[str]:
    """The CIDs of a manifest's renditions."""
    return [entry["cid"] for entry in manifest.get("renditions") or []]


def _make(node: Node, source: Path, kind: Rendition, track_id: str, terms: Terms) -> dict[str, Any]:
    from node import media
    from node.media.renditions import transcode

    tmp = node.store.tmp_path(kind.suffix)
    try:
        transcode(source, tmp, kind)
        media.write_terms(tmp, embedded_terms(node, terms, track_id))
        return _store(node, tmp, kind.media_type, kind.bitrate)
    finally:
        tmp.unlink(missing_ok=True)


def _store(node: Node, tmp: Path, media_type: str, bitrate: int) -> dict[str, Any]:
    digest = hashlib.sha256()
    with tmp.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    stored = node.store.adopt(tmp)
    return {
        "cid": stored.cid,
        "mediaType": media_type,
        "bitrate": bitrate,
        "size": stored.size,
        "integrity": "sha256-" + base64.b64encode(digest.digest()).decode("ascii"),
    }


# --- `stave renditions make`: the renditions an existing catalog lacks --------------------------


class FeedPublisher(Protocol):
    """What signs the next feed after a change: `node.publish.Publisher` (which imports this
    module, so it is named here by what it does)."""

    def publish_change(
        self, change: Callable[[CatalogWrite], Awaitable[None]]
    ) -> Awaitable[FeedRecord]: ...


@dataclass(frozen=True)
class Progress:
    """Where `make_catalog_renditions` is: the track it starts, of how many lack renditions."""

    done: int
    total: int
    track: TrackRecord


async def make_catalog_renditions(
    node: Node,
    publisher: FeedPublisher,
    on_track: Callable[[Progress], None] | None = None,
) -> int:
    """Give every current track that lacks one of the configured renditions its next manifest
    revision with exactly the configured renditions, one track and one feed at a time, so
    that an interrupted run keeps what it finished and a second run does the rest. Returns
    how many tracks were revised."""
    kinds = configured_renditions(node)
    if not kinds:
        raise UsageError("renditions: media.renditions is [], so there are none to make")
    lacking = [track for track in await node.catalog.tracks() if _missing(track, kinds)]
    for done, track in enumerate(lacking):
        if on_track is not None:
            on_track(Progress(done, len(lacking), track))
        await _revise(node, publisher, track, kinds)
    return len(lacking)


def _missing(track: TrackRecord, kinds: list[Rendition]) -> list[Rendition]:
    have = track.manifest.get("renditions") or []
    return [kind for kind in kinds if not any(kind.matches(entry) for entry in have)]


async def _revise(
    node: Node, publisher: FeedPublisher, track: TrackRecord, kinds: list[Rendition]
) -> None:
    manifest = track.manifest
    kept = [e for e in manifest.get("renditions") or [] if any(k.matches(e) for k in kinds)]
    created: list[str] = []
    try:
        try:
            made = await make_renditions(
                node,
                node.store.path(track.audio_cid),
                track.id,
                Terms.from_json(manifest["terms"]),
                created,
                _missing(track, kinds),
            )
        except UnsupportedMedia as e:  # it names the stored file by its CID: name the track
            raise UnsupportedMedia(f"track {track.id} ({track.title!r}), audio {e}") from e

        async def change(tx: CatalogWrite) -> None:
            current = await tx.track(track.id)
            if current.revision != track.revision or current.withdrawn_at is not None:
                raise UsageError(
                    f"track {track.id}: changed while its renditions were made;"
                    " run `stave renditions make` again"
                )
            unsigned = {k: v for k, v in manifest.items() if k != "proof"}
            unsigned.update(revision=track.revision + 1, renditions=kept + made)
            revised = sign_document(unsigned, node.identity)
            await tx.put_track(revised)  # its releases are revised with the feed (release_sync)
            if node.config["ipfs.backend"] == "kubo":  # as node/publish.py queues its content
                await tx.queue_pins(created)
                await tx.queue_unpins(rendition_cids(manifest))

        await publisher.publish_change(change)
    except BaseException:
        await collect(node, created)
        raise
    await collect(node, rendition_cids(manifest))


async def collect(node: Node, cids: list[str]) -> None:
    """Remove the content under `cids` that the catalog no longer references."""
    if not cids:
        return
    referenced = await node.catalog.referenced_cids()
    for cid in cids:
        if cid not in referenced:
            await asyncio.to_thread(node.store.remove, cid)

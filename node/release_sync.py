"""Keeping releases in step with their tracks, inside every feed transaction: a follower accepts
a feed only if each release's track entries name the feed's tracks at their current revision
and audio CID, and each release is signed by the feed's artist (docs/protocol-extensions.md,
Releases). So when a track is edited, withdrawn, given renditions or signed again by a rotated
key, the releases listing it get their next revision here, before the feed is signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.catalog import CatalogWrite
from node.identity import Identity
from node.release import release_track_entry
from node.signing import sign_document


async def keep_releases_in_step(
    tx: CatalogWrite, identity: Identity, at: str, manifests: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Sign the next revision of every current release whose entries or artist are stale: an
    edited track's entry names its new revision; a withdrawn track leaves the release (the
    others on its disc numbered again from 1); a release left without tracks is withdrawn.
    `manifests` are the current tracks' (the feed's, read once by the caller). Returns the
    covers of the releases withdrawn, for the caller to unpin and remove."""
    dropped: list[str] = []
    current = {str(manifest["id"]): manifest for manifest in manifests}
    for record in await tx.releases():
        document = record.document
        entries: list[dict[str, Any]] = []
        numbers: dict[int, int] = {}
        for entry in document["tracks"]:
            manifest = current.get(entry["id"])
            if manifest is None:
                continue
            disc = entry["disc"]
            numbers[disc] = numbers.get(disc, 0) + 1
            entries.append(release_track_entry(manifest, disc, numbers[disc]))
        if not entries:
            await tx.withdraw_release(record.id, at)
            dropped += [record.cover_cid] if record.cover_cid else []
            continue
        if entries == document["tracks"] and document["artist"] == identity.did:
            continue
        unsigned = {key: value for key, value in document.items() if key != "proof"}
        unsigned.update(revision=record.revision + 1, artist=identity.did, tracks=entries)
        await tx.put_release(sign_document(unsigned, identity))
    return dropped

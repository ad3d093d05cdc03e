"""Verifying a published audio file against the manifest its artist signed, and a feed
published under an IPNS name against the key that name is."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from node import media
from node.catalog import Catalog, open_catalog
from node.cid import CID, UnixFSImporter, import_path
from node.datadir import DataDir, open_node
from node.errors import InvalidCID, KuboError, StaveError, UsageError, VerificationError
from node.feed import FollowState, judge_feed, parse_json
from node.ipns import did_from_ipns_name
from node.kubo import KuboClient
from node.manifest import verify_manifest
from node.rotation import MAX_ROTATION_BYTES, ROTATION_PATH, verify_rotation_chain

FEED_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5, sock_read=10)
MAX_FEED_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class _Verdict:
    """Whether what `stave verify` checked is what its artist signed, and why."""

    valid: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Verdict(_Verdict):
    """What `stave verify` found about one file."""

    cid: str
    track_id: str | None = None
    artist: str | None = None
    revision: int | None = None
    source: str | None = None


async def verify_file(path: Path, catalog: Catalog | None, *, use_feed: bool = True) -> Verdict:
    """Check a file's Stave tags and CID against a signed manifest, locally or from its feed."""
    tags = await asyncio.to_thread(media.read_terms, path)
    cid = str((await asyncio.to_thread(import_path, path)).root)
    track_id, artist, feed_url = (
        tags.get("STAVE_TRACK"),
        tags.get("STAVE_ARTIST"),
        tags.get("STAVE_FEED"),
    )
    if not track_id or not artist:
        return Verdict(
            False, f"{path.name}: carries no Stave tags (STAVE_TRACK, STAVE_ARTIST)", cid
        )

    def verdict(
        valid: bool, reason: str, revision: int | None = None, source: str | None = None
    ) -> Verdict:
        return Verdict(valid, reason, cid, track_id, artist, revision, source)

    if catalog is not None:
        for manifest in await catalog.manifests_for_audio(cid):
            if manifest.get("id") == track_id and manifest.get("artist") == artist:
                try:
                    verify_manifest(manifest, artist)
                except VerificationError as e:
                    return verdict(False, f"local manifest does not verify: {e}")
                reason = (
                    f"matches revision {manifest['revision']} of {track_id}, signed by {artist}"
                )
                track = await catalog.track(track_id)
                if track.withdrawn_at is not None:
                    reason += f"; the artist withdrew the track at {track.withdrawn_at}"
                elif track.revision != manifest["revision"]:
                    reason += f"; superseded by revision {track.revision}"
                return verdict(True, reason, revision=manifest["revision"], source="catalog")
    if not use_feed or not feed_url:
        return verdict(False, "no signed manifest for this CID in the local catalog")
    try:
        feed = await _fetch_feed(feed_url, artist)
    except StaveError as e:
        return verdict(False, f"could not check against {feed_url}: {e}")
    signer = artist if feed["artist"] == artist else f"{feed['artist']} (rotated from {artist})"
    for manifest in feed["tracks"]:
        if manifest["id"] == track_id:
            if manifest["audio"]["cid"] != cid:
                return verdict(
                    False,
                    f"CID {cid} is not the signed CID {manifest['audio']['cid']} of {track_id}"
                    f" in {feed_url} (altered, or an older revision)",
                )
            return verdict(
                True,
                f"matches revision {manifest['revision']} of {track_id} in {feed_url},"
                f" signed by {signer}",
                revision=manifest["revision"],
                source=feed_url,
            )
    if any(entry.get("id") == track_id for entry in feed.get("withdrawn", [])):
        return verdict(False, f"{track_id} was withdrawn by the artist")
    return verdict(False, f"{track_id} is not in the artist's feed at {feed_url}")


async def _fetch_feed(url: str, artist: str) -> dict[str, Any]:
    """The feed at `url`, verified against `artist` — or, when the artist has rotated their key
    since the file was tagged, against the did the statements served beside the feed lead to
    from `artist` (docs/protocol-extensions.md)."""
    body = await _fetch(url, MAX_FEED_BYTES, "feed")
    document = parse_json(body, "feed")
    signer = document.get("artist") if isinstance(document, dict) else None
    if isinstance(signer, str) and signer != artist:
        statements_url = urljoin(url, ROTATION_PATH)
        try:
            statements = await _fetch(statements_url, MAX_ROTATION_BYTES, "rotation statements")
            verify_rotation_chain(statements, artist, signer)
        except VerificationError as e:
            raise VerificationError(
                f"the feed is signed by {signer}, not {artist}, and no rotation statement at"
                f" {statements_url} leads there ({e})"
            ) from e
        artist = signer
    return judge_feed(body, FollowState(artist=artist), max_bytes=MAX_FEED_BYTES)


async def _fetch(url: str, max_bytes: int, what: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise VerificationError(f"{what} URL {url!r} is not http(s)")
    try:
        async with (
            aiohttp.ClientSession(timeout=FEED_FETCH_TIMEOUT) as session,
            session.get(url, allow_redirects=True, max_redirects=3) as response,
        ):
            if response.status != 200:
                raise VerificationError(f"HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > max_bytes:
                    raise VerificationError(f"{what} is over {max_bytes} bytes")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise VerificationError(f"unreachable ({e.__class__.__name__}: {e})") from e
    return bytes(body)


# --- feeds published under an IPNS name --------------------------------------------------------


@dataclass(frozen=True)
class FeedVerdict(_Verdict):
    """What `stave verify ipns://NAME` found: the feed the name points at, and whether the
    artist whose key the name is signed it."""

    name: str
    cid: str | None = None
    artist: str | None = None
    sequence: int | None = None
    tracks: int | None = None


async def verify_ipns(
    name: str, client: KuboClient, *, max_bytes: int = MAX_FEED_BYTES
) -> FeedVerdict:
    """Resolve the IPNS name `name` through Kubo and verify the feed it points at: its proof
    against its own `artist`, and that `name` is the IPNS name of that artist's key.

    KuboError when Kubo itself cannot be reached; every other failure is an invalid verdict.
    """
    try:
        named_artist = did_from_ipns_name(name)
    except VerificationError as e:
        return FeedVerdict(False, str(e), name)
    await client.version()  # an unreachable Kubo is an error, not a verdict on the name
    try:
        path = await client.name_resolve(name)
    except KuboError as e:
        return FeedVerdict(False, f"could not resolve the name: {e}", name)
    target = path.removeprefix("/ipfs/")
    try:
        if target == path or "/" in target:
            raise InvalidCID(f"{path!r} is not an /ipfs/<cid> path")
        cid = str(CID.parse(target).to_v1())
    except InvalidCID as e:
        return FeedVerdict(False, f"the name points at {path}, not a feed: {e}", name)
    body = bytearray()
    importer = UnixFSImporter()
    try:
        async for chunk in client.cat(cid):
            body += chunk
            if len(body) > max_bytes:
                return FeedVerdict(
                    False, f"the feed {cid} is over {max_bytes} bytes", name, cid=cid
                )
            importer.update(chunk)
    except KuboError as e:
        return FeedVerdict(False, f"could not fetch the feed {cid}: {e}", name, cid=cid)
    if str(importer.finish().root) != cid:
        return FeedVerdict(False, f"the bytes Kubo returned are not {cid}", name, cid=cid)

    def verdict(valid: bool, reason: str, artist: str | None = None) -> FeedVerdict:
        return FeedVerdict(valid, reason, name, cid=cid, artist=artist)

    try:
        document = parse_json(bytes(body))
        artist = document.get("artist") if isinstance(document, dict) else None
        if not isinstance(artist, str):
            raise VerificationError("the feed names no artist")
        feed = judge_feed(bytes(body), FollowState(artist=artist), max_bytes=max_bytes)
    except VerificationError as e:
        return verdict(False, f"the feed {cid} does not verify: {e}")
    if artist != named_artist:
        return verdict(
            False, f"the feed is signed by {artist}, but the name is the key of {named_artist}"
        )
    sequence = feed["sequence"]
    tracks = len(feed["tracks"])
    return FeedVerdict(
        True,
        f"feed {sequence} ({cid}) signed by {artist}, whose key the name is;"
        f" {tracks} track{'s' * (tracks != 1)}",
        name,
        cid=cid,
        artist=artist,
        sequence=sequence,
        tracks=tracks,
    )


async def verify_file_at(root: Path, path: Path, *, use_feed: bool = True) -> Verdict:
    """`stave verify FILE`: `verify_file` against the catalog of the node in `root` when there
    is one, else against the file's own tags and its artist's feed alone."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    catalog_path = DataDir(root).catalog_path
    if not catalog_path.exists():
        return await verify_file(path, None, use_feed=use_feed)
    async with open_catalog(catalog_path) as catalog:
        return await verify_file(path, catalog, use_feed=use_feed)


async def verify_ipns_at(root: Path, name: str) -> FeedVerdict:
    """`stave verify ipns://NAME`: `verify_ipns` through the Kubo of the node in `root` when
    there is one, else through the default Kubo API (authorised from the environment)."""
    from node.pinning import AUTHORIZATION_ENV, kubo_client

    data = DataDir(root)
    if data.config_path.exists():
        async with open_node(data.root) as node, kubo_client(node) as client:
            return await verify_ipns(name, client)
    authorization = os.environ.get(AUTHORIZATION_ENV) or None
    async with KuboClient(authorization=authorization) as client:
        return await verify_ipns(name, client)

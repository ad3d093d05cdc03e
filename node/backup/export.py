"""Exporting a node: one streaming backup archive of its content, catalog, config and keys."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from node import __version__
from node.backup.archive import (
    ARCHIVE_TYPE,
    ARCHIVE_VERSION,
    CATALOG_NAME,
    BackupSummary,
    ContentEntry,
    car_length,
    write_archive,
)
from node.catalog import FeedRecord, open_catalog
from node.cid import CID
from node.datadir import DataDir
from node.errors import StoreError, UsageError, VerificationError
from node.feed import format_timestamp, parse_json
from node.store import Store

MIN_PASSPHRASE = 8
Keys = tuple[bytes, bytes]  # the artist's key and the actor key, as encrypted PEM


async def export_node(
    data_root: Path, target: Path | BinaryIO, *, key_passphrase: str | None = None
) -> BackupSummary:
    """Write a backup archive of the node in `data_root` to `target` (a path, or a binary stream
    such as stdout).

    The keys go in only when `key_passphrase` is given, encrypted with it: the artist's and
    the actor's (made now if the node has none yet). A path is written
    beside itself and renamed into place when complete, with mode 0600; on any error nothing is
    left at it. The node may keep serving and publishing meanwhile.
    """
    data = DataDir(data_root)
    data.load_config()  # refuses a directory that is not a node's
    data.refuse_unfinished_rotation()  # its catalog and key.pem may not agree yet
    keys = _encrypted_keys(data, key_passphrase) if key_passphrase is not None else None
    if isinstance(target, Path):
        return await _export_to_path(data, target, keys)
    return await _export(data, target, keys)


def _encrypted_keys(data: DataDir, passphrase: str) -> Keys:
    """The artist's key and the actor's, each as PKCS#8 PEM encrypted with `passphrase`."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(
            f"export passphrase: use at least {MIN_PASSPHRASE} characters to protect the key"
        )
    return data.load_identity().pem(passphrase), data.load_actor_key().pem(passphrase)


async def _export_to_path(data: DataDir, path: Path, keys: Keys | None) -> BackupSummary:
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give the archive's file name")
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise StoreError(f"{path}: cannot write the archive ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as out:
            summary = await _export(data, out, keys)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except OSError as e:
        raise StoreError(f"{path}: cannot write the archive ({e.strerror or e})") from e
    finally:
        partial.unlink(missing_ok=True)
    return summary


async def _export(data: DataDir, out: BinaryIO, keys: Keys | None) -> BackupSummary:
    key_pem, actor_key_pem = keys if keys is not None else (None, None)
    store = Store(data.store_path)
    scratch = data.root / f".export-{uuid.uuid4().hex[:8]}"
    try:
        scratch.mkdir(mode=0o700)
        snapshot = scratch / CATALOG_NAME
        async with open_catalog(data.catalog_path) as catalog:
            await catalog.backup_to(snapshot)
        async with open_catalog(snapshot) as catalog:
            referenced = await catalog.referenced_cids()
            latest = await catalog.latest_feed()
        roots = sorted(store.roots())
        missing = sorted(referenced - set(roots))
        if missing:
            raise StoreError(
                f"{missing[0]}: the catalog references it but the store does not hold it"
                f" ({len(missing)} file(s) missing); run `stave check`"
            )
        artist = _feed_artist(store, latest) if latest else ""
        entries = await asyncio.to_thread(_content_entries, store, roots)
        index = {
            "type": ARCHIVE_TYPE,
            "version": ARCHIVE_VERSION,
            "created": format_timestamp(datetime.now(UTC)),
            "software": {"name": "stave", "version": __version__},
            "artist": artist,
            "feed": {"sequence": latest.sequence, "cid": latest.cid} if latest else None,
            "key": key_pem is not None,
            "actor_key": actor_key_pem is not None,
            "content": [{"cid": e.cid, "size": e.size} for e in entries],
        }
        await asyncio.to_thread(
            write_archive, out, index, data, snapshot, key_pem, actor_key_pem, store, entries
        )
    finally:
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return BackupSummary(
        artist=artist,
        feed_sequence=latest.sequence if latest else None,
        files=len(entries),
        content_bytes=sum(e.size for e in entries),
        with_key=key_pem is not None,
    )


def _feed_artist(store: Store, latest: FeedRecord) -> str:
    with store.open(latest.cid) as f:
        feed = parse_json(f.read(), f"feed {latest.cid}")
    artist = feed.get("artist") if isinstance(feed, dict) else None
    if not isinstance(artist, str):
        raise VerificationError(f"feed {latest.cid}: has no artist")
    return artist


def _content_entries(store: Store, roots: list[str]) -> list[ContentEntry]:
    return [ContentEntry(cid, store.size(cid), car_length(store, CID.parse(cid))) for cid in roots]

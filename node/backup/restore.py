"""Importing a backup archive: restoring a node into a new data directory.

Restoring checks every block against its CID as it streams, rebuilds each file from its blocks
through the store (which checks the whole file against the CAR's root), checks the feed chain,
and moves the result into the data directory only once all of it passed: a refused archive
leaves the target as it was. The admin token is not archived; a restore makes a new one.
An archive without the actor key (made without --with-key, or before the actor key existed)
restores a node that makes a new actor key when first opened: fediverse followers then fetch
its new public key, as they do whenever an actor's key changes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.actorkey import ActorKey, as_actor_key
from node.backup.archive import (
    ACTOR_KEY_NAME,
    ARCHIVE_TYPE,
    ARCHIVE_VERSION,
    CAR_SUFFIX,
    CATALOG_NAME,
    CONFIG_NAME,
    CONTENT_PREFIX,
    INDEX_NAME,
    KEY_NAME,
    MAX_CONFIG_BYTES,
    MAX_INDEX_BYTES,
    MAX_KEY_BYTES,
    ROTATION_NAME,
    BackupSummary,
    canonical_cid,
    copy_to,
    read_small,
    restore_car,
    write_private,
)
from node.catalog import Catalog, FeedRecord, open_catalog
from node.cid import CID
from node.datadir import PASSPHRASE_ENV, DataDir
from node.errors import CatalogError, IdentityError, UsageError, VerificationError
from node.feed import FEED_TYPE, parse_json
from node.identity import Identity
from node.keys import artist_dids
from node.rotation import MAX_ROTATION_BYTES
from node.settings import parse_config
from node.signing import verify_document
from node.store import Store

# Entries a fresh data directory may already have: a filesystem's own, and the node's keys.
IGNORED_ENTRIES = frozenset({"lost+found"})


async def import_node(
    source: Path | BinaryIO,
    data_root: Path,
    *,
    archive_passphrase: Callable[[], str],
) -> BackupSummary:
    """Restore a backup archive into `data_root`, a new data directory.

    `data_root` must not exist, be empty, or hold only the artist's `key.pem` (for an archive
    made without the key) and perhaps the actor's `actor-key.pem`; anything else is refused.
    `archive_passphrase` is asked once, only when the archive holds the keys. Every block is
    checked against its CID, every file against its root, and the feed chain against the
    artist's key; anything wrong refuses the whole archive with the reason and leaves
    `data_root` exactly as it was.
    """
    name = str(source) if isinstance(source, Path) else "archive"
    existing_key = _check_target(data_root)
    created_root = not data_root.exists()
    staging = data_root / f".import-{uuid.uuid4().hex[:8]}"
    restore = _Restore(name, data_root, staging, existing_key, archive_passphrase)
    try:
        stream: BinaryIO = source.open("rb") if isinstance(source, Path) else source
    except OSError as e:
        raise UsageError(f"{source}: cannot read ({e.strerror or e})") from e
    try:
        data_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging.mkdir(mode=0o700)
        try:
            summary = await asyncio.to_thread(restore.read_archive, stream)
        finally:
            if stream is not source:
                stream.close()
        await restore.finish()
        restore.move_into_place()
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_root:
            shutil.rmtree(data_root, ignore_errors=True)
        raise
    return summary


def _check_target(root: Path) -> bool:
    """Whether `root` already holds the artist's key; UsageError if it holds anything else."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    entries = {entry.name for entry in root.iterdir()} - IGNORED_ENTRIES
    others = sorted(entries - {KEY_NAME, ACTOR_KEY_NAME})
    if others:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise UsageError(
            f"{root}: not a new data directory (it holds {shown});"
            " stave import restores into an empty one"
        )
    return KEY_NAME in entries


class _Restore:
    """One archive being restored into a staging directory inside the target."""

    def __init__(
        self,
        name: str,
        root: Path,
        staging: Path,
        existing_key: bool,
        archive_passphrase: Callable[[], str],
    ) -> None:
        self.name = name
        self.root = root
        self.staging = staging
        self.existing_key = existing_key
        self.archive_passphrase = archive_passphrase
        self.passphrase: str | None = None  # asked once, for both keys
        self.index: dict[str, Any] = {}
        self.identity: Identity | None = None
        self.key_from_archive = False
        self.actor_key: ActorKey | None = None  # from the archive
        self.expected: dict[str, int] = {}
        self.restored: set[str] = set()

    # --- reading the stream, in member order ------------------------------------------------

    def read_archive(self, stream: IO[bytes]) -> BackupSummary:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                self._read_members(tar)
        except (tarfile.TarError, EOFError) as e:
            raise VerificationError(f"{self.name}: not a readable Stave backup ({e})") from e
        missing = sorted(set(self.expected) - self.restored)
        if missing:
            raise VerificationError(
                f"{self.name}: ends before content/{missing[0]}{CAR_SUFFIX}"
                f" ({len(missing)} file(s) missing); the archive is truncated"
            )
        feed = self.index.get("feed") or {}
        return BackupSummary(
            artist=self.index["artist"],
            feed_sequence=feed.get("sequence"),
            files=len(self.restored),
            content_bytes=sum(self.expected.values()),
            with_key=self.key_from_archive,
        )

    def _read_members(self, tar: tarfile.TarFile) -> None:
        order = [INDEX_NAME, CONFIG_NAME, CATALOG_NAME]
        position = 0
        store: Store | None = None
        try:
            for member in tar:
                if not member.isreg():
                    raise VerificationError(f"{self.name}: {member.name} is not a regular file")
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isreg() members always have a body
                    raise VerificationError(f"{self.name}: {member.name} has no content")
                if position < len(order):
                    if member.name != order[position]:
                        raise VerificationError(
                            f"{self.name}: member {member.name} where {order[position]} belongs;"
                            " not a Stave backup"
                        )
                    position += 1
                    if member.name == INDEX_NAME:
                        self._read_index(read_small(source, member, MAX_INDEX_BYTES))
                    elif member.name == CONFIG_NAME:
                        self._read_config(read_small(source, member, MAX_CONFIG_BYTES))
                    else:
                        copy_to(source, self.staging / CATALOG_NAME)
                elif (
                    member.name == ROTATION_NAME
                    and store is None
                    and not self.key_from_archive
                    and not (self.staging / ROTATION_NAME).exists()
                ):
                    body = read_small(source, member, MAX_ROTATION_BYTES)
                    write_private(self.staging / ROTATION_NAME, body)
                elif member.name == KEY_NAME and store is None and not self.key_from_archive:
                    self._read_key(read_small(source, member, MAX_KEY_BYTES))
                elif (
                    member.name == ACTOR_KEY_NAME
                    and store is None
                    and self.key_from_archive
                    and self.actor_key is None
                ):
                    self._read_actor_key(read_small(source, member, MAX_KEY_BYTES))
                elif member.name.startswith(CONTENT_PREFIX) and member.name.endswith(CAR_SUFFIX):
                    if store is None:
                        self._check_key_read()
                    if store is None:
                        store = Store(self.staging / "store")
                    self._read_car(member.name, source, store)
                else:
                    raise VerificationError(f"{self.name}: unexpected member {member.name}")
            if position < len(order):
                raise VerificationError(f"{self.name}: ends before {order[position]}")
            self._check_key_read()
        finally:
            if store is not None:
                store.close()

    def _check_key_read(self) -> None:
        if self.index.get("key") is True and not self.key_from_archive:
            raise VerificationError(f"{self.name}: the index lists a key, none is there")
        if self.index.get("actor_key") is True and self.actor_key is None:
            raise VerificationError(f"{self.name}: the index lists an actor key, none is there")

    def _read_index(self, body: bytes) -> None:
        index = parse_json(body, INDEX_NAME)
        if not isinstance(index, dict) or index.get("type") != ARCHIVE_TYPE:
            raise VerificationError(f"{self.name}: {INDEX_NAME} is not a Stave backup index")
        if index.get("version") != ARCHIVE_VERSION:
            raise VerificationError(
                f"{self.name}: backup format version {index.get('version')!r};"
                f" this Stave reads version {ARCHIVE_VERSION}"
            )
        artist, content = index.get("artist"), index.get("content")
        if not isinstance(artist, str) or not isinstance(content, list):
            raise VerificationError(f"{self.name}: {INDEX_NAME} lacks the artist or content")
        for entry in content:
            cid = entry.get("cid") if isinstance(entry, dict) else None
            size = entry.get("size") if isinstance(entry, dict) else None
            if not isinstance(cid, str) or not isinstance(size, int) or cid in self.expected:
                raise VerificationError(f"{self.name}: {INDEX_NAME} has a bad content entry")
            self.expected[canonical_cid(cid, self.name)] = size
        self.index = index
        if index.get("key") is True and self.existing_key:
            raise UsageError(
                f"{self.root}: already holds a key.pem and the archive brings the artist's key;"
                " restore into an empty directory"
            )
        if index.get("actor_key") is True:
            if index.get("key") is not True:
                raise VerificationError(
                    f"{self.name}: {INDEX_NAME} lists the actor key without the artist's"
                )
            if (self.root / ACTOR_KEY_NAME).exists():
                raise UsageError(
                    f"{self.root}: already holds an {ACTOR_KEY_NAME} and the archive brings"
                    " the actor key; restore into an empty directory"
                )
        if index.get("key") is not True:
            if not self.existing_key:
                raise IdentityError(
                    f"{self.name}: holds no key (exported without --with-key); put the artist's"
                    f" key.pem in {self.root} first, or use an archive made with --with-key"
                )
            identity = DataDir(self.root).load_identity()
            self._check_artist(identity, f"{self.root / KEY_NAME}")
            self.identity = identity

    def _read_config(self, body: bytes) -> None:
        try:
            parse_config(body.decode("utf-8"), f"{self.name}: {CONFIG_NAME}")
        except UnicodeDecodeError as e:
            raise VerificationError(f"{self.name}: {CONFIG_NAME} is not UTF-8") from e
        write_private(self.staging / CONFIG_NAME, body)

    def _read_key(self, pem: bytes) -> None:
        if self.index.get("key") is not True:
            raise VerificationError(f"{self.name}: holds a key its index does not list")
        try:
            key = serialization.load_pem_private_key(pem, self._passphrase().encode())
        except (ValueError, TypeError) as e:
            raise IdentityError(f"{self.name}: {KEY_NAME}: wrong passphrase or damaged key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"{self.name}: {KEY_NAME} is not an Ed25519 key")
        identity = Identity(key)
        self._check_artist(identity, f"{self.name}: {KEY_NAME}")
        self.identity = identity
        self.key_from_archive = True

    def _read_actor_key(self, pem: bytes) -> None:
        if self.index.get("actor_key") is not True:
            raise VerificationError(f"{self.name}: holds an actor key its index does not list")
        what = f"{self.name}: {ACTOR_KEY_NAME}"
        try:
            key = serialization.load_pem_private_key(pem, self._passphrase().encode())
        except (ValueError, TypeError) as e:
            raise IdentityError(f"{what}: wrong passphrase or damaged key") from e
        self.actor_key = as_actor_key(key, what)

    def _passphrase(self) -> str:
        if self.passphrase is None:
            self.passphrase = self.archive_passphrase()
        return self.passphrase

    def _check_artist(self, identity: Identity, what: str) -> None:
        artist = self.index["artist"]
        if artist and identity.did != artist:
            raise IdentityError(f"{what}: is the key of {identity.did}, not of {artist}")

    def _read_car(self, name: str, source: IO[bytes], store: Store) -> None:
        cid = canonical_cid(name[len(CONTENT_PREFIX) : -len(CAR_SUFFIX)], self.name)
        if cid not in self.expected:
            raise VerificationError(f"{self.name}: {name} is not listed in {INDEX_NAME}")
        if cid in self.restored:
            raise VerificationError(f"{self.name}: {name} appears twice")
        stored = restore_car(f"{self.name}: {name}", source, CID.parse(cid), store)
        if stored != self.expected[cid]:
            raise VerificationError(
                f"{self.name}: {name} holds {stored} bytes, the index says {self.expected[cid]}"
            )
        self.restored.add(cid)

    # --- after the stream: check the whole, then move it into place --------------------------

    async def finish(self) -> None:
        identity = self.identity
        assert identity is not None  # set by _read_index or _read_key, else they refused
        try:
            dids = artist_dids(DataDir(self.staging), identity.did)
        except VerificationError as e:
            raise VerificationError(f"{self.name}: {ROTATION_NAME}: {e}") from e
        store = Store(self.staging / "store")
        try:
            async with open_catalog(self.staging / CATALOG_NAME) as catalog:
                await _check_restored(catalog, store, dids, self.name)
                await catalog.forget_pin_state()
        except CatalogError as e:
            raise VerificationError(f"{self.name}: {CATALOG_NAME}: {e}") from e
        finally:
            store.close()
        if self.key_from_archive:
            _write_key(self.staging / KEY_NAME, identity)
        if self.actor_key is not None:
            passphrase = os.environ.get(PASSPHRASE_ENV) or None
            write_private(self.staging / ACTOR_KEY_NAME, self.actor_key.pem(passphrase))
        DataDir(self.staging).write_admin_token()

    def move_into_place(self) -> None:
        names = [CONFIG_NAME, CATALOG_NAME, "store", "admin-token"]
        if self.key_from_archive:
            names.append(KEY_NAME)
        if self.actor_key is not None:
            names.append(ACTOR_KEY_NAME)
        if (self.staging / ROTATION_NAME).exists():
            names.append(ROTATION_NAME)
        for entry in names:
            os.replace(self.staging / entry, self.root / entry)


def _write_key(path: Path, identity: Identity) -> None:
    """The key as `stave init` writes it: PKCS#8 PEM, encrypted with STAVE_KEY_PASSPHRASE when
    that is set, mode 0600."""
    write_private(path, identity.pem(os.environ.get(PASSPHRASE_ENV) or None))


async def _check_restored(catalog: Catalog, store: Store, dids: list[str], name: str) -> None:
    """Refuse unless the catalog's content is all in the store and its feed chain is intact:
    each feed's bytes name the one before by CID, with sequences counting up, each by one of
    the artist's `dids` (oldest first, never going back to an earlier one), the latest by the
    current key (`dids[-1]`) with a valid proof (which, by the CIDs, binds every earlier one)."""
    did = dids[-1]
    earliest = 0
    for cid in sorted(await catalog.referenced_cids()):
        if not store.has(cid):
            raise VerificationError(f"{name}: the catalog needs {cid}, the archive lacks it")
    feeds = await catalog.feeds()
    previous: FeedRecord | None = None
    document: dict[str, Any] = {}
    for record in feeds:
        what = f"{name}: feed {record.sequence} ({record.cid})"
        with store.open(record.cid) as f:
            parsed = parse_json(f.read(), what)
        if not isinstance(parsed, dict) or parsed.get("type") != FEED_TYPE:
            raise VerificationError(f"{what}: is not a feed document")
        document = parsed
        artist = document.get("artist")
        if artist not in dids[earliest:]:
            raise VerificationError(f"{what}: is by {artist!r}, not {did}")
        earliest = dids.index(artist, earliest)
        if document.get("sequence") != record.sequence:
            raise VerificationError(f"{what}: says sequence {document.get('sequence')!r}")
        want_previous = previous.cid if previous else None
        if record.previous != want_previous or document.get("previous") != want_previous:
            raise VerificationError(f"{what}: does not follow feed {want_previous}")
        if previous is not None and record.sequence <= previous.sequence:
            raise VerificationError(f"{what}: sequence does not count up")
        previous = record
    if document:
        try:
            if document.get("artist") != did:
                raise VerificationError(f"signed by {document.get('artist')!r}, not {did}")
            verify_document(document, did)
        except VerificationError as e:
            raise VerificationError(f"{name}: the latest feed: {e}") from e

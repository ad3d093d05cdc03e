"""Backing up a node to one archive and restoring it on a fresh machine.

The archive is a POSIX tar (pax), written and read as a stream, never held in memory. Its
members, in this order:

- `stave-backup.json`: what the archive holds: format version, the artist's did, the latest
  feed (sequence and CID), whether the key is inside, and every content file (CID, size);
- `config.toml`: the node's settings, as they were;
- `catalog.sqlite`: a consistent snapshot of the catalog (SQLite's online backup API), with
  the tracks, every manifest revision, the whole feed chain and the follows;
- `rotation.json`: only when the artist's key was ever rotated, the rotation statements
  (node/keys.py) that link the dids earlier feeds were signed by to the current key;
- `key.pem`: only when asked for, the artist's key as PKCS#8 PEM encrypted with a passphrase;
- `content/<cid>.car`: one CARv1 per stored file (audio, covers, every feed snapshot,
  mirrored content), its root alone in the header, blocks in depth-first order with repeated
  blocks repeated (the trustless gateway's `dups=y`), so the leaves come in the file's order.

Restoring checks every block against its CID as it streams, rebuilds each file from its blocks
through the store (which checks the whole file against the CAR's root), checks the feed chain,
and moves the result into the data directory only once all of it passed: a refused archive
leaves the target as it was. The admin token is not archived; a restore makes a new one.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node import __version__
from node.catalog import Catalog, FeedRecord, open_catalog
from node.cid import CHUNK_SIZE, CID, DAG_PB, RAW, decode_dag_pb, read_varint, varint
from node.datadir import PASSPHRASE_ENV, DataDir
from node.errors import (
    CatalogError,
    ContentNotFound,
    IdentityError,
    InvalidCID,
    StoreError,
    UsageError,
    VerificationError,
)
from node.feed import FEED_TYPE, format_timestamp, parse_json
from node.identity import Identity
from node.keys import artist_dids
from node.rotation import MAX_ROTATION_BYTES
from node.settings import parse_config
from node.signing import verify_document
from node.store import Store, car_header

ARCHIVE_TYPE = "StaveBackup"
ARCHIVE_VERSION = 1
INDEX_NAME = "stave-backup.json"
CONFIG_NAME = "config.toml"
CATALOG_NAME = "catalog.sqlite"
KEY_NAME = "key.pem"
ROTATION_NAME = "rotation.json"
CONTENT_PREFIX = "content/"
CAR_SUFFIX = ".car"

# Sizes no honest member comes near; past them an archive is refused before it is read.
MAX_INDEX_BYTES = 64 * 1024**2
MAX_CONFIG_BYTES = 1024**2
MAX_KEY_BYTES = 64 * 1024
MAX_CAR_HEADER = 1024
# A raw leaf is at most one chunk; a dag-pb node of 1024 links is about 50 KB.
MAX_SECTION = CHUNK_SIZE + 256 * 1024
MIN_PASSPHRASE = 8
COPY_BUFFER = CHUNK_SIZE
# Entries a fresh data directory may already have: a filesystem's own, and the artist's key.
IGNORED_ENTRIES = frozenset({"lost+found"})


@dataclass(frozen=True)
class ContentEntry:
    """One stored file in an archive: its CID, its size, and the length of its CAR."""

    cid: str
    size: int
    car_bytes: int


@dataclass(frozen=True)
class BackupSummary:
    """What an export wrote or an import restored."""

    artist: str
    feed_sequence: int | None
    files: int
    content_bytes: int
    with_key: bool


# --- export ----------------------------------------------------------------------------------


async def export_node(
    data_root: Path, target: Path | BinaryIO, *, key_passphrase: str | None = None
) -> BackupSummary:
    """Write a backup archive of the node in `data_root` to `target` (a path, or a binary stream
    such as stdout).

    The key goes in only when `key_passphrase` is given, encrypted with it. A path is written
    beside itself and renamed into place when complete, with mode 0600; on any error nothing is
    left at it. The node may keep serving and publishing meanwhile.
    """
    data = DataDir(data_root)
    data.load_config()  # refuses a directory that is not a node's
    data.refuse_unfinished_rotation()  # its catalog and key.pem may not agree yet
    key_pem = _encrypted_key(data, key_passphrase) if key_passphrase is not None else None
    if isinstance(target, Path):
        return await _export_to_path(data, target, key_pem)
    return await _export(data, target, key_pem)


def _encrypted_key(data: DataDir, passphrase: str) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(
            f"export passphrase: use at least {MIN_PASSPHRASE} characters to protect the key"
        )
    identity = data.load_identity()
    return identity.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


async def _export_to_path(data: DataDir, path: Path, key_pem: bytes | None) -> BackupSummary:
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give the archive's file name")
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise StoreError(f"{path}: cannot write the archive ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as out:
            summary = await _export(data, out, key_pem)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except OSError as e:
        raise StoreError(f"{path}: cannot write the archive ({e.strerror or e})") from e
    finally:
        partial.unlink(missing_ok=True)
    return summary


async def _export(data: DataDir, out: BinaryIO, key_pem: bytes | None) -> BackupSummary:
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
            "content": [{"cid": e.cid, "size": e.size} for e in entries],
        }
        await asyncio.to_thread(_write_archive, out, index, data, snapshot, key_pem, store, entries)
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
    return [ContentEntry(cid, store.size(cid), _car_length(store, CID.parse(cid))) for cid in roots]


def _car_length(store: Store, root: CID) -> int:
    """The length of `store.car(root, dups=True)`, found from the dag-pb nodes alone: a raw
    leaf's length is its link's Tsize, a raw root's the file's size."""
    total = len(car_header(root))
    stack: list[tuple[CID, int | None]] = [(root, None)]
    while stack:
        cid, known = stack.pop()
        if cid.codec == DAG_PB:
            block = store.block(str(cid))
            length = len(block)
            stack.extend((link.cid, link.tsize) for link in decode_dag_pb(block).links)
        elif known is None:
            length = store.size(str(cid))
        else:
            length = known
        cid_length = len(cid.to_bytes())
        total += len(varint(cid_length + length)) + cid_length + length
    return total


def _write_archive(
    out: BinaryIO,
    index: dict[str, Any],
    data: DataDir,
    snapshot: Path,
    key_pem: bytes | None,
    store: Store,
    entries: list[ContentEntry],
) -> None:
    now = time.time()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def member(name: str, size: int) -> tarfile.TarInfo:
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o600
            info.mtime = int(now)
            return info

        body = json.dumps(index, indent=1, ensure_ascii=False).encode("utf-8")
        tar.addfile(member(INDEX_NAME, len(body)), io.BytesIO(body))
        config = data.config_path.read_bytes()
        tar.addfile(member(CONFIG_NAME, len(config)), io.BytesIO(config))
        with snapshot.open("rb") as catalog:
            tar.addfile(member(CATALOG_NAME, snapshot.stat().st_size), catalog)
        if data.rotation_path.exists():
            rotations = data.rotation_path.read_bytes()
            tar.addfile(member(ROTATION_NAME, len(rotations)), io.BytesIO(rotations))
        if key_pem is not None:
            tar.addfile(member(KEY_NAME, len(key_pem)), io.BytesIO(key_pem))
        for entry in entries:
            try:
                pieces = _Pieces(store.car(entry.cid, dups=True))
                tar.addfile(
                    member(CONTENT_PREFIX + entry.cid + CAR_SUFFIX, entry.car_bytes), pieces
                )
            except ContentNotFound as e:
                raise StoreError(
                    f"{entry.cid}: removed from the store while it was being exported ({e});"
                    " run the export again"
                ) from e
            if pieces.read(1) or pieces.count != entry.car_bytes:
                raise StoreError(f"{entry.cid}: its CAR is not the length its DAG promised")


class _Pieces(io.RawIOBase):
    """A readable stream over an iterator of byte strings (a CAR being generated)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._current = memoryview(b"")
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` whole unless the pieces run out: tarfile takes a short read for the
        end of the data."""
        filled = 0
        while filled < len(buffer):
            if not self._current:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._current = memoryview(piece)
                continue
            n = min(len(buffer) - filled, len(self._current))
            buffer[filled : filled + n] = self._current[:n]
            self._current = self._current[n:]
            filled += n
        self.count += filled
        return filled


# --- import ----------------------------------------------------------------------------------


async def import_node(
    source: Path | BinaryIO,
    data_root: Path,
    *,
    archive_passphrase: Callable[[], str],
) -> BackupSummary:
    """Restore a backup archive into `data_root`, a new data directory.

    `data_root` must not exist, be empty, or hold only the artist's `key.pem` (for an archive
    made without the key); any other content is refused. `archive_passphrase` is asked only
    when the archive holds the key. Every block is checked against its CID, every file against
    its root, and the feed chain against the artist's key; anything wrong refuses the whole
    archive with the reason and leaves `data_root` exactly as it was.
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
    others = sorted(entries - {KEY_NAME})
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
        self.index: dict[str, Any] = {}
        self.identity: Identity | None = None
        self.key_from_archive = False
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
                        self._read_index(_read_small(source, member, MAX_INDEX_BYTES))
                    elif member.name == CONFIG_NAME:
                        self._read_config(_read_small(source, member, MAX_CONFIG_BYTES))
                    else:
                        _copy_to(source, self.staging / CATALOG_NAME)
                elif (
                    member.name == ROTATION_NAME
                    and store is None
                    and not self.key_from_archive
                    and not (self.staging / ROTATION_NAME).exists()
                ):
                    body = _read_small(source, member, MAX_ROTATION_BYTES)
                    _write_private(self.staging / ROTATION_NAME, body)
                elif member.name == KEY_NAME and store is None and not self.key_from_archive:
                    self._read_key(_read_small(source, member, MAX_KEY_BYTES))
                elif member.name.startswith(CONTENT_PREFIX) and member.name.endswith(CAR_SUFFIX):
                    if self.index.get("key") and not self.key_from_archive:
                        raise VerificationError(
                            f"{self.name}: the index lists a key, none is there"
                        )
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
            self.expected[_canonical(cid, self.name)] = size
        self.index = index
        if index.get("key") is True and self.existing_key:
            raise UsageError(
                f"{self.root}: already holds a key.pem and the archive brings the artist's key;"
                " restore into an empty directory"
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
        _write_private(self.staging / CONFIG_NAME, body)

    def _read_key(self, pem: bytes) -> None:
        if self.index.get("key") is not True:
            raise VerificationError(f"{self.name}: holds a key its index does not list")
        passphrase = self.archive_passphrase()
        try:
            key = serialization.load_pem_private_key(pem, passphrase.encode())
        except (ValueError, TypeError) as e:
            raise IdentityError(f"{self.name}: {KEY_NAME}: wrong passphrase or damaged key") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"{self.name}: {KEY_NAME} is not an Ed25519 key")
        identity = Identity(key)
        self._check_artist(identity, f"{self.name}: {KEY_NAME}")
        self.identity = identity
        self.key_from_archive = True

    def _check_artist(self, identity: Identity, what: str) -> None:
        artist = self.index["artist"]
        if artist and identity.did != artist:
            raise IdentityError(f"{what}: is the key of {identity.did}, not of {artist}")

    def _read_car(self, name: str, source: IO[bytes], store: Store) -> None:
        cid = _canonical(name[len(CONTENT_PREFIX) : -len(CAR_SUFFIX)], self.name)
        if cid not in self.expected:
            raise VerificationError(f"{self.name}: {name} is not listed in {INDEX_NAME}")
        if cid in self.restored:
            raise VerificationError(f"{self.name}: {name} appears twice")
        stored = _restore_car(f"{self.name}: {name}", source, CID.parse(cid), store)
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
        DataDir(self.staging).write_admin_token()

    def move_into_place(self) -> None:
        names = [CONFIG_NAME, CATALOG_NAME, "store", "admin-token"]
        if self.key_from_archive:
            names.append(KEY_NAME)
        if (self.staging / ROTATION_NAME).exists():
            names.append(ROTATION_NAME)
        for entry in names:
            os.replace(self.staging / entry, self.root / entry)


def _canonical(text: str, name: str) -> str:
    try:
        cid = CID.parse(text).to_v1()
    except InvalidCID as e:
        raise VerificationError(f"{name}: {e}") from e
    if str(cid) != text:
        raise VerificationError(f"{name}: {text} is not a CID in its canonical form")
    return text


def _read_small(source: IO[bytes], member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise VerificationError(f"{member.name}: {member.size} bytes, more than {limit}")
    return source.read()


def _copy_to(source: IO[bytes], path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, COPY_BUFFER)
        out.flush()
        os.fsync(out.fileno())


def _write_private(path: Path, body: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())


def _write_key(path: Path, identity: Identity) -> None:
    """The key as `stave init` writes it: PKCS#8 PEM, encrypted with STAVE_KEY_PASSPHRASE when
    that is set, mode 0600."""
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    pem = identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_private(path, pem)


def _read_exact(source: IO[bytes], n: int, what: str) -> bytes:
    data = source.read(n)
    if len(data) != n:
        raise VerificationError(f"{what}: ends in the middle of a block")
    return data


def _read_section_length(source: IO[bytes], what: str) -> int | None:
    """The varint before a CAR section, or None at the end of the CAR."""
    raw = bytearray()
    while True:
        byte = source.read(1)
        if not byte:
            if raw:
                raise VerificationError(f"{what}: ends in the middle of a block")
            return None
        raw += byte
        if not byte[0] & 0x80:
            break
        if len(raw) >= 9:
            raise VerificationError(f"{what}: a block length is not a valid varint")
    try:
        return read_varint(bytes(raw), 0)[0]
    except ValueError as e:
        raise VerificationError(f"{what}: a block length is not a valid varint ({e})") from e


def _split_section(section: bytes, what: str) -> tuple[CID, bytes]:
    """A CAR section's CID and block."""
    try:
        if section[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash
            end = 34
        else:
            pos = 0
            for _ in range(3):  # version, codec, hash code
                _, pos = read_varint(section, pos)
            length, pos = read_varint(section, pos)
            end = pos + length
        if end > len(section):
            raise ValueError("the CID runs past the block")
        return CID.from_bytes(section[:end]).to_v1(), section[end:]
    except (ValueError, InvalidCID) as e:
        raise VerificationError(f"{what}: a block's CID cannot be read ({e})") from e


def _restore_car(what: str, source: IO[bytes], root: CID, store: Store) -> int:
    """Read one CAR of `root` and store the file its blocks make; returns the file's size.

    Every block must hash to its CID and come where a depth-first walk of the DAG from `root`
    puts it; the reassembled file must have `root` as its CID.
    """
    header = car_header(root)
    length = _read_section_length(source, what)
    if length is None or length > MAX_CAR_HEADER:
        raise VerificationError(f"{what}: not a CARv1")
    if varint(length) + _read_exact(source, length, what) != header:
        raise VerificationError(f"{what}: its CAR header does not name {root} as its only root")
    stack = [root]
    size = 0
    with store.writer(expected=str(root)) as writer:
        while (length := _read_section_length(source, what)) is not None:
            if length > MAX_SECTION:
                raise VerificationError(f"{what}: a block of {length} bytes is too large")
            cid, block = _split_section(_read_exact(source, length, what), what)
            if not stack:
                raise VerificationError(f"{what}: block {cid} is not part of {root}")
            expected = stack.pop()
            if cid != expected:
                raise VerificationError(f"{what}: block {cid} where {expected} belongs")
            if not cid.matches(block):
                raise VerificationError(f"{what}: block {cid} does not match its CID")
            if cid.codec == DAG_PB:
                links = decode_dag_pb(block).links
                stack.extend(link.cid.to_v1() for link in reversed(links))
            elif cid.codec == RAW:
                writer.write(block)
                size += len(block)
        if stack:
            raise VerificationError(f"{what}: ends before block {stack[-1]} of {root}")
        try:
            writer.commit()
        except VerificationError as e:
            raise VerificationError(f"{what}: its blocks do not make {root} ({e})") from e
    return size


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


def describe(summary: BackupSummary) -> str:
    """One line saying what was exported or restored."""
    feed = "no feed" if summary.feed_sequence is None else f"feed {summary.feed_sequence}"
    key = ", with the artist's key" if summary.with_key else ", without the key"
    return (
        f"{summary.files} file(s), {summary.content_bytes} bytes of content, {feed}{key};"
        f" {summary.artist}"
    )

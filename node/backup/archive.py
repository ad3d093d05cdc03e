"""The backup archive: its layout, its names and limits, and reading and writing its members.

The archive is a POSIX tar (pax), written and read as a stream, never held in memory. Its
members, in this order:

- `stave-backup.json`: what the archive holds: format version, the artist's did, the latest
  feed (sequence and CID), whether the keys are inside, and every content file (CID, size);
- `config.toml`: the node's settings, as they were;
- `catalog.sqlite`: a consistent snapshot of the catalog (SQLite's online backup API), with
  the tracks, every manifest revision, the whole feed chain and the follows;
- `rotation.json`: only when the artist's key was ever rotated, the rotation statements
  (node/keys.py) that link the dids earlier feeds were signed by to the current key;
- `key.pem`: only when asked for, the artist's key as PKCS#8 PEM encrypted with a passphrase;
- `actor-key.pem`: with the artist's key, the actor's RSA key for HTTP signatures
  (node/actorkey.py), encrypted with the same passphrase; the index says so with
  `"actor_key": true`. Archives made before the actor key existed lack it: a node restored
  from one makes a new actor key when first opened;
- `content/<cid>.car`: one CARv1 per stored file (audio, covers, every feed snapshot,
  mirrored content), its root alone in the header, blocks in depth-first order with repeated
  blocks repeated (the trustless gateway's `dups=y`), so the leaves come in the file's order.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from node.cid import CHUNK_SIZE, CID, DAG_PB, RAW, decode_dag_pb, read_varint, varint
from node.datadir import DataDir
from node.errors import ContentNotFound, InvalidCID, StoreError, VerificationError
from node.store import Store, car_header

ARCHIVE_TYPE = "StaveBackup"
ARCHIVE_VERSION = 1
INDEX_NAME = "stave-backup.json"
CONFIG_NAME = "config.toml"
CATALOG_NAME = "catalog.sqlite"
KEY_NAME = "key.pem"
ACTOR_KEY_NAME = "actor-key.pem"
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
COPY_BUFFER = CHUNK_SIZE


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


def describe(summary: BackupSummary) -> str:
    """One line saying what was exported or restored."""
    feed = "no feed" if summary.feed_sequence is None else f"feed {summary.feed_sequence}"
    key = ", with the artist's key" if summary.with_key else ", without the key"
    return (
        f"{summary.files} file(s), {summary.content_bytes} bytes of content, {feed}{key};"
        f" {summary.artist}"
    )


# --- writing --------------------------------------------------------------------------------


def car_length(store: Store, root: CID) -> int:
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


def write_archive(
    out: BinaryIO,
    index: dict[str, Any],
    data: DataDir,
    snapshot: Path,
    key_pem: bytes | None,
    actor_key_pem: bytes | None,
    store: Store,
    entries: list[ContentEntry],
) -> None:
    """Write the whole archive to `out` as a tar stream, its members in the archive's order."""
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
        if actor_key_pem is not None:
            tar.addfile(member(ACTOR_KEY_NAME, len(actor_key_pem)), io.BytesIO(actor_key_pem))
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


# --- reading --------------------------------------------------------------------------------


def canonical_cid(text: str, name: str) -> str:
    """`text` if it is a CIDv1 in its canonical form; VerificationError, naming `name`, if not."""
    try:
        cid = CID.parse(text).to_v1()
    except InvalidCID as e:
        raise VerificationError(f"{name}: {e}") from e
    if str(cid) != text:
        raise VerificationError(f"{name}: {text} is not a CID in its canonical form")
    return text


def read_small(source: IO[bytes], member: tarfile.TarInfo, limit: int) -> bytes:
    """The whole body of a member that may be at most `limit` bytes long."""
    if member.size > limit:
        raise VerificationError(f"{member.name}: {member.size} bytes, more than {limit}")
    return source.read()


def copy_to(source: IO[bytes], path: Path) -> None:
    """Write everything `source` holds to a new file at `path`, mode 0600, synced to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, COPY_BUFFER)
        out.flush()
        os.fsync(out.fileno())


def write_private(path: Path, body: bytes) -> None:
    """Write `body` to a new file at `path`, mode 0600, synced to disk."""
    copy_to(io.BytesIO(body), path)


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


def restore_car(what: str, source: IO[bytes], root: CID, store: Store) -> int:
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

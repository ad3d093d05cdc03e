"""Content identifiers: CIDs, dag-pb nodes, and the UnixFS importer of PROTOCOL.md §3.

Every piece of content has the CID Kubo's `unixfs-v1-2025` import profile gives its bytes:
CIDv1, sha2-256, raw leaves, fixed 1 MiB chunks, balanced layout, at most 1024 links per node.
The importer is streaming: it hashes bytes as they arrive and keeps only digests, so memory stays
small whatever the file size. It also knows Kubo's historical `unixfs-v0-2015` profile (CIDv0,
256 KiB chunks wrapped in UnixFS leaves, 174 links per node), for checking CIDs made by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from node.errors import InvalidCID, StoreError, VerificationError

# Multicodec and multihash codes (https://github.com/multiformats/multicodec/blob/master/table.csv).
RAW: Final = 0x55
DAG_PB: Final = 0x70
SHA2_256: Final = 0x12
IDENTITY: Final = 0x00

CODECS: Final = {RAW: "raw", DAG_PB: "dag-pb"}
HASHES: Final = {SHA2_256: "sha2-256", IDENTITY: "identity"}

# unixfs-v1-2025 (IPIP-0499): fixed-size chunks and the widest node of a balanced DAG.
CHUNK_SIZE: Final = 1_048_576
MAX_LINKS: Final = 1024

# Kubo refuses identity CIDs with longer digests (boxo/verifcid); so do we.
MAX_IDENTITY_DIGEST: Final = 128
# Longer than any CID accepted above, short enough that decoding stays cheap when fuzzed.
MAX_CID_TEXT: Final = 512

_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_INDEX: Final = {c: i for i, c in enumerate(_BASE32)}
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX: Final = {c: i for i, c in enumerate(_BASE58)}


class _Malformed(Exception):
    """Internal: the reason some bytes are not what they claim to be."""


# --- varints and multibase -------------------------------------------------------------------


def varint(n: int) -> bytes:
    """The unsigned LEB128 varint of `n` (multiformats unsigned-varint, protobuf varint)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes | memoryview, pos: int, max_bytes: int = 9) -> tuple[int, int]:
    """Decode a minimal varint at `pos`; return (value, position after it).

    Raises ValueError if it is truncated, longer than `max_bytes`, or not minimally encoded.
    """
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        if pos - start >= max_bytes:
            raise ValueError("varint too long")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    if byte == 0 and pos - start > 1:
        raise ValueError("varint not minimally encoded")
    return value, pos


def base32_encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase `b` without its prefix)."""
    if not data:
        return ""
    nbits = len(data) * 8
    pad = -nbits % 5
    number = int.from_bytes(data, "big") << pad
    count = (nbits + pad) // 5
    return "".join(_BASE32[(number >> (5 * (count - 1 - i))) & 31] for i in range(count))


def base32_decode(text: str) -> bytes:
    """Inverse of `base32_encode`; raises ValueError on anything it would not have produced."""
    number = 0
    for char in text:
        index = _BASE32_INDEX.get(char)
        if index is None:
            raise ValueError(f"invalid base32 character {char!r}")
        number = (number << 5) | index
    nbits = len(text) * 5
    extra = nbits % 8
    if extra >= 5:
        raise ValueError("invalid base32 length")
    if number & ((1 << extra) - 1):
        raise ValueError("non-zero base32 padding bits")
    return (number >> extra).to_bytes(nbits // 8, "big")


def base58_encode(data: bytes) -> str:
    """Bitcoin base58 (multibase `z` without its prefix, CIDv0, did:key)."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, digit = divmod(number, 58)
        chars.append(_BASE58[digit])
    return "1" * zeros + "".join(reversed(chars))


def base58_decode(text: str) -> bytes:
    """Inverse of `base58_encode`; raises ValueError on a character outside the alphabet."""
    zeros = len(text) - len(text.lstrip("1"))
    number = 0
    for char in text:
        index = _BASE58_INDEX.get(char)
        if index is None:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + index
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


# --- CIDs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CID:
    """A CIDv0 or CIDv1 with a raw or dag-pb codec and a sha2-256 or identity multihash."""

    version: int
    codec: int
    hash_code: int
    digest: bytes

    def __post_init__(self) -> None:
        try:
            _check(self.version, self.codec, self.hash_code, self.digest)
        except _Malformed as e:
            raise InvalidCID(f"CID(version={self.version}, codec={self.codec:#x}): {e}") from None

    @classmethod
    def parse(cls, text: object) -> CID:
        """The CID a string spells (CIDv0 `Qm…`, CIDv1 base32 `b…` or base58btc `z…`).

        Raises InvalidCID, and nothing else, for any other input.
        """
        if not isinstance(text, str):
            raise InvalidCID(f"{type(text).__name__} value: a CID is a string")
        shown = repr(text[:80]) + ("..." if len(text) > 80 else "")
        try:
            return cls._parse(text)
        except (_Malformed, ValueError) as e:
            raise InvalidCID(f"{shown}: {e}") from None

    @classmethod
    def _parse(cls, text: str) -> CID:
        if not text:
            raise _Malformed("empty")
        if len(text) > MAX_CID_TEXT:
            raise _Malformed(f"longer than {MAX_CID_TEXT} characters")
        if text.startswith("Qm"):
            if len(text) != 46:
                raise _Malformed("a CIDv0 is 46 base58btc characters")
            return cls._from_v0_bytes(base58_decode(text))
        prefix, rest = text[0], text[1:]
        if prefix == "b":
            return cls._from_v1_bytes(base32_decode(rest))
        if prefix == "z":
            return cls._from_v1_bytes(base58_decode(rest))
        raise _Malformed(f"unsupported multibase prefix {prefix!r} (expected Qm, b or z)")

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """The CID in its binary form (a bare sha2-256 multihash for CIDv0); InvalidCID if not."""
        try:
            if len(data) == 34 and data[0] == SHA2_256 and data[1] == 32:
                return cls._from_v0_bytes(bytes(data))
            return cls._from_v1_bytes(bytes(data))
        except (_Malformed, ValueError) as e:
            raise InvalidCID(f"binary CID {bytes(data[:40]).hex()}: {e}") from None

    @classmethod
    def _from_v0_bytes(cls, data: bytes) -> CID:
        if len(data) != 34 or data[0] != SHA2_256 or data[1] != 32:
            raise _Malformed("a CIDv0 is a 34-byte sha2-256 multihash")
        return cls(0, DAG_PB, SHA2_256, data[2:])

    @classmethod
    def _from_v1_bytes(cls, data: bytes) -> CID:
        version, pos = read_varint(data, 0)
        if version != 1:
            raise _Malformed(f"unsupported CID version {version}")
        codec, pos = read_varint(data, pos)
        hash_code, pos = read_varint(data, pos)
        length, pos = read_varint(data, pos)
        digest = data[pos:]
        if len(digest) != length:
            raise _Malformed(f"multihash says {length} digest bytes, {len(digest)} follow")
        _check(version, codec, hash_code, digest)
        return cls(version, codec, hash_code, digest)

    @classmethod
    def of_block(cls, block: bytes | memoryview, codec: int = RAW) -> CID:
        """The CIDv1 (sha2-256) of a block's bytes."""
        return cls(1, codec, SHA2_256, hashlib.sha256(block).digest())

    @classmethod
    def identity(cls, block: bytes, codec: int = RAW) -> CID:
        """The CIDv1 that carries a (short) block inline, e.g. `bafkqaaa` for the empty block."""
        return cls(1, codec, IDENTITY, bytes(block))

    @property
    def multihash(self) -> bytes:
        """The multihash: hash code, digest length, digest."""
        return varint(self.hash_code) + varint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        """The binary form, as found in dag-pb links and CAR files."""
        if self.version == 0:
            return self.multihash
        return varint(1) + varint(self.codec) + self.multihash

    def encode(self) -> str:
        """The canonical string: base58btc for CIDv0, base32 lower case (`b…`) for CIDv1."""
        if self.version == 0:
            return base58_encode(self.multihash)
        return "b" + base32_encode(self.to_bytes())

    def __str__(self) -> str:
        return self.encode()

    def to_v1(self) -> CID:
        """The same content as a CIDv1 (CIDv0 is dag-pb, sha2-256)."""
        if self.version == 1:
            return self
        return CID(1, self.codec, self.hash_code, self.digest)

    def matches(self, block: bytes | memoryview) -> bool:
        """Whether `block` is exactly the block this CID names."""
        if self.hash_code == IDENTITY:
            return bytes(block) == self.digest
        return hashlib.sha256(block).digest() == self.digest

    def check(self, block: bytes | memoryview) -> None:
        """Raise VerificationError unless `block` is exactly the block this CID names."""
        if not self.matches(block):
            raise VerificationError(f"block does not match {self}: hash differs")


def _check(version: int, codec: int, hash_code: int, digest: bytes) -> None:
    if version not in (0, 1):
        raise _Malformed(f"unsupported CID version {version}")
    if codec not in CODECS:
        raise _Malformed(f"unsupported codec {codec:#x} (expected raw or dag-pb)")
    if hash_code == SHA2_256:
        if len(digest) != 32:
            raise _Malformed(f"a sha2-256 digest is 32 bytes, got {len(digest)}")
    elif hash_code == IDENTITY:
        if len(digest) > MAX_IDENTITY_DIGEST:
            raise _Malformed(f"identity digest longer than {MAX_IDENTITY_DIGEST} bytes")
    else:
        raise _Malformed(f"unsupported multihash {hash_code:#x} (expected sha2-256 or identity)")
    if version == 0 and (codec != DAG_PB or hash_code != SHA2_256):
        raise _Malformed("a CIDv0 is always dag-pb and sha2-256")


# --- dag-pb ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PBLink:
    """One link of a dag-pb node: the child's CID, a name, and the child's cumulative size."""

    cid: CID
    name: str
    tsize: int


@dataclass(frozen=True, slots=True)
class PBNode:
    """A decoded dag-pb node (https://ipld.io/specs/codecs/dag-pb/spec/)."""

    links: list[PBLink]
    data: bytes | None


def encode_dag_pb(links: Iterable[PBLink], data: bytes | None) -> bytes:
    """The canonical dag-pb encoding: links (Hash, Name, Tsize) first, then Data."""
    out = bytearray()
    for link in links:
        cid_bytes = link.cid.to_bytes()
        name = link.name.encode()
        body = (
            b"\x0a"
            + varint(len(cid_bytes))
            + cid_bytes
            + b"\x12"
            + varint(len(name))
            + name
            + b"\x18"
            + varint(link.tsize)
        )
        out += b"\x12" + varint(len(body)) + body
    if data is not None:
        out += b"\x0a" + varint(len(data)) + data
    return bytes(out)


def decode_dag_pb(block: bytes) -> PBNode:
    """The links and data of a dag-pb block; VerificationError if it is not one."""
    try:
        links: list[PBLink] = []
        data: bytes | None = None
        for number, value in _protobuf_fields(block):
            if number == 2 and isinstance(value, bytes) and data is None:
                links.append(_decode_link(value))
            elif number == 1 and isinstance(value, bytes) and data is None:
                data = value
            else:
                raise _Malformed(f"unexpected field {number}")
        return PBNode(links, data)
    except (_Malformed, ValueError, InvalidCID) as e:
        raise VerificationError(f"dag-pb block: {e}") from None


def _decode_link(body: bytes) -> PBLink:
    cid: CID | None = None
    name = ""
    tsize = 0
    last = 0
    for number, value in _protobuf_fields(body):
        if number <= last:
            raise _Malformed("link fields out of order")
        last = number
        if number == 1 and isinstance(value, bytes):
            cid = CID.from_bytes(value)
        elif number == 2 and isinstance(value, bytes):
            name = value.decode()
        elif number == 3 and isinstance(value, int):
            tsize = value
        else:
            raise _Malformed(f"unexpected link field {number}")
    if cid is None:
        raise _Malformed("link without a Hash")
    return PBLink(cid, name, tsize)


def _protobuf_fields(data: bytes) -> Iterable[tuple[int, bytes | int]]:
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos, max_bytes=10)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos, max_bytes=10)
            yield number, value
        elif wire == 2:
            length, pos = read_varint(data, pos, max_bytes=10)
            if pos + length > len(data):
                raise _Malformed("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        else:
            raise _Malformed(f"unsupported wire type {wire}")


def unixfs_file_data(filesize: int, blocksizes: Iterable[int]) -> bytes:
    """UnixFS `Data` of a file node as go-unixfs writes it: Type=File, filesize, blocksizes."""
    out = bytearray(b"\x08\x02\x18" + varint(filesize))
    for size in blocksizes:
        out += b"\x20" + varint(size)
    return bytes(out)


# --- the UnixFS importer ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportProfile:
    """The import parameters that decide a file's CID (always sha2-256 and a balanced layout).

    `raw_leaves` False wraps each chunk in a dag-pb node holding a UnixFS File message, as Kubo
    does without `--raw-leaves`; a CIDv0 profile has no raw leaves (CIDv0 is dag-pb only).
    """

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError(f"import profile {self.name}: CID version {self.cid_version}")
        if self.cid_version == 0 and self.raw_leaves:
            raise ValueError(f"import profile {self.name}: CIDv0 cannot name raw leaves")
        if self.chunk_size < 1 or self.max_links < 2:
            raise ValueError(f"import profile {self.name}: chunk size or link count too small")

    def leaf_block(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """The block of the leaf that holds `chunk`, one chunk's worth of file bytes or fewer."""
        if self.raw_leaves:
            return bytes(chunk)
        head, tail = _wrapped_leaf_framing(len(chunk))
        return head + bytes(chunk) + tail


def _v1_2025() -> ImportProfile:
    # Built from CHUNK_SIZE and MAX_LINKS when an importer starts, so that these two names stay
    # the one source of the default (tests shrink them to grow deep DAGs from a few bytes).
    return ImportProfile("unixfs-v1-2025", 1, True, CHUNK_SIZE, MAX_LINKS)


V1_2025: Final = _v1_2025()
"""PROTOCOL.md §3: CIDv1, raw leaves, 1 MiB chunks, 1024 links per node. The default."""

V0_2015: Final = ImportProfile("unixfs-v0-2015", 0, False, 262_144, 174)
"""Kubo's historical default: CIDv0 (`Qm…`), UnixFS-wrapped leaves, 256 KiB chunks, 174 links."""


def _wrapped_leaf_framing(length: int) -> tuple[bytes, bytes]:
    """The bytes before and after `length` file bytes in a UnixFS-wrapped leaf block.

    PBNode{Data: UnixFS{Type: File, Data: chunk, filesize: length}} with no links, as boxo's
    balanced builder writes every leaf; the empty file's leaf has no Data field at all.
    """
    unixfs_head = b"\x08\x02" + (b"\x12" + varint(length) if length else b"")
    tail = b"\x18" + varint(length)
    return b"\x0a" + varint(len(unixfs_head) + length + len(tail)) + unixfs_head, tail


@dataclass(frozen=True, slots=True)
class Leaf:
    """A leaf of a file's DAG: the bytes at [offset, offset + length) of the file.

    Its block is `profile.leaf_block(those bytes)`: the bytes themselves when leaves are raw.
    """

    cid: CID
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class DagNode:
    """A dag-pb node of a file's DAG and its encoded block."""

    cid: CID
    block: bytes


@dataclass(frozen=True, slots=True)
class ImportResult:
    """A file's root CID, its size, and every block of its DAG (nodes children first, root last).

    Leaves are listed by position, not by block, so that their bytes need not be kept.
    """

    root: CID
    size: int
    leaves: list[Leaf]
    nodes: list[DagNode]
    profile: ImportProfile


@dataclass(slots=True)
class _Child:
    cid: CID
    tsize: int  # cumulative size of the child's serialized blocks
    filesize: int  # file bytes under the child


class UnixFSImporter:
    """Computes a file's UnixFS DAG under an import profile from its bytes, fed in any pieces.

    With the default profile, `unixfs-v1-2025`, bit-exact with Kubo's `ipfs add --cid-version=1
    --raw-leaves --chunker=size-1048576` and boxo's balanced layout with 1024 links per node; with
    `V0_2015`, with Kubo's `ipfs add --cid-version=0 --chunker=size-262144`. Only digests are
    kept, never the bytes (bar one partly filled chunk when leaves are not raw).
    """

    __slots__ = (
        "_buffer",
        "_chunk_size",
        "_leaf_fill",
        "_leaf_hash",
        "_leaves",
        "_levels",
        "_max_links",
        "_nodes",
        "_profile",
        "_raw_leaves",
        "_result",
        "_size",
    )

    def __init__(self, profile: ImportProfile | None = None) -> None:
        self._profile = profile or _v1_2025()
        self._chunk_size = self._profile.chunk_size
        self._max_links = self._profile.max_links
        self._raw_leaves = self._profile.raw_leaves
        self._leaf_hash = hashlib.sha256()
        self._leaf_fill = 0
        # A wrapped leaf's block starts with the chunk's length, so a short chunk waits here.
        self._buffer = bytearray()
        self._size = 0
        self._leaves: list[Leaf] = []
        self._nodes: list[DagNode] = []
        # _levels[0] holds leaves waiting for a parent, _levels[1] depth-1 nodes, and so on.
        self._levels: list[list[_Child]] = [[]]
        self._result: ImportResult | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the file."""
        if self._result is not None:
            raise RuntimeError("UnixFSImporter.update() after finish()")
        view = memoryview(data).cast("B")
        if not self._raw_leaves:
            self._update_wrapped(view)
            return
        pos, end = 0, len(view)
        while pos < end:
            take = min(self._chunk_size - self._leaf_fill, end - pos)
            self._leaf_hash.update(view[pos : pos + take])
            self._leaf_fill += take
            pos += take
            if self._leaf_fill == self._chunk_size:
                self._close_leaf()

    def _update_wrapped(self, view: memoryview) -> None:
        size, buffer = self._chunk_size, self._buffer
        pos, end = 0, len(view)
        while pos < end:
            if not buffer and end - pos >= size:
                self._close_wrapped_leaf(view[pos : pos + size])
                pos += size
                continue
            take = min(size - len(buffer), end - pos)
            buffer += view[pos : pos + take]
            pos += take
            if len(buffer) == size:
                self._close_wrapped_leaf(buffer)
                buffer.clear()

    def finish(self) -> ImportResult:
        """The file's root CID and DAG; the importer takes no more bytes afterwards."""
        if self._result is not None:
            return self._result
        if self._raw_leaves:
            if self._leaf_fill or not self._leaves:
                self._close_leaf()
        elif self._buffer or not self._leaves:
            self._close_wrapped_leaf(self._buffer)
            self._buffer = bytearray()
        # Close the partly filled node at each level, bottom up, as boxo's fillNodeRec does.
        level = 0
        while True:
            pending = self._levels[level]
            if level == len(self._levels) - 1:
                root = pending[0].cid if len(pending) == 1 else self._build(pending).cid
                break
            self._levels[level] = []
            self._push(level + 1, self._build(pending))
            level += 1
        self._result = ImportResult(root, self._size, self._leaves, self._nodes, self._profile)
        return self._result

    def _close_leaf(self) -> None:
        cid = CID(1, RAW, SHA2_256, self._leaf_hash.digest())
        self._add_leaf(cid, self._leaf_fill, self._leaf_fill)
        self._leaf_fill = 0
        self._leaf_hash = hashlib.sha256()

    def _close_wrapped_leaf(self, chunk: bytearray | memoryview) -> None:
        length = len(chunk)
        head, tail = _wrapped_leaf_framing(length)
        digest = hashlib.sha256(head)
        digest.update(chunk)
        digest.update(tail)
        cid = CID(self._profile.cid_version, DAG_PB, SHA2_256, digest.digest())
        self._add_leaf(cid, length, len(head) + length + len(tail))

    def _add_leaf(self, cid: CID, length: int, tsize: int) -> None:
        self._leaves.append(Leaf(cid, self._size, length))
        self._push(0, _Child(cid, tsize, length))
        self._size += length

    def _push(self, level: int, child: _Child) -> None:
        if level == len(self._levels):
            self._levels.append([])
        # A full node is only closed once another sibling arrives, so that a DAG that exactly
        # fills its root does not grow a needless level.
        if len(self._levels[level]) == self._max_links:
            full, self._levels[level] = self._levels[level], []
            self._push(level + 1, self._build(full))
        self._levels[level].append(child)

    def _build(self, children: list[_Child]) -> _Child:
        filesize = sum(c.filesize for c in children)
        data = unixfs_file_data(filesize, (c.filesize for c in children))
        block = encode_dag_pb((PBLink(c.cid, "", c.tsize) for c in children), data)
        cid = CID(self._profile.cid_version, DAG_PB, SHA2_256, hashlib.sha256(block).digest())
        self._nodes.append(DagNode(cid, block))
        return _Child(cid, len(block) + sum(c.tsize for c in children), filesize)


def import_path(path: Path, profile: ImportProfile | None = None) -> ImportResult:
    """The UnixFS DAG of a file on disk under `profile` (default `unixfs-v1-2025`), read once.

    Raises StoreError if the file cannot be read.
    """
    importer = UnixFSImporter(profile)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    try:
        with path.open("rb", buffering=0) as f:
            while n := f.readinto(buffer):
                importer.update(view[:n])
    except OSError as e:
        raise StoreError(f"{path}: cannot read: {e.strerror or e}") from e
    return importer.finish()


def cid_of_bytes(body: bytes) -> str:
    """The CID of a document's exact bytes (PROTOCOL §3)."""
    importer = UnixFSImporter()
    importer.update(body)
    return str(importer.finish().root)

"""The UnixFS importer of PROTOCOL.md §3: a file's DAG and root CID under an import profile.

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

from node.cid.core import CID, DAG_PB, RAW, SHA2_256, varint
from node.cid.dagpb import PBLink, encode_dag_pb
from node.errors import StoreError

# unixfs-v1-2025 (IPIP-0499): fixed-size chunks and the widest node of a balanced DAG.
CHUNK_SIZE: Final = 1_048_576
MAX_LINKS: Final = 1024


def unixfs_file_data(filesize: int, blocksizes: Iterable[int]) -> bytes:
    """UnixFS `Data` of a file node as go-unixfs writes it: Type=File, filesize, blocksizes."""
    out = bytearray(b"\x08\x02\x18" + varint(filesize))
    for size in blocksizes:
        out += b"\x20" + varint(size)
    return bytes(out)


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

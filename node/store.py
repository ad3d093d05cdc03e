"""The embedded content store: every file once, under its CID, with an index of its blocks.

Layout under the store's root directory:

- `files/<cid>`: each file's exact bytes, read-only, named by its `unixfs-v1-2025` CID (§3);
- `tmp/`: writes in progress, on the same filesystem so that moving one into `files/` is atomic;
- `index.sqlite`: every block of every file (raw leaves and dag-pb nodes) mapped to where its
  bytes are — a range of a file under `files/`, or the node's encoded bytes — like Kubo's
  filestore, so a file is never kept twice. `node/catalog/blocks.py` owns it.

`files/` is the truth; the index is derived from it and rebuilt when rows are missing.
CIDs are accepted in any form `CID.parse` reads and normalised to CIDv1 base32: a CIDv0 `Qm…`
names the same dag-pb block as its CIDv1 form. Identity CIDs (`bafkqaaa`) are not stored; their
block is their digest. Every method is thread-safe.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

from node.catalog.blocks import BlockIndex
from node.cid import (
    CHUNK_SIZE,
    CID,
    DAG_PB,
    IDENTITY,
    RAW,
    ImportResult,
    UnixFSImporter,
    decode_dag_pb,
    import_path,
    varint,
)
from node.errors import ContentNotFound, InvalidCID, StoreError, VerificationError

log = logging.getLogger(__name__)

# Leftovers of a crashed write older than this are removed when a store is opened.
STALE_TMP_SECONDS: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class StoredContent:
    """A file in the store: its CID, its size in bytes, and where its bytes are."""

    cid: str
    size: int
    path: Path


class Store:
    """A content store rooted at a directory, created as needed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files = root / "files"
        self._tmp = root / "tmp"
        self._repair_checked = False
        try:
            self._files.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)
        except OSError as e:
            raise StoreError(f"{root}: cannot open the content store: {e}") from e
        self._blocks = BlockIndex(root / "index.sqlite")
        self._remove_stale_tmp()

    def close(self) -> None:
        """Close the block index; the store must not be used afterwards."""
        self._blocks.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------

    def tmp_path(self, suffix: str = "") -> Path:
        """A fresh path in `tmp/` for the caller to write, then `adopt`."""
        return self._tmp / f"{uuid.uuid4().hex}{suffix}"

    def adopt(self, path: Path, expected: str | None = None) -> StoredContent:
        """Take ownership of a complete file written at a `tmp_path()` and store it.

        The file is hashed in one pass; if `expected` is given and differs, VerificationError.
        The file at `path` is gone afterwards, whether stored, already present, or refused.
        """
        if path.resolve().parent != self._tmp.resolve():
            raise StoreError(f"{path}: not in the store's tmp/; write it at tmp_path()")
        try:
            want = _parse(expected) if expected is not None else None
            importer = UnixFSImporter()
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            with path.open("rb", buffering=0) as f:
                while n := f.readinto(buffer):
                    importer.update(view[:n])
                os.fchmod(f.fileno(), 0o444)
                os.fsync(f.fileno())
            return self._install(path, importer.finish(), want)
        except OSError as e:
            raise StoreError(f"{path}: cannot adopt: {e.strerror or e}") from e
        finally:
            path.unlink(missing_ok=True)

    def put_bytes(self, data: bytes) -> StoredContent:
        """Store a small piece of content (a cover, a feed snapshot) given in memory."""
        with self.writer() as writer:
            writer.write(data)
            return writer.commit()

    def writer(self, expected: str | None = None, max_bytes: int | None = None) -> StoreWriter:
        """A writer for content arriving in chunks; use it as a context manager.

        Nothing is stored unless `commit()` succeeds: the bytes must match `expected` if given
        (else VerificationError) and stay within `max_bytes` if given (else StoreError).
        """
        want = _parse(expected) if expected is not None else None
        return StoreWriter(self, self.tmp_path(".part"), want, max_bytes)

    def _install(self, tmp: Path, result: ImportResult, expected: CID | None) -> StoredContent:
        """Move a complete, fsynced file from tmp/ to files/<cid> and index its blocks."""
        cid = str(result.root)
        if expected is not None and result.root != expected:
            tmp.unlink(missing_ok=True)
            raise VerificationError(f"content is {cid}, not the expected {expected}")
        target = self._files / cid
        if target.exists():
            tmp.unlink()
        else:
            os.replace(tmp, target)
            _fsync_dir(self._files)
        self._blocks.add(result)
        return StoredContent(cid, result.size, target)

    # --- reading ----------------------------------------------------------------------------

    def has(self, cid: str) -> bool:
        """Whether a file with this CID is stored."""
        return self._file(_parse(cid)).is_file()

    def path(self, cid: str) -> Path:
        """Where the stored file's bytes are; ContentNotFound if it is not stored."""
        path = self._file(_parse(cid))
        if not path.is_file():
            raise ContentNotFound(f"{cid}: not in the content store")
        return path

    def size(self, cid: str) -> int:
        """The stored file's size in bytes; ContentNotFound if it is not stored."""
        try:
            return self.path(cid).stat().st_size
        except FileNotFoundError as e:
            raise ContentNotFound(f"{cid}: not in the content store") from e

    def open(self, cid: str) -> BinaryIO:
        """The stored file, open for binary reading; ContentNotFound if it is not stored."""
        try:
            return self.path(cid).open("rb")
        except FileNotFoundError as e:
            raise ContentNotFound(f"{cid}: not in the content store") from e

    def roots(self) -> Iterator[str]:
        """The CIDs of every stored file."""
        with os.scandir(self._files) as entries:
            for entry in entries:
                if entry.is_file():
                    yield entry.name

    def remove(self, cid: str) -> None:
        """Remove a stored file and its blocks from the index; nothing happens if it is absent."""
        name = str(_parse(cid))
        (self._files / name).unlink(missing_ok=True)
        self._blocks.remove(name)

    def block(self, cid: str) -> bytes:
        """One block of any stored file's DAG, or an identity CID's inline bytes.

        ContentNotFound if no stored file holds it; StoreError if its stored bytes are corrupt.
        """
        return self._block(_parse(cid))

    def _block(self, cid: CID) -> bytes:
        if cid.hash_code == IDENTITY:
            return cid.digest
        name = str(cid)
        if cid.codec == RAW:
            # A file of at most 1 MiB is itself one raw block.
            try:
                with (self._files / name).open("rb") as f:
                    data = f.read(CHUNK_SIZE + 1)
                if len(data) <= CHUNK_SIZE and cid.matches(data):
                    return data
            except FileNotFoundError:
                pass
        found = self._locate(cid)
        if found is None and not self._repair_checked:
            self.repair()
            found = self._locate(cid)
        if found is None:
            raise ContentNotFound(f"{cid}: no stored file holds this block")
        return found

    def _locate(self, cid: CID) -> bytes | None:
        name = str(cid)
        corrupt = []
        for root, offset, length, node in self._blocks.locations(name):
            if node is not None:
                data = bytes(node)
            else:
                try:
                    with (self._files / root).open("rb") as f:
                        f.seek(offset)
                        data = f.read(length)
                except FileNotFoundError:
                    continue
            if cid.matches(data):
                return data
            corrupt.append(root)
        if corrupt:
            raise StoreError(f"{name}: stored bytes are corrupt (in {', '.join(corrupt)})")
        return None

    def car(self, cid: str, dups: bool = False) -> Iterator[bytes]:
        """A CARv1 of the DAG under `cid`, in depth-first order, streamed a piece at a time.

        With `dups=False` a block that recurs in the DAG is sent once (the trustless gateway's
        `dups=n`). ContentNotFound is raised here, before anything is streamed, if the root
        block is unknown; a missing block further down raises it while streaming.
        """
        root = _parse(cid)
        first = self._block(root)
        return self._car_pieces(root, first, dups)

    def _car_pieces(self, root: CID, first: bytes, dups: bool) -> Iterator[bytes]:
        yield car_header(root)
        seen: set[CID] = set()
        stack: list[CID] = [root]
        while stack:
            cid = stack.pop()
            if not dups:
                if cid in seen:
                    continue
                seen.add(cid)
            data = first if cid is root else self._block(cid)
            cid_bytes = cid.to_bytes()
            yield varint(len(cid_bytes) + len(data)) + cid_bytes
            yield data
            if cid.codec == DAG_PB:
                stack.extend(reversed([link.cid for link in decode_dag_pb(data).links]))

    def verify(self, cid: str) -> bool:
        """Whether the stored bytes still hash to `cid` (a file, or one block of a file).

        ContentNotFound if the store holds neither.
        """
        want = _parse(cid)
        if want.hash_code == IDENTITY:
            return True
        path = self._file(want)
        if path.is_file():
            return import_path(path).root == want
        try:
            self._block(want)
        except ContentNotFound:
            raise
        except StoreError:  # the stored bytes of the block are corrupt
            return False
        return True

    # --- the block index --------------------------------------------------------------------

    def repair(self) -> int:
        """Index every stored file that has no index rows and forget rows of removed files.

        Returns how many files were indexed. Runs by itself the first time a block is missing.
        """
        self._repair_checked = True
        on_disk = set(self.roots())
        indexed = self._blocks.roots()
        for gone in indexed - on_disk:
            self._blocks.remove(gone)
        count = 0
        for name in sorted(on_disk - indexed):
            if self._index_file(name):
                count += 1
        return count

    def reindex(self) -> int:
        """Rebuild the whole block index from the files; returns how many files were indexed."""
        self._blocks.clear()
        return self.repair()

    def _index_file(self, name: str) -> bool:
        try:
            expected = CID.parse(name)
            result = import_path(self._files / name)
        except (InvalidCID, StoreError) as e:
            log.warning("content store: not indexing files/%s: %s", name, e)
            return False
        if result.root != expected:
            log.warning("content store: files/%s is corrupt: its bytes are %s", name, result.root)
            return False
        self._blocks.add(result)
        return True

    def _file(self, cid: CID) -> Path:
        return self._files / str(cid)

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if entry.is_file() and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                except OSError:
                    continue


class StoreWriter:
    """Content being written to the store; nothing is visible until `commit()` succeeds."""

    def __init__(
        self, store: Store, path: Path, expected: CID | None, max_bytes: int | None
    ) -> None:
        self._store = store
        self._path = path
        self._expected = expected
        self._max_bytes = max_bytes
        self._importer = UnixFSImporter()
        self._written = 0
        self._done = False
        try:
            self._file: BinaryIO = path.open("xb")
        except OSError as e:
            raise StoreError(f"{path}: cannot start writing: {e.strerror or e}") from e

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append bytes; StoreError past `max_bytes`, VerificationError once they cannot match
        the expected CID. Either way the writer is discarded."""
        if self._done:
            raise StoreError("content writer is already committed or discarded")
        size = memoryview(chunk).nbytes
        try:
            if self._max_bytes is not None and self._written + size > self._max_bytes:
                raise StoreError(f"content is larger than the limit of {self._max_bytes} bytes")
            # A raw CID names a file of at most one chunk: more bytes can never match it.
            expected = self._expected
            if expected is not None and expected.codec == RAW and self._written + size > CHUNK_SIZE:
                raise VerificationError(f"content is larger than the expected {expected} allows")
            self._file.write(chunk)
            self._importer.update(chunk)
            self._written += size
        except OSError as e:
            self.discard()
            raise StoreError(f"cannot write content: {e.strerror or e}") from e
        except BaseException:
            self.discard()
            raise

    def commit(self) -> StoredContent:
        """Store the content under its CID, complete and fsynced, and return it."""
        if self._done:
            raise StoreError("content writer is already committed or discarded")
        try:
            self._file.flush()
            os.fchmod(self._file.fileno(), 0o444)
            os.fsync(self._file.fileno())
            self._file.close()
            stored = self._store._install(self._path, self._importer.finish(), self._expected)
        except OSError as e:
            self.discard()
            raise StoreError(f"cannot store content: {e.strerror or e}") from e
        except BaseException:
            self.discard()
            raise
        self._done = True
        return stored

    def discard(self) -> None:
        """Drop everything written so far; safe to call more than once."""
        self._done = True
        self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.discard()


def car_header(root: CID) -> bytes:
    """The varint-prefixed CARv1 header: dag-cbor `{"roots": [root], "version": 1}`."""
    # dag-cbor: map keys sorted by length, a CID is tag 42 over a byte string of 0x00 + CID.
    link = b"\x00" + root.to_bytes()
    header = b"\xa2\x65roots\x81\xd8\x2a" + _cbor_bytes_head(len(link)) + link + b"\x67version\x01"
    return varint(len(header)) + header


def _cbor_bytes_head(length: int) -> bytes:
    if length < 24:
        return bytes([0x40 | length])
    if length < 0x100:
        return bytes([0x58, length])
    return bytes([0x59]) + length.to_bytes(2, "big")


def _parse(cid: str) -> CID:
    return CID.parse(cid).to_v1()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The content store with real files in a temporary directory."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from node.cid import CHUNK_SIZE, CID, DAG_PB, RAW, ImportResult, decode_dag_pb, import_path
from node.errors import ContentNotFound, InvalidCID, StoreError, VerificationError
from node.store import Store
from tests.support.car import read_car

BIG = 2 * CHUNK_SIZE + 123_457  # three leaves under one dag-pb root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store") as store:
        yield store


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def write_tmp(store: Store, data: bytes) -> Path:
    path = store.tmp_path(".flac")
    path.write_bytes(data)
    return path


def listing(store: Store, sub: str) -> list[str]:
    return sorted(p.name for p in (store.root / sub).iterdir())


def imported(tmp_path: Path, data: bytes) -> ImportResult:
    path = tmp_path / "reference.bin"
    path.write_bytes(data)
    return import_path(path)


def file_bytes(blocks: dict[CID, bytes], cid: CID) -> bytes:
    """The file a UnixFS DAG spells, read depth-first from its blocks."""
    if cid.codec == RAW:
        return blocks[cid]
    return b"".join(file_bytes(blocks, link.cid) for link in decode_dag_pb(blocks[cid]).links)


# --- writing ---------------------------------------------------------------------------------


def test_put_bytes_round_trip(store: Store) -> None:
    stored = store.put_bytes(b"hello world")
    assert stored.cid == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert stored.size == 11
    assert stored.path == store.root / "files" / stored.cid
    assert stored.path.read_bytes() == b"hello world"
    assert store.has(stored.cid)
    assert store.path(stored.cid) == stored.path
    assert store.size(stored.cid) == 11
    with store.open(stored.cid) as f:
        assert f.read() == b"hello world"
    assert store.block(stored.cid) == b"hello world"
    assert list(store.roots()) == [stored.cid]
    assert listing(store, "tmp") == []


def test_put_bytes_of_the_empty_file(store: Store) -> None:
    stored = store.put_bytes(b"")
    assert stored.cid == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert store.block(stored.cid) == b""


def test_adopt_moves_the_file_under_its_cid(store: Store, tmp_path: Path) -> None:
    data = random_bytes(BIG)
    reference = imported(tmp_path, data)
    tmp = write_tmp(store, data)
    stored = store.adopt(tmp, expected=str(reference.root))
    assert stored.cid == str(reference.root)
    assert stored.cid.startswith("bafybei")
    assert stored.size == BIG
    assert not tmp.exists()
    assert stored.path.read_bytes() == data
    assert not os.access(stored.path, os.W_OK) or os.geteuid() == 0
    # Adopting the same bytes again keeps the one copy and drops the new one.
    again = write_tmp(store, data)
    assert store.adopt(again) == stored
    assert not again.exists()
    assert listing(store, "files") == [stored.cid]
    assert listing(store, "tmp") == []


def test_adopt_with_the_wrong_expected_cid_keeps_nothing(store: Store) -> None:
    tmp = write_tmp(store, b"the real bytes")
    other = str(CID.of_block(b"other bytes"))
    with pytest.raises(VerificationError, match=other):
        store.adopt(tmp, expected=other)
    assert listing(store, "files") == []
    assert listing(store, "tmp") == []


def test_adopt_refuses_a_path_outside_tmp(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "original.flac"
    outside.write_bytes(b"an artist's original")
    with pytest.raises(StoreError, match="tmp"):
        store.adopt(outside)
    assert outside.read_bytes() == b"an artist's original"
    assert listing(store, "files") == []


def test_writer_streams_and_commits(store: Store, tmp_path: Path) -> None:
    data = random_bytes(BIG, seed=2)
    expected = str(imported(tmp_path, data).root)
    with store.writer(expected=expected) as writer:
        for start in range(0, len(data), 65_536):
            writer.write(data[start : start + 65_536])
        stored = writer.commit()
    assert stored.cid == expected
    assert store.path(expected).read_bytes() == data
    assert listing(store, "tmp") == []


def test_aborted_writer_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(random_bytes(CHUNK_SIZE + 10))
        assert listing(store, "tmp") != []
        raise RuntimeError("upload interrupted")
    assert listing(store, "files") == []
    assert listing(store, "tmp") == []
    with store.writer() as writer:
        writer.write(b"never committed")
    assert listing(store, "files") == []
    assert listing(store, "tmp") == []


def test_writer_with_the_wrong_expected_cid_keeps_nothing(store: Store) -> None:
    wrong = str(CID.of_block(b"something else"))
    with store.writer(expected=wrong) as writer:
        writer.write(b"mirrored bytes")
        with pytest.raises(VerificationError):
            writer.commit()
    assert listing(store, "files") == []
    assert listing(store, "tmp") == []
    assert not store.has(wrong)


def test_writer_refuses_more_bytes_than_a_raw_cid_can_name(store: Store) -> None:
    with store.writer(expected=str(CID.of_block(b"small"))) as writer:
        writer.write(bytes(CHUNK_SIZE))
        with pytest.raises(VerificationError):
            writer.write(b"one byte too many")
    assert listing(store, "tmp") == []


def test_writer_max_bytes(store: Store) -> None:
    with store.writer(max_bytes=10) as writer:
        writer.write(b"0123456789")
        with pytest.raises(StoreError, match="10 bytes"):
            writer.write(b"!")
        with pytest.raises(StoreError):
            writer.commit()
    assert listing(store, "files") == []
    assert listing(store, "tmp") == []


def test_concurrent_writes_from_threads(store: Store) -> None:
    payloads = [random_bytes(50_000, seed=i % 4) for i in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        stored = list(pool.map(store.put_bytes, payloads))
    assert len({s.cid for s in stored}) == 4
    for content, data in zip(stored, payloads, strict=True):
        assert store.block(content.cid) == data
    assert sorted(store.roots()) == sorted({s.cid for s in stored})


# --- reading ---------------------------------------------------------------------------------


def test_every_block_of_a_large_file(store: Store, tmp_path: Path) -> None:
    data = random_bytes(BIG, seed=3)
    result = imported(tmp_path, data)
    store.adopt(write_tmp(store, data))
    assert len(result.leaves) == 3
    for leaf in result.leaves:
        block = store.block(str(leaf.cid))
        assert block == data[leaf.offset : leaf.offset + leaf.length]
        assert hashlib.sha256(block).digest() == leaf.cid.digest
    for node in result.nodes:
        block = store.block(str(node.cid))
        assert block == node.block
        assert CID.of_block(block, DAG_PB) == node.cid
    # The root's CIDv0 names the same dag-pb block.
    v0 = str(CID(0, DAG_PB, result.root.hash_code, result.root.digest))
    assert v0.startswith("Qm")
    assert store.block(v0) == result.nodes[-1].block
    assert store.has(v0)


def test_identity_and_unknown_blocks(store: Store) -> None:
    assert store.block("bafkqaaa") == b""
    assert store.block(str(CID.identity(b"inline"))) == b"inline"
    unknown = str(CID.of_block(b"never stored"))
    with pytest.raises(ContentNotFound, match=unknown):
        store.block(unknown)
    with pytest.raises(ContentNotFound):
        store.path(unknown)
    with pytest.raises(ContentNotFound):
        store.size(unknown)
    assert not store.has(unknown)
    with pytest.raises(InvalidCID):
        store.block("not-a-cid")
    with pytest.raises(InvalidCID):
        store.has("bafy")


def test_car_round_trip(store: Store, tmp_path: Path) -> None:
    data = random_bytes(BIG, seed=4)
    stored = store.adopt(write_tmp(store, data))
    result = imported(tmp_path, data)
    header, blocks = read_car(b"".join(store.car(stored.cid)))
    assert header == {"roots": [result.root], "version": 1}
    for cid, block in blocks:
        assert cid.matches(block)
    # Depth first: the root, then its leaves in file order.
    assert [cid for cid, _ in blocks] == [result.root, *(leaf.cid for leaf in result.leaves)]
    assert file_bytes(dict(blocks), result.root) == data


def test_car_of_a_single_block_and_of_an_identity_cid(store: Store) -> None:
    stored = store.put_bytes(b"cover art")
    header, blocks = read_car(b"".join(store.car(stored.cid)))
    assert header["roots"] == [CID.parse(stored.cid)]
    assert blocks == [(CID.parse(stored.cid), b"cover art")]
    header, blocks = read_car(b"".join(store.car("bafkqaaa")))
    assert blocks == [(CID.parse("bafkqaaa"), b"")]


def test_car_of_unknown_content_fails_before_streaming(store: Store) -> None:
    with pytest.raises(ContentNotFound):
        store.car(str(CID.of_block(b"absent")))


def test_car_of_a_deep_dag_with_repeated_blocks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks and fan-out make a three-level DAG whose leaves repeat."""
    monkeypatch.setattr("node.cid.unixfs.CHUNK_SIZE", 4)
    monkeypatch.setattr("node.cid.unixfs.MAX_LINKS", 3)
    monkeypatch.setattr("node.store.CHUNK_SIZE", 4)
    data = b"abcdabcdwxyz" * 4 + b"tail!"  # 14 leaves: 3 levels, repeated leaves and nodes
    stored = store.put_bytes(data)
    header, blocks = read_car(b"".join(store.car(stored.cid, dups=True)))
    assert file_bytes(dict(blocks), header["roots"][0]) == data
    leaf_cids = [cid for cid, _ in blocks if cid.codec == RAW]
    assert len(leaf_cids) == 14
    _, unique = read_car(b"".join(store.car(stored.cid)))
    assert len(unique) == len({cid for cid, _ in blocks}) < len(blocks)
    assert file_bytes(dict(unique), header["roots"][0]) == data


# --- repair and verification -----------------------------------------------------------------


def test_reindex_after_the_index_is_deleted(tmp_path: Path) -> None:
    data = random_bytes(BIG, seed=5)
    result = imported(tmp_path, data)
    with Store(tmp_path / "store") as store:
        store.adopt(write_tmp(store, data))
        small = store.put_bytes(b"small")
    for index in (tmp_path / "store").glob("index.sqlite*"):
        index.unlink()
    with Store(tmp_path / "store") as store:
        # Lazily: the first unknown block triggers the repair.
        assert store.block(str(result.leaves[1].cid)) == data[CHUNK_SIZE : 2 * CHUNK_SIZE]
        assert store.block(str(result.root)) == result.nodes[-1].block
        assert store.block(small.cid) == b"small"
        assert store.reindex() == 2
        assert store.repair() == 0
        assert store.block(str(result.leaves[2].cid)) == data[2 * CHUNK_SIZE :]


def test_a_file_left_without_index_rows_is_indexed_on_demand(tmp_path: Path) -> None:
    """As after a crash between the rename into files/ and the index update."""
    data = random_bytes(BIG, seed=6)
    result = imported(tmp_path, data)
    with Store(tmp_path / "store") as store:
        (store.root / "files" / str(result.root)).write_bytes(data)
        assert store.block(str(result.leaves[0].cid)) == data[:CHUNK_SIZE]
        assert store.verify(str(result.root))


def test_verify_detects_a_flipped_byte(store: Store, tmp_path: Path) -> None:
    data = random_bytes(BIG, seed=7)
    result = imported(tmp_path, data)
    stored = store.adopt(write_tmp(store, data))
    assert store.verify(stored.cid)
    assert store.verify(str(result.leaves[1].cid))
    stored.path.chmod(0o644)
    with stored.path.open("r+b") as f:
        f.seek(CHUNK_SIZE + 5)
        byte = f.read(1)
        f.seek(CHUNK_SIZE + 5)
        f.write(bytes([byte[0] ^ 0x01]))
    assert not store.verify(stored.cid)
    assert not store.verify(str(result.leaves[1].cid))
    assert store.verify(str(result.leaves[0].cid))
    with pytest.raises(StoreError, match="corrupt"):
        store.block(str(result.leaves[1].cid))
    with pytest.raises(ContentNotFound):
        store.verify(str(CID.of_block(b"absent")))


def test_remove(store: Store, tmp_path: Path) -> None:
    data = random_bytes(BIG, seed=8)
    result = imported(tmp_path, data)
    stored = store.adopt(write_tmp(store, data))
    kept = store.put_bytes(b"kept")
    store.remove(stored.cid)
    store.remove(stored.cid)
    assert not store.has(stored.cid)
    assert list(store.roots()) == [kept.cid]
    for cid in (result.root, result.leaves[0].cid):
        with pytest.raises(ContentNotFound):
            store.block(str(cid))
    assert store.block(kept.cid) == b"kept"


def test_a_block_shared_by_two_files_survives_removing_one(store: Store) -> None:
    first_chunk = random_bytes(CHUNK_SIZE, seed=9)
    one = store.put_bytes(first_chunk + b"one")
    two = store.put_bytes(first_chunk + b"two")
    shared = str(CID.of_block(first_chunk))
    store.remove(one.cid)
    assert store.block(shared) == first_chunk
    assert store.has(two.cid)

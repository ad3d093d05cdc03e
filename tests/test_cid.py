"""CIDs and the unixfs-v1-2025 importer, checked against Kubo's reference CIDs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from node.cid import (
    CHUNK_SIZE,
    CID,
    DAG_PB,
    IDENTITY,
    RAW,
    SHA2_256,
    PBLink,
    UnixFSImporter,
    base32_decode,
    base32_encode,
    base58_decode,
    base58_encode,
    decode_dag_pb,
    encode_dag_pb,
    import_path,
)
from node.errors import InvalidCID, VerificationError

SHARED = Path(os.environ.get("STAVE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
VECTORS: list[dict[str, Any]] = json.loads((SHARED / "vectors" / "unixfs-cids.json").read_text())[
    "vectors"
]

GIB = 1 << 30


def kubo_random_bytes(seed: str, size: int, chunk: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Kubo's deterministic test data: the ChaCha20 keystream keyed by SHA-256(seed).

    cryptography's 16-byte nonce is a 4-byte little-endian counter then the 12-byte nonce;
    all zeros is counter 0 with a zero nonce, as the vectors' "about" says.
    """
    key = hashlib.sha256(seed.encode()).digest()
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    zeros = bytes(chunk)
    remaining = size
    while remaining:
        n = min(chunk, remaining)
        yield encryptor.update(zeros[:n])
        remaining -= n


def vector_id(vector: dict[str, Any]) -> str:
    source = (
        f"seed={vector['seed']},size={vector['size']}"
        if "seed" in vector
        else (f"data={vector['data_utf8']!r}")
    )
    return f"{vector['profile']}:{source}"


def vector_params() -> list[Any]:
    params = []
    for vector in VECTORS:
        marks: list[Any] = []
        if vector["profile"] != "unixfs-v1-2025":
            marks.append(
                pytest.mark.skip(
                    reason="unixfs-v0-2015 (CIDv0, 256 KiB dag-pb leaves) is not an import "
                    "profile Stave uses; PROTOCOL.md §3 fixes unixfs-v1-2025"
                )
            )
        elif vector.get("size", 0) >= GIB:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(vector, id=vector_id(vector), marks=marks))
    return params


@pytest.mark.parametrize("vector", vector_params())
def test_importer_matches_kubo(vector: dict[str, Any]) -> None:
    importer = UnixFSImporter()
    if "seed" in vector:
        for chunk in kubo_random_bytes(vector["seed"], vector["size"]):
            importer.update(chunk)
        size = vector["size"]
    else:
        data = vector["data_utf8"].encode()
        importer.update(data)
        size = len(data)
    result = importer.finish()
    assert str(result.root) == vector["cid"]
    assert result.size == size
    assert sum(leaf.length for leaf in result.leaves) == size
    assert len(result.leaves) == max(1, -(-size // CHUNK_SIZE))
    if size <= CHUNK_SIZE:
        assert result.nodes == []
        assert result.leaves[0].cid == result.root
    else:
        assert result.nodes[-1].cid == result.root


def test_one_mib_plus_one_is_a_root_over_two_leaves() -> None:
    chunks = list(kubo_random_bytes("chunk-v1-seed", CHUNK_SIZE + 1))
    data = b"".join(chunks)
    importer = UnixFSImporter()
    importer.update(data)
    result = importer.finish()
    assert str(result.root) == "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"
    [root] = result.nodes
    assert root.cid.matches(root.block)
    node = decode_dag_pb(root.block)
    assert [(link.name, link.tsize) for link in node.links] == [("", CHUNK_SIZE), ("", 1)]
    assert [link.cid for link in node.links] == [leaf.cid for leaf in result.leaves]
    # Type=File, filesize, blocksizes: the bytes go-unixfs writes.
    assert node.data == b"\x08\x02\x18\x81\x80\x40\x20\x80\x80\x40\x20\x01"
    assert [(leaf.offset, leaf.length) for leaf in result.leaves] == [
        (0, CHUNK_SIZE),
        (CHUNK_SIZE, 1),
    ]
    for leaf in result.leaves:
        assert leaf.cid.matches(data[leaf.offset : leaf.offset + leaf.length])


@pytest.mark.parametrize("piece", [1, 7, 65_536, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE])
def test_chunk_boundaries_do_not_change_the_cid(piece: int) -> None:
    data = b"".join(kubo_random_bytes("chunk-v1-seed", CHUNK_SIZE + 1))
    data = data[:200_000] * 6 if piece == 1 else data  # keep the 1-byte feed quick
    whole = UnixFSImporter()
    whole.update(data)
    pieces = UnixFSImporter()
    for start in range(0, len(data), piece):
        pieces.update(memoryview(data)[start : start + piece])
    assert pieces.finish() == whole.finish()


def test_two_level_tree_shape_with_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """1025 leaves make a root over a full node and a node holding the last leaf (balanced)."""
    monkeypatch.setattr("node.cid.CHUNK_SIZE", 4)
    importer = UnixFSImporter()
    importer.update(bytes(4 * 1025))
    result = importer.finish()
    root = decode_dag_pb(result.nodes[-1].block)
    assert len(root.links) == 2
    first, second = (decode_dag_pb(_node(result, link.cid)) for link in root.links)
    assert len(first.links) == 1024
    assert len(second.links) == 1
    # Tsize of a dag-pb child = its block plus everything below it.
    assert root.links[1].tsize == len(_node(result, root.links[1].cid)) + 4


def _node(result: Any, cid: CID) -> bytes:
    return next(node.block for node in result.nodes if node.cid == cid)


def test_import_path_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "track.bin"
    with path.open("wb") as f:
        for chunk in kubo_random_bytes("chunk-v1-seed", CHUNK_SIZE + 1):
            f.write(chunk)
    result = import_path(path)
    assert str(result.root) == "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"


def test_update_after_finish_is_refused() -> None:
    importer = UnixFSImporter()
    importer.finish()
    with pytest.raises(RuntimeError):
        importer.update(b"x")


# --- parsing ---------------------------------------------------------------------------------

V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
V1_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def test_parse_cidv1_raw() -> None:
    cid = CID.parse(V1_RAW)
    assert (cid.version, cid.codec, cid.hash_code) == (1, RAW, SHA2_256)
    assert cid.digest == hashlib.sha256(b"hello world").digest()
    assert str(cid) == V1_RAW
    assert CID.from_bytes(cid.to_bytes()) == cid
    assert cid.matches(b"hello world")
    assert not cid.matches(b"hello world!")
    with pytest.raises(VerificationError):
        cid.check(b"hello")


def test_parse_cidv0_and_its_v1_form() -> None:
    cid = CID.parse(V0)
    assert (cid.version, cid.codec, cid.hash_code) == (0, DAG_PB, SHA2_256)
    assert str(cid) == V0
    assert cid.to_bytes()[:2] == b"\x12\x20"
    assert CID.from_bytes(cid.to_bytes()) == cid
    v1 = cid.to_v1()
    assert str(v1).startswith("bafybei")
    assert v1.digest == cid.digest


def test_parse_base58btc_cidv1() -> None:
    cid = CID.parse(V1_RAW)
    z = "z" + base58_encode(cid.to_bytes())
    assert CID.parse(z) == cid
    assert str(CID.parse(z)) == V1_RAW


def test_identity_empty_cid() -> None:
    cid = CID.parse("bafkqaaa")
    assert (cid.version, cid.codec, cid.hash_code, cid.digest) == (1, RAW, IDENTITY, b"")
    assert cid.matches(b"")
    assert CID.identity(b"") == cid
    assert str(CID.identity(b"hi")) == str(CID.parse(str(CID.identity(b"hi"))))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("b", id="prefix-only"),
        pytest.param("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5", id="truncated"),
        pytest.param(V1_RAW + "a", id="one-char-too-many"),
        pytest.param(V1_RAW.upper(), id="upper-case-base32"),
        pytest.param("bafkrei1zjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", id="bad-char"),
        pytest.param(" " + V1_RAW, id="leading-space"),
        pytest.param(V1_RAW + "\n", id="trailing-newline"),
        pytest.param("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyf", id="v0-short"),
        pytest.param("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyf0", id="v0-bad-char"),
        pytest.param("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfDD", id="v0-long"),
        pytest.param("mAXASIA", id="base64-multibase"),
        pytest.param("b" + "a" * 600, id="too-long"),
        pytest.param("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", id="dag-cbor"),
        pytest.param("z", id="z-empty"),
        pytest.param("z111", id="z-zeros"),
        pytest.param("bafkqaab", id="nonzero-padding-bits"),
        pytest.param("bafkqaa", id="bad-base32-length"),
        pytest.param("héllo", id="non-ascii"),
        pytest.param("\x00", id="nul"),
    ],
)
def test_malformed_cids_raise_invalid_cid(text: str) -> None:
    with pytest.raises(InvalidCID):
        CID.parse(text)


def test_non_string_raises_invalid_cid() -> None:
    for value in (None, b"bafkqaaa", 12, ["bafkqaaa"]):
        with pytest.raises(InvalidCID):
            CID.parse(value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x02\x55\x12\x20" + bytes(32), id="version-2"),
        pytest.param(b"\x01\x55\x12\x20" + bytes(31), id="short-digest"),
        pytest.param(b"\x01\x55\x12\x20" + bytes(33), id="long-digest"),
        pytest.param(b"\x01\x55\x13\x20" + bytes(32), id="sha2-512-code"),
        pytest.param(b"\x01\xd5\x00\x12\x20" + bytes(32), id="non-minimal-varint"),
        pytest.param(b"\x01\x55\x00\x81\x01" + bytes(129), id="identity-too-long"),
        pytest.param(b"\x01\x80", id="truncated-varint"),
        pytest.param(b"\x01" + b"\xff" * 12, id="overlong-varint"),
    ],
)
def test_malformed_binary_cids_raise_invalid_cid(data: bytes) -> None:
    with pytest.raises(InvalidCID):
        CID.from_bytes(data)
    with pytest.raises(InvalidCID):
        CID.parse("b" + base32_encode(data))


def test_building_a_bad_cid_raises_invalid_cid() -> None:
    with pytest.raises(InvalidCID):
        CID(1, RAW, SHA2_256, b"short")
    with pytest.raises(InvalidCID):
        CID(0, RAW, SHA2_256, bytes(32))


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\1", b"f", b"fo", b"foo", b"foob", b"fooba"])
def test_base_encodings_round_trip(data: bytes) -> None:
    assert base32_decode(base32_encode(data)) == data
    assert base58_decode(base58_encode(data)) == data


def test_base32_matches_rfc4648() -> None:
    assert base32_encode(b"foobar") == "mzxw6ytboi"
    assert base58_encode(b"hello world") == "StV1DL6CwTryKyV"


def test_dag_pb_round_trip_and_rejects_garbage() -> None:
    child = CID.parse(V1_RAW)
    block = encode_dag_pb([PBLink(child, "", 11)], b"\x08\x02")
    node = decode_dag_pb(block)
    assert node.links == [PBLink(child, "", 11)]
    assert node.data == b"\x08\x02"
    for garbage in (b"\x12\x05abc", b"\x0b", b"\x1a\x00", block[:-1]):
        with pytest.raises(VerificationError):
            decode_dag_pb(garbage)


def _mutations(valid: str) -> st.SearchStrategy[str]:
    """Strings one edit away from a valid CID: a replaced, dropped or inserted character."""
    positions = st.integers(0, len(valid) - 1)
    chars = st.characters(codec="utf-8")
    return st.one_of(
        st.tuples(positions, chars).map(lambda pc: valid[: pc[0]] + pc[1] + valid[pc[0] + 1 :]),
        positions.map(lambda p: valid[:p] + valid[p + 1 :]),
        st.tuples(positions, chars).map(lambda pc: valid[: pc[0]] + pc[1] + valid[pc[0] :]),
    )


@given(st.text(max_size=120) | st.sampled_from([V0, V1_RAW, "bafkqaaa"]).flatmap(_mutations))
@settings(max_examples=500, deadline=None)
def test_parse_raises_only_invalid_cid(text: str) -> None:
    try:
        cid = CID.parse(text)
    except InvalidCID:
        return
    assert CID.parse(str(cid)) == cid

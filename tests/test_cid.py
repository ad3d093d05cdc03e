"""CIDs and the UnixFS importer (unixfs-v1-2025 and unixfs-v0-2015), checked against Kubo."""

from __future__ import annotations

import hashlib
import json
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
    V0_2015,
    V1_2025,
    ImportProfile,
    ImportResult,
    Leaf,
    PBLink,
    UnixFSImporter,
    base32_decode,
    base32_encode,
    base58_decode,
    base58_encode,
    decode_dag_pb,
    encode_dag_pb,
    import_path,
    read_varint,
    unixfs_file_data,
)
from node.errors import InvalidCID, VerificationError
from tests.support.shared import SHARED

VECTORS: list[dict[str, Any]] = json.loads((SHARED / "vectors" / "unixfs-cids.json").read_text())[
    "vectors"
]

GIB = 1 << 30
PROFILES = {profile.name: profile for profile in (V1_2025, V0_2015)}


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
        marks = [pytest.mark.slow] if vector.get("size", 0) >= GIB else []
        params.append(pytest.param(vector, id=vector_id(vector), marks=marks))
    return params


def test_every_vector_names_a_known_profile() -> None:
    assert {vector["profile"] for vector in VECTORS} == set(PROFILES)


@pytest.mark.parametrize("vector", vector_params())
def test_importer_matches_kubo(vector: dict[str, Any]) -> None:
    profile = PROFILES[vector["profile"]]
    importer = UnixFSImporter(profile)
    data = b""
    if "seed" in vector:
        for chunk in kubo_random_bytes(vector["seed"], vector["size"]):
            importer.update(chunk)
        size = vector["size"]
    else:
        data = vector["data_utf8"].encode()
        importer.update(data)
        size = len(data)
    result = importer.finish()
    if "data_utf8" in vector:
        assert result_leaf_blocks_match(result, data)
    assert str(result.root) == vector["cid"]
    assert result.root.version == profile.cid_version
    assert result.profile == profile
    assert result.size == size
    assert sum(leaf.length for leaf in result.leaves) == size
    assert len(result.leaves) == max(1, -(-size // profile.chunk_size))
    if size <= profile.chunk_size:
        assert result.nodes == []
        assert result.leaves[0].cid == result.root
    else:
        assert result.nodes[-1].cid == result.root


def result_leaf_blocks_match(result: ImportResult, data: bytes) -> bool:
    """Whether every leaf's CID names the leaf block the profile makes of its bytes."""
    return all(
        leaf.cid.matches(result.profile.leaf_block(data[leaf.offset : leaf.offset + leaf.length]))
        for leaf in result.leaves
    )


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


@pytest.mark.parametrize("profile", [V1_2025, V0_2015], ids=lambda p: p.name)
@pytest.mark.parametrize(
    "piece", ["1", "7", "65536", "chunk - 1", "chunk", "chunk + 1", "3 * chunk"]
)
def test_chunk_boundaries_do_not_change_the_cid(profile: ImportProfile, piece: str) -> None:
    """Fed in pieces of `piece` bytes, where chunk is the profile's chunk size."""
    chunk = profile.chunk_size
    step = {"1": 1, "7": 7, "65536": 65_536, "chunk - 1": chunk - 1, "chunk": chunk}.get(piece)
    step = step or {"chunk + 1": chunk + 1, "3 * chunk": 3 * chunk}[piece]
    data = b"".join(kubo_random_bytes("chunk-v1-seed", CHUNK_SIZE + 1))
    if step == 1:  # keep the 1-byte feed quick, but still over two leaves
        data = data[:200_000] * (chunk // 200_000 + 1)
    whole = UnixFSImporter(profile)
    whole.update(data)
    pieces = UnixFSImporter(profile)
    for start in range(0, len(data), step):
        pieces.update(memoryview(data)[start : start + step])
    result = pieces.finish()
    assert result == whole.finish()
    assert len(result.leaves) == -(-len(data) // chunk) > 1
    walk_dag(result, data)


def test_two_level_tree_shape_with_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """1025 leaves make a root over a full node and a node holding the last leaf (balanced)."""
    monkeypatch.setattr("node.cid.unixfs.CHUNK_SIZE", 4)
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


def test_import_path_under_v0(tmp_path: Path) -> None:
    path = tmp_path / "track.bin"
    with path.open("wb") as f:
        for chunk in kubo_random_bytes("chunk-v1-seed", CHUNK_SIZE + 1):
            f.write(chunk)
    result = import_path(path, profile=V0_2015)
    data = path.read_bytes()
    whole = UnixFSImporter(V0_2015)
    whole.update(data)
    assert result == whole.finish()
    assert str(result.root).startswith("Qm")
    assert [(leaf.offset, leaf.length) for leaf in result.leaves][-2:] == [
        (3 * 262_144, 262_144),
        (CHUNK_SIZE, 1),
    ]
    walk_dag(result, data)


def test_update_after_finish_is_refused() -> None:
    for profile in (V1_2025, V0_2015):
        importer = UnixFSImporter(profile)
        importer.finish()
        with pytest.raises(RuntimeError):
            importer.update(b"x")


def unixfs_fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message of varints and byte strings."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(message):
        key, pos = read_varint(message, pos)
        value, pos = read_varint(message, pos)
        if key & 7 == 2:
            fields.append((key >> 3, message[pos : pos + value]))
            pos += value
        else:
            assert key & 7 == 0
            fields.append((key >> 3, value))
    return fields


def walk_dag(result: ImportResult, data: bytes) -> None:
    """Check a whole DAG against the file it came from, as a Kubo reader would see it.

    Every block matches its CID, every link's Tsize is the size of the blocks below it, every
    node's UnixFS sizes add up, no node has more than max_links links, all leaves sit at the
    same depth (balanced), and the leaves in order spell the file.
    """
    profile = result.profile
    blocks = {node.cid: node.block for node in result.nodes}
    for leaf in result.leaves:
        blocks[leaf.cid] = profile.leaf_block(data[leaf.offset : leaf.offset + leaf.length])
    leaf_cids = {leaf.cid for leaf in result.leaves}
    spelled = bytearray()
    depths = set()

    def visit(cid: CID, depth: int) -> tuple[int, int]:  # (tsize, filesize)
        block = blocks[cid]
        assert cid.matches(block)
        assert cid.version == profile.cid_version
        if cid in leaf_cids:
            depths.add(depth)
            if profile.raw_leaves:
                assert cid.codec == RAW
                spelled.extend(block)
                return len(block), len(block)
            assert cid.codec == DAG_PB
            node = decode_dag_pb(block)
            assert node.links == []
            assert node.data is not None
            # UnixFS{Type: File, Data: chunk, filesize: len(chunk)}, as boxo writes leaves.
            fields = unixfs_fields(node.data)
            chunk = fields[1][1]
            assert isinstance(chunk, bytes)
            assert fields == [(1, 2), (2, chunk), (3, len(chunk))]
            spelled.extend(chunk)
            return len(block), len(chunk)
        assert cid.codec == DAG_PB
        node = decode_dag_pb(block)
        assert 1 <= len(node.links) <= profile.max_links
        sizes = [visit(link.cid, depth + 1) for link in node.links]
        assert [link.tsize for link in node.links] == [tsize for tsize, _ in sizes]
        filesize = sum(size for _, size in sizes)
        assert node.data == unixfs_file_data(filesize, [size for _, size in sizes])
        return len(block) + sum(tsize for tsize, _ in sizes), filesize

    assert visit(result.root, 0)[1] == len(data) == result.size
    assert len(depths) == 1
    assert bytes(spelled) == data


def test_v0_leaf_is_a_dag_pb_node_wrapping_a_unixfs_file() -> None:
    importer = UnixFSImporter(V0_2015)
    importer.update(b"hello world")
    result = importer.finish()
    assert str(result.root) == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    block = V0_2015.leaf_block(b"hello world")
    assert block == b"\x0a\x11\x08\x02\x12\x0bhello world\x18\x0b"
    assert result.root.matches(block)
    assert result.leaves == [Leaf(result.root, 0, 11)]
    assert result.nodes == []


def test_v0_empty_file_is_the_well_known_empty_unixfs_file() -> None:
    """`ipfs add` of an empty file under CIDv0: a File node with filesize 0 and no Data."""
    result = UnixFSImporter(V0_2015).finish()
    assert str(result.root) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert V0_2015.leaf_block(b"") == b"\x0a\x04\x08\x02\x18\x00"
    assert (result.size, len(result.leaves), result.nodes) == (0, 1, [])


@pytest.mark.parametrize("cid_version", [0, 1])
@pytest.mark.parametrize(
    ("size", "shape"),
    [
        pytest.param(4, [], id="one-leaf"),
        pytest.param(12, 3, id="root-exactly-full"),
        pytest.param(13, [3, 1], id="one-byte-over"),
        pytest.param(36, [3, 3, 3], id="two-levels-exactly-full"),
        pytest.param(37, [[3, 3, 3], [1]], id="three-levels"),
    ],
)
def test_balanced_shape_with_small_wrapped_and_raw_leaves(
    cid_version: int, size: int, shape: Any
) -> None:
    """4-byte chunks, 3 links per node: the shapes Kubo's balanced layout gives."""
    profile = ImportProfile(f"small-v{cid_version}", cid_version, cid_version == 1, 4, 3)
    data = bytes(range(size))
    importer = UnixFSImporter(profile)
    importer.update(data)
    result = importer.finish()
    walk_dag(result, data)
    blocks = {node.cid: node.block for node in result.nodes}

    def shape_of(cid: CID) -> Any:
        links = decode_dag_pb(blocks[cid]).links
        if all(link.cid not in blocks for link in links):
            return len(links)
        return [shape_of(link.cid) for link in links]

    assert (shape_of(result.root) if result.nodes else []) == shape


def test_a_cidv0_profile_cannot_have_raw_leaves() -> None:
    with pytest.raises(ValueError):
        ImportProfile("bad", 0, True, 262_144, 174)
    with pytest.raises(ValueError):
        ImportProfile("bad", 1, True, 4, 1)


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

"""A small, independent reader of CARv1 (https://ipld.io/specs/transport/car/carv1/) for tests."""

from __future__ import annotations

from typing import Any

from node.cid import CID, read_varint


def read_cbor(data: bytes, pos: int) -> tuple[Any, int]:
    """Just enough dag-cbor for a CAR header: maps, arrays, strings, bytes, ints, tag 42."""
    major, info = data[pos] >> 5, data[pos] & 31
    pos += 1
    if info < 24:
        arg = info
    else:
        width = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        arg = int.from_bytes(data[pos : pos + width], "big")
        pos += width
    if major == 0:
        return arg, pos
    if major in (2, 3):
        raw = data[pos : pos + arg]
        return (raw if major == 2 else raw.decode()), pos + arg
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = read_cbor(data, pos)
            items.append(item)
        return items, pos
    if major == 5:
        mapping = {}
        for _ in range(arg):
            key, pos = read_cbor(data, pos)
            mapping[key], pos = read_cbor(data, pos)
        return mapping, pos
    if major == 6 and arg == 42:
        link, pos = read_cbor(data, pos)
        assert link[0] == 0, "a dag-cbor link starts with the identity multibase byte"
        return CID.from_bytes(link[1:]), pos
    raise AssertionError(f"unexpected CBOR major type {major}")


def read_car(car: bytes) -> tuple[dict[str, Any], list[tuple[CID, bytes]]]:
    """A CARv1's header and its blocks in order (not checked against their CIDs)."""
    length, pos = read_varint(car, 0)
    header, end = read_cbor(car, pos)
    assert end == pos + length
    pos = end
    blocks = []
    while pos < len(car):
        length, pos = read_varint(car, pos)
        section = car[pos : pos + length]
        assert len(section) == length, "truncated CAR section"
        pos += length
        if section[0] == 0x12:  # CIDv0: a bare multihash
            cid_len = 34
        else:
            cid_pos = 0
            for _ in range(3):
                _, cid_pos = read_varint(section, cid_pos)
            digest_len, cid_pos = read_varint(section, cid_pos)
            cid_len = cid_pos + digest_len
        blocks.append((CID.from_bytes(section[:cid_len]), section[cid_len:]))
    return header, blocks

"""dag-pb nodes (https://ipld.io/specs/codecs/dag-pb/spec/): encoding, decoding, protobuf fields."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.cid.core import CID, Malformed, read_varint, varint
from node.errors import InvalidCID, VerificationError


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
                raise Malformed(f"unexpected field {number}")
        return PBNode(links, data)
    except (Malformed, ValueError, InvalidCID) as e:
        raise VerificationError(f"dag-pb block: {e}") from None


def _decode_link(body: bytes) -> PBLink:
    cid: CID | None = None
    name = ""
    tsize = 0
    last = 0
    for number, value in _protobuf_fields(body):
        if number <= last:
            raise Malformed("link fields out of order")
        last = number
        if number == 1 and isinstance(value, bytes):
            cid = CID.from_bytes(value)
        elif number == 2 and isinstance(value, bytes):
            name = value.decode()
        elif number == 3 and isinstance(value, int):
            tsize = value
        else:
            raise Malformed(f"unexpected link field {number}")
    if cid is None:
        raise Malformed("link without a Hash")
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
                raise Malformed("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        else:
            raise Malformed(f"unsupported wire type {wire}")

"""The CID type (CIDv0 and CIDv1, raw or dag-pb, sha2-256 or identity) and varints (PROTOCOL §3)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from node.cid.multibase import base32_decode, base32_encode, base58_decode, base58_encode
from node.errors import InvalidCID, VerificationError

# Multicodec and multihash codes (https://github.com/multiformats/multicodec/blob/master/table.csv).
RAW: Final = 0x55
DAG_PB: Final = 0x70
SHA2_256: Final = 0x12
IDENTITY: Final = 0x00

CODECS: Final = {RAW: "raw", DAG_PB: "dag-pb"}
HASHES: Final = {SHA2_256: "sha2-256", IDENTITY: "identity"}

# Kubo refuses identity CIDs with longer digests (boxo/verifcid); so do we.
MAX_IDENTITY_DIGEST: Final = 128
# Longer than any CID accepted above, short enough that decoding stays cheap when fuzzed.
MAX_CID_TEXT: Final = 512


class Malformed(Exception):
    """Internal to node.cid: the reason some bytes are not what they claim to be."""


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
        except Malformed as e:
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
        except (Malformed, ValueError) as e:
            raise InvalidCID(f"{shown}: {e}") from None

    @classmethod
    def _parse(cls, text: str) -> CID:
        if not text:
            raise Malformed("empty")
        if len(text) > MAX_CID_TEXT:
            raise Malformed(f"longer than {MAX_CID_TEXT} characters")
        if text.startswith("Qm"):
            if len(text) != 46:
                raise Malformed("a CIDv0 is 46 base58btc characters")
            return cls._from_v0_bytes(base58_decode(text))
        prefix, rest = text[0], text[1:]
        if prefix == "b":
            return cls._from_v1_bytes(base32_decode(rest))
        if prefix == "z":
            return cls._from_v1_bytes(base58_decode(rest))
        raise Malformed(f"unsupported multibase prefix {prefix!r} (expected Qm, b or z)")

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """The CID in its binary form (a bare sha2-256 multihash for CIDv0); InvalidCID if not."""
        try:
            if len(data) == 34 and data[0] == SHA2_256 and data[1] == 32:
                return cls._from_v0_bytes(bytes(data))
            return cls._from_v1_bytes(bytes(data))
        except (Malformed, ValueError) as e:
            raise InvalidCID(f"binary CID {bytes(data[:40]).hex()}: {e}") from None

    @classmethod
    def _from_v0_bytes(cls, data: bytes) -> CID:
        if len(data) != 34 or data[0] != SHA2_256 or data[1] != 32:
            raise Malformed("a CIDv0 is a 34-byte sha2-256 multihash")
        return cls(0, DAG_PB, SHA2_256, data[2:])

    @classmethod
    def _from_v1_bytes(cls, data: bytes) -> CID:
        version, pos = read_varint(data, 0)
        if version != 1:
            raise Malformed(f"unsupported CID version {version}")
        codec, pos = read_varint(data, pos)
        hash_code, pos = read_varint(data, pos)
        length, pos = read_varint(data, pos)
        digest = data[pos:]
        if len(digest) != length:
            raise Malformed(f"multihash says {length} digest bytes, {len(digest)} follow")
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
        raise Malformed(f"unsupported CID version {version}")
    if codec not in CODECS:
        raise Malformed(f"unsupported codec {codec:#x} (expected raw or dag-pb)")
    if hash_code == SHA2_256:
        if len(digest) != 32:
            raise Malformed(f"a sha2-256 digest is 32 bytes, got {len(digest)}")
    elif hash_code == IDENTITY:
        if len(digest) > MAX_IDENTITY_DIGEST:
            raise Malformed(f"identity digest longer than {MAX_IDENTITY_DIGEST} bytes")
    else:
        raise Malformed(f"unsupported multihash {hash_code:#x} (expected sha2-256 or identity)")
    if version == 0 and (codec != DAG_PB or hash_code != SHA2_256):
        raise Malformed("a CIDv0 is always dag-pb and sha2-256")

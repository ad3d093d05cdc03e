"""The multibase encodings of CIDs and keys: base32 (`b…`) and base58btc (`z…`)."""

from __future__ import annotations

from typing import Final

_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_INDEX: Final = {c: i for i, c in enumerate(_BASE32)}
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX: Final = {c: i for i, c in enumerate(_BASE58)}


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

"""IPNS names of artists' keys: the did:key and the IPNS name of one Ed25519 key, both ways.

An IPNS name is the libp2p peer id of a key: the identity multihash of the protobuf-encoded
public key (`{Type: Ed25519, Data: key}`), written as a CIDv1 with the `libp2p-key` codec
(0x72) in base36 (`k51…`), as Kubo prints it. See
https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md and
https://specs.ipfs.tech/ipns/ipns-record/. Kubo also accepts the same name in base32 (`bafz…`)
or as a bare base58btc peer id (`12D3KooW…`); all three are read here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.cid import base32_decode, base58_decode
from node.errors import UsageError, VerificationError
from node.identity import did_from_public_key, public_key_from_did

LIBP2P_KEY = 0x72
IDENTITY_MULTIHASH = 0x00
_ED25519_PUBLIC_KEY = b"\x08\x01\x12\x20"  # protobuf: field 1 Type = 1 (Ed25519), field 2, 32 bytes
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def ipns_name(did: str) -> str:
    """The IPNS name (base36 `k51…`) of the Ed25519 key a did:key names."""
    return ipns_name_of_key(public_key_from_did(did))


def ipns_name_of_key(key: Ed25519PublicKey) -> str:
    """The IPNS name (base36 `k51…`) of an Ed25519 public key, as Kubo prints it."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public_key = _ED25519_PUBLIC_KEY + raw
    cid = bytes([1, LIBP2P_KEY, IDENTITY_MULTIHASH, len(public_key)]) + public_key
    number = int.from_bytes(cid, "big")
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
    return "k" + digits


def did_from_ipns_name(name: str) -> str:
    """The did:key of the Ed25519 key whose IPNS name is `name` (bare, or /ipns/…).

    UsageError when `name` cannot be read as an IPNS key name at all; VerificationError when it
    names a key that is not Ed25519 (an RSA or secp256k1 peer id), which no Stave artist has.
    """
    text = name.removeprefix("/ipns/").strip("/")
    try:
        multihash = _multihash(text)
    except ValueError as e:
        raise UsageError(f"IPNS name {name!r}: {e}") from e
    if (
        len(multihash) < 2
        or multihash[0] != IDENTITY_MULTIHASH
        or multihash[1] != len(multihash[2:])
    ):
        raise VerificationError(
            f"IPNS name {name!r} does not carry its public key (not an Ed25519 key)"
        )
    public_key = multihash[2:]
    if len(public_key) != 36 or not public_key.startswith(_ED25519_PUBLIC_KEY):
        raise VerificationError(f"IPNS name {name!r} is not the name of an Ed25519 key")
    return did_from_public_key(Ed25519PublicKey.from_public_bytes(public_key[4:]))


def _multihash(text: str) -> bytes:
    """The multihash inside an IPNS key name in any of the forms Kubo prints or accepts."""
    if text.startswith(("12D3Koo", "Qm")):  # a bare base58btc peer id: the multihash itself
        return base58_decode(text)
    if text.startswith("k"):
        if not text[1:] or any(c not in _BASE36 for c in text[1:].lower()):
            raise ValueError("not base36")
        number = int(text[1:], 36)
        cid = number.to_bytes((number.bit_length() + 7) // 8, "big")
    elif text.startswith("b"):
        cid = base32_decode(text[1:].lower())
    else:
        raise ValueError("not a base36 (k…), base32 (b…) or base58 (12D3Koo…) key name")
    if len(cid) < 3 or cid[0] != 1 or cid[1] != LIBP2P_KEY:
        raise ValueError("not a CIDv1 with the libp2p-key codec")
    return cid[2:]

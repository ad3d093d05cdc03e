"""The artist's Ed25519 key on disk and its `did:key` (PROTOCOL §1)."""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from node.cid import base58_decode, base58_encode
from node.errors import IdentityError, VerificationError, excerpt

ED25519_PUB_PREFIX = b"\xed\x01"  # multicodec ed25519-pub as a varint
ED25519_PRIV_PREFIX = b"\x80\x26"  # multicodec ed25519-priv as a varint
# `did:key:z` and 48 base58btc characters; a little slack, never thousands.
MAX_DID_LENGTH = 64


def did_from_public_key(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "did:key:z" + base58_encode(ED25519_PUB_PREFIX + raw)


def public_key_from_did(did: str) -> Ed25519PublicKey:
    """The Ed25519 key a `did:key:z6Mk…` names; VerificationError for anything else."""
    if not isinstance(did, str):
        raise VerificationError(f"{excerpt(did)} is not an Ed25519 did:key")
    return _public_key_from_did(did)


@functools.lru_cache(maxsize=4096)  # followers check the same few artists' keys over and over
def _public_key_from_did(did: str) -> Ed25519PublicKey:
    if not did.startswith("did:key:z"):
        raise VerificationError(f"{excerpt(did)} is not an Ed25519 did:key")
    if len(did) > MAX_DID_LENGTH:  # before decoding, whose cost grows with the square
        raise VerificationError(f"{excerpt(did)}: too long for an Ed25519 did:key")
    try:
        decoded = base58_decode(did[len("did:key:z") :])
    except ValueError as e:
        raise VerificationError(f"{did!r} is not an Ed25519 did:key ({e})") from e
    if len(decoded) != 34 or not decoded.startswith(ED25519_PUB_PREFIX):
        raise VerificationError(f"{did!r} is not an Ed25519 did:key")
    return Ed25519PublicKey.from_public_bytes(decoded[2:])


def verification_method(did: str) -> str:
    """The key's verification method id: the multibase value repeated as a fragment."""
    return f"{did}#{did[len('did:key:') :]}"


@dataclass(frozen=True)
class Identity:
    """An artist's signing key and the did:key it is known by."""

    private_key: Ed25519PrivateKey

    @property
    def did(self) -> str:
        return did_from_public_key(self.private_key.public_key())

    @property
    def verification_method(self) -> str:
        return verification_method(self.did)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def pem(self, passphrase: str | None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with `passphrase` unless it is None or empty."""
        return private_key_pem(self.private_key, passphrase)

    def pem_cleartext(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM, for an explicit export only (Kubo key import)."""
        return self.pem(None)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())


def verify_signature(did: str, signature: bytes, message: bytes) -> None:
    """Raise VerificationError unless `signature` is `did`'s Ed25519 signature of `message`."""
    key = public_key_from_did(did)
    try:
        key.verify(signature, message)
    except InvalidSignature as e:
        raise VerificationError("signature does not verify against " + did) from e


def create_key_file(path: Path, passphrase: str | None) -> Identity:
    """Write a new key as PKCS#8 PEM with mode 0600; never overwrite an existing one."""
    identity = Identity.generate()
    pem = identity.pem(passphrase)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise IdentityError(f"{path}: a key already exists; refusing to overwrite it") from e
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return identity


def load_key_file(path: Path, passphrase: str | None) -> Identity:
    """Read the artist's key; IdentityError with the reason when it cannot be used.

    A key file that group or others may read or write is refused before it is read.
    """
    try:
        key = read_private_key(path, passphrase)
    except FileNotFoundError as e:
        raise IdentityError(f"{path}: no key; run `stave init` first") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path}: not an Ed25519 key")
    return Identity(key)


def private_key_pem(key: PrivateKeyTypes, passphrase: str | None) -> bytes:
    """A private key as PKCS#8 PEM, the way every key of the node is kept: encrypted with
    `passphrase` unless it is None or empty."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def read_private_key(path: Path, passphrase: str | None) -> PrivateKeyTypes:
    """A private key from a PKCS#8 PEM file, the way every key of the node is kept: mode 0600
    (anything group or others may read or write is refused before it is read), encrypted with
    `passphrase` when it was written with one. IdentityError with the reason when it cannot be
    used; FileNotFoundError when there is no file, for the caller to word."""
    try:
        with path.open("rb") as key_file:
            mode = stat.S_IMODE(os.fstat(key_file.fileno()).st_mode)
            if mode & 0o066:
                raise IdentityError(
                    f"{path}: mode {mode:04o} lets group or others read or write the key;"
                    f" run `chmod 600 {path}`"
                )
            pem = key_file.read()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise IdentityError(f"{path}: cannot read the key ({e.strerror})") from e
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise IdentityError(f"{path}: the key is encrypted; set STAVE_KEY_PASSPHRASE")
    try:
        secret = passphrase.encode() if encrypted and passphrase else None
        return serialization.load_pem_private_key(pem, secret)
    except (ValueError, TypeError) as e:
        reason = "wrong passphrase or damaged key" if encrypted else "not a PKCS#8 PEM key"
        raise IdentityError(f"{path}: {reason}") from e

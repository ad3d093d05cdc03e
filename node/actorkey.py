"""The node's ActivityPub actor key: RSA-2048 for HTTP Signatures, beside the artist's key.

Fediverse servers verify HTTP signatures with RSA (draft-cavage `rsa-sha256`, RFC 9421
`rsa-v1_5-sha256`), which the artist's Ed25519 key cannot make, so the actor has a key of its
own. It signs requests only, never a track or a feed, and `stave key rotate` leaves it alone.

It is kept as the artist's key is (node/identity.py): PKCS#8 PEM in `actor-key.pem`, mode
0600, encrypted with $STAVE_KEY_PASSPHRASE when that is set. It is made by `stave init` and,
for a node made before it existed (or restored from an archive without it), the first time
the node is opened: written beside its final name and linked into place, so a crash leaves
no half-written key and two processes making it at once end up with the same one.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from node.errors import IdentityError
from node.identity import private_key_pem, read_private_key

ACTOR_KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class ActorKey:
    """The actor's RSA key: it signs HTTP requests; its public half goes in `publicKey`."""

    private_key: rsa.RSAPrivateKey

    @property
    def public_key_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM, the actor's `publicKeyPem`."""
        public = self.private_key.public_key()
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return public.public_bytes(serialization.Encoding.PEM, spki).decode("ascii")

    def sign(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 of `message` (`rsa-sha256`, `rsa-v1_5-sha256`)."""
        return self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    def pem(self, passphrase: str | None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with `passphrase` unless it is None or empty."""
        return private_key_pem(self.private_key, passphrase)

    @classmethod
    def generate(cls) -> ActorKey:
        return cls(rsa.generate_private_key(PUBLIC_EXPONENT, ACTOR_KEY_BITS))


def as_actor_key(key: object, what: str) -> ActorKey:
    """`key` as the actor key; IdentityError, naming `what`, unless it is RSA of 2048 bits."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise IdentityError(f"{what}: not an RSA key")
    if key.key_size != ACTOR_KEY_BITS:
        raise IdentityError(f"{what}: an RSA key of {key.key_size} bits, not {ACTOR_KEY_BITS}")
    return ActorKey(key)


def load_actor_key_file(path: Path, passphrase: str | None) -> ActorKey:
    """Read the actor key; IdentityError with the reason when it cannot be used."""
    try:
        key = read_private_key(path, passphrase)
    except FileNotFoundError as e:
        raise IdentityError(f"{path}: no actor key; open the node once to make it") from e
    return as_actor_key(key, str(path))


def write_actor_key_file(path: Path, key: ActorKey, passphrase: str | None) -> bool:
    """Put `key` at `path` (mode 0600) unless a key is already there; True if it was put.

    The PEM is written and synced under a temporary name, then hard-linked to `path`, which
    fails rather than replace a key another process put there first.
    """
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.pem(passphrase))
            out.flush()
            os.fsync(out.fileno())
        os.link(partial, path)
    except FileExistsError:
        return False
    except OSError as e:
        raise IdentityError(f"{path}: cannot write the actor key ({e.strerror or e})") from e
    finally:
        partial.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def ensure_actor_key_file(path: Path, passphrase: str | None) -> bool:
    """Make the actor key at `path` if there is none; True if it was made now."""
    if path.exists():
        return False
    return write_actor_key_file(path, ActorKey.generate(), passphrase)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

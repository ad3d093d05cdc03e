"""Key rotation statements: the old key naming the artist's next did (docs/protocol-extensions.md).

A rotation statement is a signed document
`{"type": "StaveKeyRotation", "artist": <old did>, "next": <new did>, "at": <RFC 3339>, "proof"}`
whose proof is by the *old* key. It is the only thing that lets a follower accept feeds signed
by a key other than the one it followed: the follower fetches it from the artist's origin,
verifies it against the did it followed, and from then on expects `next`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from node.errors import IdentityError, VerificationError, excerpt
from node.feed import format_timestamp, parse_json, parse_timestamp
from node.identity import Identity, public_key_from_did
from node.signing import sign_document, verify_document

ROTATION_TYPE = "StaveKeyRotation"
ROTATION_PATH = ".well-known/stave-rotation.json"


def build_rotation(old: Identity, new_did: str, at: datetime | None = None) -> dict[str, Any]:
    """The rotation statement from `old` to `new_did`, signed by `old`."""
    if new_did == old.did:
        raise IdentityError(f"{new_did}: the next key must differ from the current one")
    try:
        public_key_from_did(new_did)
    except VerificationError as e:
        raise IdentityError(f"{excerpt(new_did)}: the next key is not an Ed25519 did:key") from e
    moment = format_timestamp(at or datetime.now(UTC))
    document = {"type": ROTATION_TYPE, "artist": old.did, "next": new_did, "at": moment}
    return sign_document(document, old, created=moment)


def verify_rotation(body: bytes | Any, followed_did: str) -> str:
    """The next did named by a rotation statement signed by `followed_did`; else
    VerificationError saying why. `body` is the statement's bytes or its parsed JSON."""
    document = parse_json(body, "rotation statement") if isinstance(body, bytes) else body
    if not isinstance(document, dict):
        raise VerificationError("rotation statement is not a JSON object")
    if document.get("type") != ROTATION_TYPE:
        raise VerificationError(f"type {excerpt(document.get('type'))} is not {ROTATION_TYPE}")
    if document.get("artist") != followed_did:
        raise VerificationError(
            f"rotation statement is for {excerpt(document.get('artist'))}, not {followed_did}"
        )
    verify_document(document, followed_did)
    parse_timestamp(document.get("at"), "rotation time")
    following = document.get("next")
    if not isinstance(following, str) or following == followed_did:
        raise VerificationError(f"next did {excerpt(following)} is not a new did")
    public_key_from_did(following)  # VerificationError for anything but an Ed25519 did:key
    return following

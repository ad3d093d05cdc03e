"""Key rotation statements: the old key naming the artist's next did (docs/protocol-extensions.md).

A rotation statement is a signed document
`{"type": "StaveKeyRotation", "artist": <old did>, "next": <new did>, "at": <RFC 3339>, "proof"}`
whose proof is by the *old* key. It is the only thing that lets a follower accept feeds signed
by a key other than the one it followed: the follower fetches it from the artist's origin,
verifies it against the did it followed, and from then on expects `next`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from node.errors import IdentityError, VerificationError, excerpt
from node.feed import (
    FollowState,
    claimed_artist,
    format_timestamp,
    judge_feed,
    parse_json,
    parse_timestamp,
)
from node.identity import Identity, public_key_from_did
from node.signing import require_value, sign_document, verify_document

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
    require_value(document.get("type"), ROTATION_TYPE, "type")
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


MAX_CHAIN = 32
MAX_ROTATION_BYTES = 64 * 1024


def verify_rotation_chain(
    body: bytes | Any, followed_did: str, target_did: str
) -> list[dict[str, Any]]:
    """The statements that lead from `followed_did` to `target_did`, each verified against the
    did before it; else VerificationError saying why.

    `body` is what `/.well-known/stave-rotation.json` serves (its bytes or parsed JSON): an array
    of statements, oldest first, or one statement. The walk starts at the statement signed for
    `followed_did` (a follower may have followed after earlier rotations), each next statement
    must be for the previous one's `next`, and it ends at the first that names `target_did`.
    """
    document = parse_json(body, "rotation statements") if isinstance(body, bytes) else body
    statements = [document] if isinstance(document, dict) else document
    if not isinstance(statements, list):
        raise VerificationError("rotation statements are not a JSON array or object")
    if len(statements) > MAX_CHAIN:
        raise VerificationError(
            f"{len(statements)} rotation statements, more than the {MAX_CHAIN} a follower reads"
        )
    start = next(
        (
            index
            for index, statement in enumerate(statements)
            if isinstance(statement, dict) and statement.get("artist") == followed_did
        ),
        None,
    )
    if start is None:
        raise VerificationError(f"no rotation statement is for {followed_did}")
    used: list[dict[str, Any]] = []
    current = followed_did
    for number, statement in enumerate(statements[start:], start=start + 1):
        if current == target_did:
            break
        claimed = statement.get("artist") if isinstance(statement, dict) else None
        if claimed != current:
            raise VerificationError(
                f"rotation chain broken at statement {number}: it is for {excerpt(claimed)},"
                f" not {current}"
            )
        try:
            current = verify_rotation(statement, current)
        except VerificationError as e:
            raise VerificationError(f"rotation statement {number}: {e}") from e
        used.append(statement)
    if current != target_did:
        raise VerificationError(
            f"rotation chain from {followed_did} ends at {current}, not {target_did}"
        )
    return used


def verify_rotated(
    body: bytes,
    statements: bytes,
    state: FollowState,
    *,
    max_bytes: int,
    now: datetime | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A feed signed by a key other than the followed one, with the rotation statements that
    lead to it: the feed and the statements used, if a follower in `state` may accept it; else
    VerificationError saying why.

    The statements must lead from the followed did to the feed's `artist`, and the feed must
    then pass `judge_feed` against that did, the accepted sequence carrying across.
    """
    target = claimed_artist(body, max_bytes)
    if target is None or target == state.artist:
        raise VerificationError("feed names no other artist to rotate to")
    try:
        chain = verify_rotation_chain(statements, state.artist, target)
    except VerificationError as e:
        raise VerificationError(
            f"no valid rotation statement leads from {state.artist} to {target}: {e}"
        ) from e
    try:
        feed = judge_feed(body, replace(state, artist=target), max_bytes=max_bytes, now=now)
    except VerificationError as e:
        raise VerificationError(f"feed of the rotated key {target}: {e}") from e
    return feed, chain

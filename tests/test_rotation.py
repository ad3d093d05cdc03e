"""Key rotation statements (docs/protocol-extensions.md): made by the old key, naming the next
did, and refused whole when anything about them is off."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest

from node.errors import IdentityError, VerificationError
from node.identity import Identity
from node.rotation import ROTATION_TYPE, build_rotation, verify_rotation, verify_rotation_chain
from node.signing import sign_document

AT = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def test_a_statement_by_the_followed_key_names_the_next_did() -> None:
    old, new = Identity.generate(), Identity.generate()
    statement = build_rotation(old, new.did, AT)
    assert statement["type"] == ROTATION_TYPE
    assert statement["artist"] == old.did and statement["next"] == new.did
    assert statement["at"] == "2026-11-26T18:00:00Z"
    assert statement["proof"]["verificationMethod"].startswith(old.did + "#")
    assert verify_rotation(json.dumps(statement).encode(), old.did) == new.did
    assert verify_rotation(statement, old.did) == new.did


def resigned(statement: dict[str, Any], by: Identity, **changes: Any) -> dict[str, Any]:
    return sign_document({**statement, **changes}, by)


@pytest.mark.parametrize(
    "case",
    [
        "signed by the new key",
        "signed by a stranger for the followed did",
        "for another artist",
        "next changed after signing",
        "next is the same did",
        "next is not a did:key",
        "wrong type",
        "no proof",
        "no time",
        "not JSON",
    ],
)
def test_statements_that_do_not_come_from_the_followed_key_are_refused(case: str) -> None:
    old, new, stranger = Identity.generate(), Identity.generate(), Identity.generate()
    good = build_rotation(old, new.did, AT)
    body: Any = {
        "signed by the new key": resigned(good, new),
        "signed by a stranger for the followed did": resigned(good, stranger),
        "for another artist": resigned(good, stranger, artist=stranger.did),
        "next changed after signing": {**good, "next": stranger.did},
        "next is the same did": resigned(good, old, next=old.did),
        "next is not a did:key": resigned(good, old, next="did:web:example.com"),
        "wrong type": resigned(good, old, type="StaveFeed"),
        "no proof": {k: v for k, v in good.items() if k != "proof"},
        "no time": resigned({k: v for k, v in good.items() if k != "at"}, old),
        "not JSON": b"\xff{",
    }[case]
    with pytest.raises(VerificationError):
        verify_rotation(body, old.did)


def test_a_statement_cannot_name_the_old_key_or_a_non_key() -> None:
    old = Identity.generate()
    with pytest.raises(IdentityError):
        build_rotation(old, old.did, AT)
    with pytest.raises(IdentityError):
        build_rotation(old, "did:key:zNotAKey", AT)


# --- chains of statements (what /.well-known/stave-rotation.json serves) ----------------------


def chain_of(identities: list[Identity]) -> list[dict[str, Any]]:
    """Statements from each identity to the next, oldest first, each signed by the one before."""
    return [build_rotation(old, new.did, AT) for old, new in pairwise(identities)]


def test_a_chain_of_one_leads_to_the_next_did() -> None:
    old, new = Identity.generate(), Identity.generate()
    statement = build_rotation(old, new.did, AT)
    assert verify_rotation_chain(json.dumps([statement]).encode(), old.did, new.did) == [statement]
    assert verify_rotation_chain(json.dumps(statement).encode(), old.did, new.did) == [statement]


def test_a_chain_of_three_is_walked_from_the_followed_did() -> None:
    keys = [Identity.generate() for _ in range(4)]
    chain = chain_of(keys)
    body = json.dumps(chain).encode()
    assert verify_rotation_chain(body, keys[0].did, keys[3].did) == chain
    # A follower that followed after the first rotation starts in the middle.
    assert verify_rotation_chain(body, keys[1].did, keys[3].did) == chain[1:]
    # The walk stops at the feed's artist, even when the chain goes on.
    assert verify_rotation_chain(body, keys[0].did, keys[2].did) == chain[:2]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no statement for the followed did", "no rotation statement is for"),
        ("broken link", "rotation chain broken at statement 2"),
        ("forged link signed by the new key", "rotation statement 2: proof is by"),
        ("does not reach the target", "ends at"),
        ("too long", "more than the 32"),
        ("not an array or object", "not a JSON array or object"),
        ("not JSON", "not valid UTF-8 JSON"),
        ("a link that is not an object", "rotation chain broken at statement 2"),
    ],
)
def test_chains_that_do_not_lead_from_the_followed_did_to_the_target_are_refused(
    case: str, reason: str
) -> None:
    keys = [Identity.generate() for _ in range(4)]
    stranger = Identity.generate()
    chain = chain_of(keys)
    target = keys[3].did
    body: Any = {
        "no statement for the followed did": chain_of([stranger, keys[3]]),
        "broken link": [chain[0], build_rotation(stranger, keys[3].did, AT)],
        "forged link signed by the new key": [
            chain[0],
            resigned(build_rotation(keys[1], keys[3].did, AT), keys[3]),
        ],
        "does not reach the target": chain[:2],
        "too long": chain_of([keys[0]] + [Identity.generate() for _ in range(32)] + [keys[3]]),
        "not an array or object": "statements",
        "not JSON": b"[{",
        "a link that is not an object": [chain[0], "next"],
    }[case]
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    with pytest.raises(VerificationError) as refused:
        verify_rotation_chain(body, keys[0].did, target)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "at",
    [
        "20261126T180000Z",  # ISO 8601 basic format
        "2026-W48-4T18:00:00Z",  # ISO 8601 week date
        "2026-11-26T18:00:00",  # no offset
        "2026-11-26 18:00:00Z",  # a space for the T
        "2026-11-26T18:00Z",  # no seconds
        "2026-13-26T18:00:00Z",  # no such month
    ],
)
def test_a_statement_time_must_be_an_rfc3339_date_time(at: str) -> None:
    old, new = Identity.generate(), Identity.generate()
    statement = resigned(build_rotation(old, new.did, AT), old, at=at)
    with pytest.raises(VerificationError, match="not an RFC 3339 timestamp"):
        verify_rotation(statement, old.did)


@pytest.mark.parametrize(
    "at", ["2026-11-26T18:00:00Z", "2026-11-26t18:00:00.25z", "2026-11-26T19:30:00+01:30"]
)
def test_every_rfc3339_form_of_a_time_is_taken(at: str) -> None:
    old, new = Identity.generate(), Identity.generate()
    statement = resigned(build_rotation(old, new.did, AT), old, at=at)
    assert verify_rotation(statement, old.did) == new.did

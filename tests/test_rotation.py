"""Key rotation statements (docs/protocol-extensions.md): made by the old key, naming the next
did, and refused whole when anything about them is off."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from node.errors import IdentityError, VerificationError
from node.identity import Identity
from node.rotation import ROTATION_TYPE, build_rotation, verify_rotation
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

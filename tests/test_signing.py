"""eddsa-jcs-2022 against the W3C Recommendation's published vector, and against tampering."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import VerificationError
from node.identity import (
    ED25519_PRIV_PREFIX,
    Identity,
    b58decode,
    b58encode,
    did_from_public_key,
    public_key_from_did,
    verification_method,
)
from node.signing import canonicalize, hash_data, sign_document, verify_document

# Data Integrity EdDSA Cryptosuites v1.0, Appendix A.2 (eddsa-jcs-2022 test vectors).
W3C_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
W3C_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
W3C_CONTEXT = [
    "https://www.w3.org/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/examples/v2",
]
W3C_DOCUMENT: dict[str, Any] = {
    "@context": W3C_CONTEXT,
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
W3C_PROOF_CONFIG: dict[str, Any] = {
    "type": "DataIntegrityProof",
    "cryptosuite": "eddsa-jcs-2022",
    "created": "2023-02-24T23:36:38Z",
    "verificationMethod": "https://vc.example/issuers/5678#" + W3C_PUBLIC,
    "proofPurpose": "assertionMethod",
    "@context": W3C_CONTEXT,
}
# The Recommendation's transformed-document hash; its proof-config hash is over the config above,
# which (per the final spec) carries the document's @context.
W3C_DOCUMENT_HASH = "59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19"
W3C_PROOF_VALUE = (
    "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4"
)


def w3c_identity() -> Identity:
    secret = b58decode(W3C_SECRET[1:])
    assert secret.startswith(ED25519_PRIV_PREFIX)
    return Identity(Ed25519PrivateKey.from_private_bytes(secret[2:]))


def test_w3c_key_pair_is_the_published_did() -> None:
    assert w3c_identity().did == "did:key:" + W3C_PUBLIC


def test_w3c_document_hash() -> None:
    assert hash_data(W3C_PROOF_CONFIG, W3C_DOCUMENT)[32:].hex() == W3C_DOCUMENT_HASH


def test_w3c_signature_reproduced_and_verifies() -> None:
    identity = w3c_identity()
    combined = hash_data(W3C_PROOF_CONFIG, W3C_DOCUMENT)
    signature = identity.sign(combined)
    assert "z" + b58encode(signature) == W3C_PROOF_VALUE
    public_key_from_did("did:key:" + W3C_PUBLIC).verify(b58decode(W3C_PROOF_VALUE[1:]), combined)


def test_did_key_form() -> None:
    identity = Identity.generate()
    assert identity.did.startswith("did:key:z6Mk")
    assert did_from_public_key(public_key_from_did(identity.did)) == identity.did
    assert verification_method(identity.did) == f"{identity.did}#{identity.did[8:]}"


@pytest.mark.parametrize(
    "bad", ["did:web:example", "did:key:zQ3s", "did:key:z!!!", "did:key:z6MkrJVna", 42]
)
def test_not_an_ed25519_did(bad: Any) -> None:
    with pytest.raises(VerificationError):
        public_key_from_did(bad)


@pytest.fixture
def signed() -> tuple[Identity, dict[str, Any]]:
    identity = Identity.generate()
    document = {
        "type": "StaveTrack",
        "artist": identity.did,
        "title": "Tone in A",
        "revision": 1,
        "durationSeconds": 2.5,
        "terms": {"dataMining": {"aiTraining": "notAllowed"}},
    }
    return identity, sign_document(document, identity, created="2026-11-26T16:00:00Z")


def test_sign_and_verify_round_trip(signed: tuple[Identity, dict[str, Any]]) -> None:
    identity, document = signed
    proof = document["proof"]
    assert proof["type"] == "DataIntegrityProof"
    assert proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["verificationMethod"] == identity.verification_method
    verify_document(document, identity.did)
    # member order and whitespace do not matter to JCS
    reordered = json.loads(json.dumps(dict(reversed(list(document.items())))))
    verify_document(reordered, identity.did)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*prefix, k))]
    return [prefix]


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _tampered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("A" if not value.endswith("A") else "B")
    return "changed"


def test_every_field_is_bound(signed: tuple[Identity, dict[str, Any]]) -> None:
    identity, document = signed
    paths = _paths(document)
    assert len(paths) >= 10
    for path in paths:
        tampered = copy.deepcopy(document)
        _set(tampered, path, _tampered(document_value(document, path)))
        with pytest.raises(VerificationError):
            verify_document(tampered, identity.did)


def document_value(document: dict[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = document
    for key in path:
        value = value[key]
    return value


def test_added_member_is_rejected(signed: tuple[Identity, dict[str, Any]]) -> None:
    identity, document = signed
    with pytest.raises(VerificationError, match="does not verify"):
        verify_document({**document, "album": "extra"}, identity.did)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("proof"), "no proof"),
        (lambda d: d["proof"].update(type="Ed25519Signature2020"), "proof type"),
        (lambda d: d["proof"].update(cryptosuite="eddsa-rdfc-2022"), "cryptosuite"),
        (lambda d: d["proof"].update(proofPurpose="authentication"), "proof purpose"),
        (lambda d: d["proof"].update(proofValue="u" + d["proof"]["proofValue"][1:]), "multibase"),
        (lambda d: d["proof"].update(proofValue="z0OIl"), "base58btc"),
        (lambda d: d["proof"].update(proofValue="z2222"), "64-byte"),
        (lambda d: d.update(revision=2**53), "outside"),
        (lambda d: d.update(durationSeconds=float("inf")), "non-finite"),
    ],
    ids=[
        "missing",
        "type",
        "cryptosuite",
        "purpose",
        "multibase",
        "alphabet",
        "length",
        "big-int",
        "infinity",
    ],
)
def test_rejections(signed: tuple[Identity, dict[str, Any]], change: Any, reason: str) -> None:
    identity, document = signed
    change(document)
    with pytest.raises(VerificationError, match=reason):
        verify_document(document, identity.did)


def test_signed_by_another_key(signed: tuple[Identity, dict[str, Any]]) -> None:
    _, document = signed
    other = Identity.generate()
    with pytest.raises(VerificationError, match="not did:key"):
        verify_document(document, other.did)
    forged = sign_document(document, other)
    with pytest.raises(VerificationError):
        verify_document(forged, document["artist"])


def test_canonical_form_is_rfc8785() -> None:
    # RFC 8785 §3.2.2/3.2.3: sorted by UTF-16 code units, shortest numbers, no whitespace.
    assert canonicalize({"b": [1.0, 1e21, "€"], "a": None, "\u20ac": True, "1": False}) == (
        '{"1":false,"a":null,"b":[1,1e+21,"€"],"€":true}'.encode()
    )


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0001, 1e-05, 1e16, 1e21, 2.0, -0.0, 0.5, 183.4, 1e15 + 0.5])
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(_json_values)
def test_canonical_form_matches_rfc8785_everywhere(value: Any) -> None:
    try:
        expected = bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError:
        with pytest.raises(VerificationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"\U0001f600": 1, "\ufb33": 2, "a": 3},  # UTF-16 order differs from code-point order
        {"x": "\ud800"},  # a lone surrogate has no JCS form
        {"t": '\x00\x1f\x7f\u2028"\\/'},
        [1e-07, 1e-4, 123456789012345.6, 9007199254740991.0],
    ],
    ids=["astral-keys", "lone-surrogate", "escapes", "number-forms"],
)
def test_canonical_form_edge_cases(value: Any) -> None:
    try:
        expected = bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError:
        with pytest.raises(VerificationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected

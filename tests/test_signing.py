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

from node.cid import base58_decode as b58decode
from node.cid import base58_encode as b58encode
from node.errors import VerificationError
from node.identity import (
    ED25519_PRIV_PREFIX,
    Identity,
    did_from_public_key,
    public_key_from_did,
    verification_method,
)
from node.signing import (
    MAX_DEPTH,
    _canonical,
    _check_jcs_domain,
    canonicalize,
    hash_data,
    sign_document,
    verify_document,
)

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


def assert_canonical_as_rfc8785(value: Any) -> None:
    """`canonicalize` gives the reference implementation's bytes, or refuses what it refuses."""
    try:
        expected = bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError:
        with pytest.raises(VerificationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@settings(max_examples=600, deadline=None, derandomize=True)
@given(_json_values)
def test_canonical_form_matches_rfc8785_everywhere(value: Any) -> None:
    assert_canonical_as_rfc8785(value)


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
    assert_canonical_as_rfc8785(value)


# --- one domain walk per feed: a value inside a document found simple is simple -------------


def _inner_values(value: Any) -> list[Any]:
    """`value` and every object and array inside it."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            found.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return found


_hostile_scalars = _json_scalars | st.sampled_from(
    [
        2**53 - 1,
        -(2**53) + 1,
        2**53,  # outside JCS's range: refused
        -(2**63),
        1e16,
        9.999999999999999e15,
        5e-324,
        1.7976931348623157e308,
        "\\u0000 \u0000\x7f\u2028\u2029\ufeff",
        "\U0001f600\ud7ff\ue000\uffff",
        "\ud83d",  # a lone surrogate: refused
        '"\\"',
    ]
)
_hostile_keys = st.text(max_size=6) | st.sampled_from(["\U0001f600", "\ufb33", "proof", "", "\\u"])
_hostile_values = st.recursive(
    _hostile_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_hostile_keys, children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(_hostile_values)
def test_every_value_inside_a_simple_document_is_canonicalised_as_rfc8785(value: Any) -> None:
    """What `verify_document(..., within_simple=True)` relies on: when the domain walk says a
    document is simple, json's bytes are the RFC 8785 bytes of every value inside it too."""
    try:
        simple = _check_jcs_domain(value)
    except VerificationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            rfc8785.dumps(value)
        return
    for inner in _inner_values(value):
        try:
            expected = bytes(rfc8785.dumps(inner))
        except rfc8785.CanonicalizationError:  # a lone surrogate: the encoder says so too
            with pytest.raises(VerificationError):
                _canonical(inner, simple)
            continue
        assert _canonical(inner, simple) == expected
        assert canonicalize(inner) == expected


def _nested(depth: int, leaf: Any = "leaf") -> Any:
    """`leaf` at `depth`, inside objects and arrays by turns."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (_nested(MAX_DEPTH), None),
        (_nested(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
        (_nested(MAX_DEPTH, []), None),
        (_nested(MAX_DEPTH + 1, {}), f"deeper than {MAX_DEPTH}"),
        ({"a": [{"b": [2**53]}]}, "outside"),
        ({"a": [{"b": [float("inf")]}]}, "non-finite"),
        ({"a": [{1: "x"}]}, "non-string member name"),
        ({"a": [{"b": {1, 2}}]}, "set, not JSON"),
        ({"a": ({"b": 1.5},)}, None),
        ([True, False, None, 0, -0.0, 1.5], None),
    ],
    ids=[
        "at-max-depth",
        "past-max-depth",
        "empty-at-max-depth",
        "empty-past-max-depth",
        "big-integer-deep",
        "infinity-deep",
        "integer-key-deep",
        "set-deep",
        "tuple",
        "scalars",
    ],
)
def test_domain_walk_bounds(value: Any, refused: str | None) -> None:
    if refused is not None:
        with pytest.raises(VerificationError, match=refused):
            canonicalize(value)
        return
    assert canonicalize(value) == bytes(rfc8785.dumps(value))


@pytest.mark.parametrize(
    ("member", "simple"),
    [
        ({"title": "Plain \u00e9\u4e2d \U0001f3b8", "n": 3, "d": 183.4}, True),
        ({"\U0001f3b8": "an astral member name"}, False),
        ({"duration": 180.0}, False),
        ({"big": 1e16}, False),
        ({"small": 1e-05}, False),
    ],
    ids=["simple", "astral-key", "integral-float", "big-float", "small-float"],
)
def test_signed_documents_inside_a_signed_document(member: dict[str, Any], simple: bool) -> None:
    """A manifest in a feed, checked with the feed's answer, verifies exactly as alone — and a
    change to it is still caught — whether or not the feed is simple."""
    identity = Identity.generate()
    inner = [
        sign_document({"artist": identity.did, "n": n, "extra": member}, identity) for n in range(3)
    ]
    outer = sign_document({"artist": identity.did, "tracks": inner, "x": "\\u00e9"}, identity)
    assert verify_document(outer, identity.did) is simple
    for manifest in outer["tracks"]:
        assert verify_document(manifest, identity.did) is simple
        verify_document(manifest, identity.did, within_simple=simple)
        changed = copy.deepcopy(manifest)
        changed["n"] = 7
        with pytest.raises(VerificationError, match="signature"):
            verify_document(changed, identity.did, within_simple=simple)
    # The feed's proof covers its manifests' proofs: another valid manifest swapped in fails.
    swapped = copy.deepcopy(outer)
    swapped["tracks"][0] = sign_document(
        swapped["tracks"][0], identity, created="2001-01-01T00:00:00Z"
    )
    verify_document(swapped["tracks"][0], identity.did, within_simple=simple)
    with pytest.raises(VerificationError, match="signature"):
        verify_document(swapped, identity.did)

"""JCS (RFC 8785) and `eddsa-jcs-2022` Data Integrity proofs (PROTOCOL §2).

W3C Recommendation "Data Integrity EdDSA Cryptosuites v1.0", section 3.3 (eddsa-jcs-2022).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import rfc8785

from node.cid import base58_decode, base58_encode
from node.errors import VerificationError, excerpt
from node.identity import Identity, verify_signature
from node.identity import verification_method as method_of

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_PURPOSE = "assertionMethod"
MAX_SAFE_INTEGER = 2**53 - 1
# Deeper than any Stave document, shallow enough that no JCS step can exhaust Python's stack.
MAX_DEPTH = 256
# A 64-byte signature is at most 88 base58btc characters; anything longer is refused before
# decoding, whose cost grows with the square of the length.
MAX_PROOF_VALUE = 1 + 88


def canonicalize(value: Any) -> bytes:
    """The JCS form of a JSON value; VerificationError for values JCS cannot represent."""
    return _canonical(value, _check_jcs_domain(value))


def _canonical(value: Any, simple: bool) -> bytes:
    """The JCS form of `value`, already checked by `_check_jcs_domain`, which said `simple`."""
    if simple:
        # For these values RFC 8785 and Python's sorted, compact JSON are the same bytes
        # (see _check_jcs_domain); json's C encoder is many times faster than rfc8785.
        try:
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except (UnicodeEncodeError, TypeError, ValueError):
            pass  # a lone surrogate, a mapping that is not a dict: rfc8785 says why
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise VerificationError(f"document has no JCS form ({e})") from e
    except RecursionError as e:
        raise VerificationError("document nests too deeply to canonicalize") from e


def _check_jcs_domain(value: Any) -> bool:
    """Raise for values outside JCS's domain; True when json.dumps gives the JCS bytes.

    It does unless a member name has a character outside the Basic Multilingual Plane (JCS
    sorts by UTF-16 code units, Python by code points) or a float is integral or outside
    [1e-4, 1e16) (ECMAScript prints those without ".0" or in another exponent form than repr).
    Strings escape alike: quote, backslash and control characters only, in lowercase hex.
    The members of every value are always all checked, whatever the answer: the answer for a
    document holds for each value inside it too.
    """
    stack: list[tuple[Any, int]] = []  # objects and arrays still to look into, with depth
    simple = _check_value(value, 0, stack)
    while stack:
        item, depth = stack.pop()
        if type(item) is dict or isinstance(item, Mapping):
            for key in item:
                if type(key) is not str and not isinstance(key, str):
                    raise VerificationError("document has a non-string member name")
                if simple and not key.isascii() and max(key) > "\uffff":
                    simple = False
            members: Any = item.values()
        else:
            members = item
        if depth >= MAX_DEPTH and len(item):
            raise VerificationError(f"document nests deeper than {MAX_DEPTH} levels")
        # Parsed JSON holds only these exact types; they are told apart inline, which is what
        # makes this walk cheap; anything else takes the general path.
        for member in members:
            kind = type(member)
            if kind is str or kind is bool or member is None:
                continue
            if kind is int:
                if not -MAX_SAFE_INTEGER <= member <= MAX_SAFE_INTEGER:
                    raise VerificationError(f"integer {member} is outside ±(2^53−1)")
            elif kind is dict or kind is list:
                stack.append((member, depth + 1))
            elif not _check_value(member, depth + 1, stack):
                simple = False
    return simple


def _check_value(item: Any, depth: int, stack: list[tuple[Any, int]]) -> bool:
    """Check one value at `depth`: raise if JCS cannot represent it, push it on `stack` if it
    has members; False if json.dumps would print it otherwise than JCS (see above)."""
    if isinstance(item, bool) or item is None or isinstance(item, str):
        return True
    if isinstance(item, int):
        if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
            raise VerificationError(f"integer {item} is outside ±(2^53−1)")
        return True
    if isinstance(item, float):
        if not math.isfinite(item):
            raise VerificationError("document holds a non-finite number")
        return not item.is_integer() and 1e-4 <= abs(item) < 1e16
    if isinstance(item, Mapping | list | tuple):
        stack.append((item, depth))
        return True
    raise VerificationError(f"document holds a {type(item).__name__}, not JSON")


def hash_data(proof_config: Mapping[str, Any], document: Mapping[str, Any]) -> bytes:
    """SHA-256(JCS(proof config)) ‖ SHA-256(JCS(document)): the bytes Ed25519 signs."""
    return (
        hashlib.sha256(canonicalize(proof_config)).digest()
        + hashlib.sha256(canonicalize(document)).digest()
    )


def now_timestamp() -> str:
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_document(
    document: Mapping[str, Any], identity: Identity, created: str | None = None
) -> dict[str, Any]:
    """A copy of `document` with an eddsa-jcs-2022 `proof` by `identity` (any old proof dropped)."""
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": created or now_timestamp(),
        "verificationMethod": identity.verification_method,
        "proofPurpose": PROOF_PURPOSE,
    }
    signature = identity.sign(hash_data(proof, unsecured))
    proof["proofValue"] = "z" + base58_encode(signature)
    return {**unsecured, "proof": proof}


def require_value(value: Any, expected: str, what: str) -> None:
    """Raise VerificationError "`what` `value` is not `expected`" unless `value` is `expected`:
    how a document's `type` and a proof's fixed members are checked."""
    if value != expected:
        raise VerificationError(f"{what} {excerpt(value)} is not {expected}")


def verify_document(document: Any, did: str, *, within_simple: bool = False) -> bool:
    """Return if `document` carries a valid eddsa-jcs-2022 proof by `did`; else raise why.

    Returns whether the document without its proof was found `simple` for JCS (see
    `_check_jcs_domain`). `within_simple` says the document lies inside another for which
    this returned True — a track manifest in a verified feed — so the check is already done
    and is not walked again; the bytes hashed are the same either way.
    """
    if not isinstance(document, Mapping):
        raise VerificationError("document is not a JSON object")
    proof = document.get("proof")
    if proof is None:
        raise VerificationError("document has no proof")
    if not isinstance(proof, Mapping):
        raise VerificationError("proof is not a JSON object")
    require_value(proof.get("type"), PROOF_TYPE, "proof type")
    require_value(proof.get("cryptosuite"), CRYPTOSUITE, "cryptosuite")
    require_value(proof.get("proofPurpose"), PROOF_PURPOSE, "proof purpose")
    if proof.get("verificationMethod") != method_of(did):
        raise VerificationError(
            f"proof is by {excerpt(proof.get('verificationMethod'))}, not {did}"
        )
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z"):
        raise VerificationError("proofValue is not a base58btc multibase string")
    if len(value) > MAX_PROOF_VALUE:
        raise VerificationError("proofValue is too long for a 64-byte Ed25519 signature")
    try:
        signature = base58_decode(value[1:])
    except ValueError as e:
        raise VerificationError(f"proofValue is not base58btc ({e})") from e
    if len(signature) != 64:
        raise VerificationError("proofValue is not a 64-byte Ed25519 signature")
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    simple = within_simple or _check_jcs_domain(unsecured)
    message = (
        hashlib.sha256(canonicalize(config)).digest()
        + hashlib.sha256(_canonical(unsecured, simple)).digest()
    )
    verify_signature(did, signature, message)
    return simple

"""Body digests that HTTP signatures cover: `Digest` (RFC 3230, `SHA-256=`) and `Content-Digest`
(RFC 9530, `sha-256`/`sha-512` as a structured-field dictionary)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import cast

from node.errors import SignatureError

# RFC 9530 §5 lists sha-256 and sha-512 as the algorithms a receiver should accept.
_CONTENT_DIGEST_HASHES = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def digest_header(body: bytes) -> str:
    """The `Digest` value (RFC 3230 §4.3.2) draft-cavage signatures cover: `SHA-256=<base64>`."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def content_digest_header(body: bytes, algorithm: str = "sha-256") -> str:
    """The `Content-Digest` value (RFC 9530 §2) of `body` under one algorithm."""
    try:
        hasher = _CONTENT_DIGEST_HASHES[algorithm]
    except KeyError:
        raise SignatureError(f"unsupported digest algorithm {algorithm!r}") from None
    return f"{algorithm}=:{base64.b64encode(hasher(body).digest()).decode('ascii')}:"


def check_digest(value: str, body: bytes) -> None:
    """Return if the `Digest` value holds a SHA-256 that matches `body`; raise `SignatureError`."""
    found = False
    for member in value.split(","):
        name, sep, encoded = member.strip().partition("=")
        if not sep or name.strip().lower() != "sha-256":
            continue
        found = True
        try:
            claimed = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            raise SignatureError("the Digest is not valid base64") from None
        if not hmac.compare_digest(claimed, hashlib.sha256(body).digest()):
            raise SignatureError("the Digest does not match the body")
    if not found:
        raise SignatureError("the Digest has no SHA-256 value")


def check_content_digest(value: str, body: bytes) -> None:
    """Return if every sha-256/sha-512 member of the `Content-Digest` value matches `body` and at
    least one is present; raise `SignatureError` otherwise."""
    import http_sf

    try:
        parsed = http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError):
        raise SignatureError("the Content-Digest is not a structured-field dictionary") from None
    if not isinstance(parsed, dict):
        raise SignatureError("the Content-Digest is not a structured-field dictionary")
    members = cast(dict[str, tuple[object, object]], parsed)
    checked = False
    for algorithm, (claimed, _params) in members.items():
        hasher = _CONTENT_DIGEST_HASHES.get(algorithm)
        if hasher is None:
            continue  # RFC 9530 §2: unknown algorithms are ignored
        if not isinstance(claimed, bytes):
            raise SignatureError(f"the Content-Digest's {algorithm} is not a byte sequence")
        if not hmac.compare_digest(claimed, hasher(body).digest()):
            raise SignatureError("the Content-Digest does not match the body")
        checked = True
    if not checked:
        raise SignatureError("the Content-Digest has no sha-256 or sha-512 value")

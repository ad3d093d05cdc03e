"""HTTP Signatures as ActivityPub servers use them: signing and verifying requests under
draft-cavage-http-signatures-12 (`rsa-sha256`, `hs2019`) and RFC 9421 HTTP Message Signatures
(`rsa-v1_5-sha256`, `ed25519`), each with the body digest it covers.

RFC 9421 is done by `http-message-signatures` (signature bases, structured fields); draft-cavage,
which no maintained library implements, is written here over `cryptography`. Both libraries are
imported where used: a running node loads them only once it federates.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from node.errors import SignatureError, excerpt
from node.fediverse.digest import (
    check_content_digest,
    check_digest,
    content_digest_header,
    digest_header,
)

PublicKey = RSAPublicKey | Ed25519PublicKey
PrivateKey = RSAPrivateKey | Ed25519PrivateKey

# Issue #13: what outbound draft-cavage signatures cover, in this order, where present.
CAVAGE_HEADERS = ("(request-target)", "host", "date", "digest", "content-type")
# What `sign_rfc9421` covers: enough to bind the method, the full URL and the body.
RFC9421_COMPONENTS = ("@method", "@target-uri", "content-digest")
RFC9421_ALGORITHMS = ("rsa-v1_5-sha256", "ed25519")
DEFAULT_WINDOW_SECONDS = 300

_CAVAGE_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([0-9.]+))\s*(?:,|$)')


@dataclass(frozen=True)
class VerifiedSignature:
    """A request signature that verified: which scheme, key and algorithm, when it was made and
    what it covers (header names for draft-cavage, component identifiers for RFC 9421)."""

    scheme: Literal["draft-cavage-12", "rfc9421"]
    key_id: str
    algorithm: str
    created: int
    covered: tuple[str, ...]


def load_public_key(pem: str | bytes) -> PublicKey:
    """The RSA or Ed25519 public key in a PEM (as ActivityPub's `publicKeyPem`)."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SignatureError("the public key is not a readable PEM") from None
    if not isinstance(key, RSAPublicKey | Ed25519PublicKey):
        raise SignatureError(f"unsupported key type {type(key).__name__}")
    return key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _url_parts(url: str) -> tuple[str, str]:
    """The `Host` value (with a non-default port) and the request target (path and query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SignatureError(f"the URL {excerpt(url)} is not an http(s) URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.netloc.rpartition("@")[2], target


# ---- draft-cavage-http-signatures-12 ----


def cavage_signing_string(
    method: str, target: str, headers: Mapping[str, str], covered: Sequence[str]
) -> str:
    """The string a draft-cavage signature signs (draft-cavage-12 §2.3): one `name: value` line
    per covered header, `(request-target)` as the lowercased method and the target."""
    lines = []
    for name in covered:
        name = name.lower()
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
            continue
        value = _header(headers, name)
        if value is None:
            raise SignatureError(f"the signed header {excerpt(name)} is missing")
        lines.append(f"{name}: {value.strip()}")
    return "\n".join(lines)


def sign_cavage(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    key_id: str,
    private_key: RSAPrivateKey,
    *,
    now: float | None = None,
) -> dict[str, str]:
    """The headers to add to a request so that it carries a draft-cavage-12 `rsa-sha256`
    signature over `(request-target) host date digest content-type` (those present): `Date` if
    missing, `Digest` (`SHA-256=`, for requests other than GET/HEAD), `Host` and `Signature`."""
    host, target = _url_parts(url)
    added: dict[str, str] = {"Host": host}
    if _header(headers, "date") is None:
        added["Date"] = formatdate(time.time() if now is None else now, usegmt=True)
    if method.upper() not in ("GET", "HEAD"):
        added["Digest"] = digest_header(body)
    merged = {
        **{k.lower(): v for k, v in headers.items()},
        **{k.lower(): v for k, v in added.items()},
    }
    covered = [name for name in CAVAGE_HEADERS if name == "(request-target)" or name in merged]
    base = cavage_signing_string(method, target, merged, covered).encode("utf-8")
    signature = private_key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    added["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(covered)}",'
        f'signature="{base64.b64encode(signature).decode("ascii")}"'
    )
    return added


def _cavage_params(headers: Mapping[str, str]) -> dict[str, str] | None:
    value = _header(headers, "signature")
    if value is None:
        authorization = _header(headers, "authorization") or ""
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.lower() != "signature":
            return None
        value = rest
    params: dict[str, str] = {}
    position = 0
    value = value.strip()
    while position < len(value):
        match = _CAVAGE_PARAM.match(value, position)
        if match is None or match.end() == position:
            raise SignatureError("the Signature header is malformed")
        params[match.group(1)] = match.group(2) if match.group(2) is not None else match.group(3)
        position = match.end()
    for required in ("keyId", "signature"):
        if required not in params:
            raise SignatureError(f"the Signature header has no {required}")
    return params


def _verify_cavage(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    public_key: PublicKey,
    params: dict[str, str],
    now: float,
    window: int,
) -> VerifiedSignature:
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in ("rsa-sha256", "hs2019"):
        raise SignatureError(f"unsupported algorithm {excerpt(algorithm)}")
    # Mastodon's default when `headers` is absent, and draft-cavage up to -09's.
    covered = tuple(params.get("headers", "date").lower().split())
    required = ["(request-target)"] + (["digest"] if body else [])
    for name in required:
        if name not in covered:
            raise SignatureError(f"the signature does not cover {name!r}")
    if "date" not in covered and "(created)" not in covered:
        raise SignatureError("the signature covers neither 'date' nor '(created)'")
    if body or _header(headers, "digest") is not None:
        digest = _header(headers, "digest")
        if digest is None:
            raise SignatureError("no Digest header")
        check_digest(digest, body)
    created = _cavage_time(headers, params, covered)
    _check_window(created, _int_param(params.get("expires")), now, window)
    _, target = _url_parts(url)
    pseudo = {f"({name})": params[name] for name in ("created", "expires") if name in params}
    base = cavage_signing_string(method, target, {**headers, **pseudo}, covered).encode("utf-8")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except ValueError:
        raise SignatureError("the signature is not valid base64") from None
    # hs2019 takes its algorithm from the key (draft-cavage-12 §2.1.3); for RSA keys every
    # fediverse server, Mastodon first, means RSASSA-PKCS1-v1_5 with SHA-256.
    if algorithm == "hs2019":
        algorithm = "ed25519" if isinstance(public_key, Ed25519PublicKey) else "rsa-sha256"
    _verify_bytes(public_key, signature, base, algorithm)
    return VerifiedSignature("draft-cavage-12", params["keyId"], algorithm, created, covered)


def _int_param(value: str | int | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise SignatureError(f"the signature time {excerpt(value)} is not a number") from None


def _cavage_time(
    headers: Mapping[str, str], params: Mapping[str, str], covered: Sequence[str]
) -> int:
    if "(created)" in covered:
        created = _int_param(params.get("created"))
        if created is None:
            raise SignatureError("the signature covers '(created)' but has no created time")
        return created
    date = _header(headers, "date")
    if date is None:
        raise SignatureError("the signed header 'date' is missing")
    try:
        return int(parsedate_to_datetime(date).timestamp())
    except (TypeError, ValueError):
        raise SignatureError(f"the Date {excerpt(date)} is not an HTTP date") from None


def _check_window(created: int, expires: int | None, now: float, window: int) -> None:
    if abs(now - created) > window or (expires is not None and expires < now):
        raise SignatureError(f"the signature is outside the {window} s window")


def _verify_bytes(key: PublicKey, signature: bytes, base: bytes, algorithm: str) -> None:
    try:
        if algorithm in ("rsa-sha256", "rsa-v1_5-sha256") and isinstance(key, RSAPublicKey):
            key.verify(signature, base, padding.PKCS1v15(), hashes.SHA256())
        elif algorithm == "ed25519" and isinstance(key, Ed25519PublicKey):
            key.verify(signature, base)
        else:
            raise SignatureError(f"the key is not a key for {algorithm}")
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None


# ---- RFC 9421 HTTP Message Signatures ----


@dataclass
class _Message:
    """The request shape `http-message-signatures` reads: method, URL, headers."""

    method: str
    url: str
    headers: dict[str, str]


def _rfc9421_algorithm(name: str) -> Any:
    from http_message_signatures import algorithms

    return {"rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256, "ed25519": algorithms.ED25519}[name]


def _prepare_rfc9421(
    message: _Message,
    key_id: str,
    algorithm: str,
    created: float,
    components: Sequence[str],
    label: str,
    include_alg: bool,
) -> tuple[Any, Any]:
    from datetime import UTC, datetime

    from http_message_signatures import HTTPMessageSigner

    signer = HTTPMessageSigner(signature_algorithm=_rfc9421_algorithm(algorithm))
    prepared = signer.prepare(
        message,
        key_id=key_id,
        created=datetime.fromtimestamp(int(created), UTC),
        label=label,
        include_alg=include_alg,
        covered_component_ids=tuple(components),
        use_existing_digest="content-digest" in components,
    )
    return signer, prepared


def rfc9421_signature_base(
    method: str,
    url: str,
    headers: Mapping[str, str],
    key_id: str,
    algorithm: str,
    *,
    created: float,
    components: Sequence[str] = RFC9421_COMPONENTS,
    label: str = "sig1",
    include_alg: bool = True,
) -> bytes:
    """The signature base (RFC 9421 §2.5) `sign_rfc9421` would sign for these arguments."""
    message = _Message(method.upper(), url, dict(headers))
    _signer, prepared = _prepare_rfc9421(
        message, key_id, algorithm, created, components, label, include_alg
    )
    return bytes(prepared.signature_base)


def sign_rfc9421(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    key_id: str,
    private_key: PrivateKey,
    *,
    now: float | None = None,
    components: Sequence[str] = RFC9421_COMPONENTS,
    label: str = "sig1",
    include_alg: bool = True,
) -> dict[str, str]:
    """The headers to add to a request so that it carries an RFC 9421 signature
    (`rsa-v1_5-sha256` for an RSA key, `ed25519` for an Ed25519 key) over `components`, with
    `created` and `keyid`: `Content-Digest` (sha-256) if it is covered and missing,
    `Signature-Input` and `Signature`."""
    algorithm = "ed25519" if isinstance(private_key, Ed25519PrivateKey) else "rsa-v1_5-sha256"
    message = _Message(method.upper(), url, dict(headers))
    added: dict[str, str] = {}
    if "content-digest" in components and _header(headers, "content-digest") is None:
        added["Content-Digest"] = message.headers["Content-Digest"] = content_digest_header(body)
    signer, prepared = _prepare_rfc9421(
        message,
        key_id,
        algorithm,
        time.time() if now is None else now,
        components,
        label,
        include_alg,
    )
    base = bytes(prepared.signature_base)
    if isinstance(private_key, Ed25519PrivateKey):
        signature = private_key.sign(base)
    else:
        signature = private_key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    signer.apply(message, prepared, signature)
    added["Signature-Input"] = message.headers["Signature-Input"]
    added["Signature"] = message.headers["Signature"]
    return added


def _parse_dictionary(headers: Mapping[str, str], name: str) -> dict[str, Any]:
    """A structured-field dictionary header (RFC 8941 §3.2) as `{key: (value, params)}`."""
    import http_sf

    value = _header(headers, name) or ""
    try:
        parsed = http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError):
        raise SignatureError(f"the {name} header is malformed") from None
    if not isinstance(parsed, dict) or not parsed:
        raise SignatureError(f"the {name} header is malformed")
    return cast(dict[str, Any], parsed)


def _rfc9421_first(headers: Mapping[str, str]) -> tuple[str, list[str], dict[str, Any]]:
    """The label, covered component identifiers and parameters of the first signature that
    `Signature-Input` lists (a request from one server carries one)."""
    from http_sf.item import ser_item

    label, (inner, params) = next(iter(_parse_dictionary(headers, "Signature-Input").items()))
    if not isinstance(inner, list) or not all(
        isinstance(item, tuple) and isinstance(item[0], str) for item in inner
    ):
        raise SignatureError("the Signature-Input header is malformed")
    # Components with parameters (`"@query-param";name="Pet"`) keep their serialized form.
    covered = [
        name if not item_params else ser_item((name, item_params)) for name, item_params in inner
    ]
    return str(label), covered, dict(params)


def _verifier_class() -> Any:
    """`HTTPMessageVerifier` without its own clock: `_check_window` has already judged
    `created` and `expires` against the caller's `now` (which tests set to a vector's time)."""
    from http_message_signatures import HTTPMessageVerifier

    class _Verifier(HTTPMessageVerifier):
        def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
            return None

    return _Verifier


def _verify_rfc9421(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    public_key: PublicKey,
    now: float,
    window: int,
) -> VerifiedSignature:
    import http_sf
    from http_message_signatures import InvalidSignature, MappingKeyResolver

    if _header(headers, "signature") is None:
        raise SignatureError("no Signature header")
    label, covered, params = _rfc9421_first(headers)
    key_id = params.get("keyid")
    if not isinstance(key_id, str):
        raise SignatureError("the signature has no keyid")
    key_algorithm = "ed25519" if isinstance(public_key, Ed25519PublicKey) else "rsa-v1_5-sha256"
    algorithm = params.get("alg", key_algorithm)
    if algorithm not in RFC9421_ALGORITHMS:
        raise SignatureError(f"unsupported algorithm {excerpt(algorithm)}")
    if algorithm != key_algorithm:
        raise SignatureError(f"the key is not a key for {algorithm}")
    if "@method" not in covered:
        raise SignatureError("the signature does not cover '@method'")
    if "@target-uri" not in covered and not {"@authority", "@path"} <= set(covered):
        raise SignatureError("the signature covers neither '@target-uri' nor '@authority' '@path'")
    content_digest = _header(headers, "content-digest")
    if body and "content-digest" not in covered:
        raise SignatureError("the signature does not cover 'content-digest'")
    if body or content_digest is not None:
        if content_digest is None:
            raise SignatureError("no Content-Digest header")
        check_content_digest(content_digest, body)
    created = params.get("created")
    expires = params.get("expires")
    if type(created) is not int:
        raise SignatureError("the signature has no created time")
    if expires is not None and type(expires) is not int:
        raise SignatureError("the signature's expires is not an integer")
    _check_window(created, expires, now, window)
    # Only the selected signature goes to the library, which otherwise asks for a tag to choose.
    signatures = _parse_dictionary(headers, "Signature")
    if label not in signatures:
        raise SignatureError(f"the Signature header has no {excerpt(label)} signature")
    inputs = _parse_dictionary(headers, "Signature-Input")
    only = {k: v for k, v in headers.items() if k.lower() not in ("signature", "signature-input")}
    only["Signature-Input"] = http_sf.ser({label: inputs[label]})
    only["Signature"] = http_sf.ser({label: signatures[label]})
    verifier = _verifier_class()(
        signature_algorithm=_rfc9421_algorithm(algorithm),
        key_resolver=MappingKeyResolver(public_keys={key_id: public_key}, private_keys={}),
    )
    try:
        verifier.verify(_Message(method.upper(), url, only), max_age=None)
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None
    return VerifiedSignature("rfc9421", key_id, algorithm, created, tuple(covered))


# ---- both schemes ----


def signature_key_id(headers: Mapping[str, str]) -> str:
    """The key a signed request claims (RFC 9421 `keyid` or draft-cavage `keyId`), so that the
    caller can fetch it before `verify_request`."""
    if _header(headers, "signature-input") is not None:
        _label, _covered, params = _rfc9421_first(headers)
        key_id = params.get("keyid")
        if not isinstance(key_id, str):
            raise SignatureError("the signature has no keyid")
        return key_id
    params_cavage = _cavage_params(headers)
    if params_cavage is None:
        raise SignatureError("no Signature header")
    return params_cavage["keyId"]


def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    public_key: PublicKey,
    *,
    now: float | None = None,
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
) -> VerifiedSignature:
    """Return what signed the request if its signature (RFC 9421 when `Signature-Input` is
    present, draft-cavage-12 otherwise) verifies under `public_key`, covers the method, target
    and body digest, the digest matches `body`, and it was made within `window_seconds` of
    `now`; raise `SignatureError` naming the first reason it does not."""
    at = time.time() if now is None else now
    if _header(headers, "signature-input") is not None:
        return _verify_rfc9421(method, url, headers, body, public_key, at, window_seconds)
    params = _cavage_params(headers)
    if params is None:
        raise SignatureError("no Signature header")
    return _verify_cavage(method, url, headers, body, public_key, params, at, window_seconds)

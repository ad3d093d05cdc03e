"""HTTP signatures (node/fediverse/httpsig.py, digest.py): the published vectors of RFC 9421,
draft-cavage-http-signatures-12 and RFC 9530, round trips in both schemes, and every refusal."""

from __future__ import annotations

import base64
from collections.abc import Callable
from email.utils import formatdate

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from node.errors import SignatureError
from node.fediverse import httpsig
from node.fediverse.digest import (
    check_content_digest,
    check_digest,
    content_digest_header,
    digest_header,
)

BODY = b'{"hello": "world"}'

# RFC 9421 Appendix B.1.1 `test-key-rsa` (public half) and B.1.4 `test-key-ed25519`.
TEST_KEY_RSA = """-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAhAKYdtoeoy8zcAcR874L8cnZxKzAGwd7v36APp7Pv6Q2jdsPBRrw
WEBnez6d0UDKDwGbc6nxfEXAy5mbhgajzrw3MOEt8uA5txSKobBpKDeBLOsdJKFq
MGmXCQvEG7YemcxDTRPxAleIAgYYRjTSd/QBwVW9OwNFhekro3RtlinV0a75jfZg
kne/YiktSvLG34lw2zqXBDTC5NHROUqGTlML4PlNZS5Ri2U4aCNx2rUPRcKIlE0P
uKxI4T+HIaFpv8+rdV6eUgOrB2xeI1dSFFn/nnv5OoZJEIB+VmuKn3DCUcCZSFlQ
PSXSfBDiUGhwOw76WuSSsf1D4b/vLoJ10wIDAQAB
-----END RSA PUBLIC KEY-----
"""
TEST_KEY_ED25519_PRIVATE = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
TEST_KEY_ED25519 = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
# RFC 9421 B.2 `test-request` body digest (RFC 9530 sha-512 of BODY).
RFC9421_DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYll"
    "u7BNNyealdVLvRwEmTHWXvJwew==:"
)

# draft-cavage-http-signatures-12 Appendix C: the 1024-bit `Test` key and request.
CAVAGE_KEY = """-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
"""
CAVAGE_URL = "https://example.com/foo?param=value&pet=dog"
CAVAGE_TIME = 1388957500  # Sun, 05 Jan 2014 21:31:40 GMT
CAVAGE_HEADERS = {
    "Host": "example.com",
    "Date": "Sun, 05 Jan 2014 21:31:40 GMT",
    "Content-Type": "application/json",
    "Digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    "Content-Length": "18",
}
CAVAGE_VECTORS = {
    # C.2 Basic Test
    "(request-target) host date": (
        "qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7ndmw2iicw3"
        "HMbe8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2Os0="
    ),
    # C.3 All Headers Test
    "(request-target) host date content-type digest content-length": (
        "vSdrb+dS3EceC9bcwHSo4MlyKS59iFIrhgYkz8+oVLEEzmYZZvRs8rgOp+63LEM3v+MFHB32NfpB2bEKBIvB1q52"
        "LaEUHFv120V01IL+TAD48XaERZFukWgHoBTLMhYS2Gb51gWxpeIq8knRmPnYePbF5MOkR0Zkly4zKH7s1dE="
    ),
}


def _cavage_request(covered: str, signature: str, algorithm: str = "rsa-sha256") -> dict[str, str]:
    value = f'keyId="Test",algorithm="{algorithm}",headers="{covered}",signature="{signature}"'
    return {**CAVAGE_HEADERS, "Signature": value}


# ---- the published vectors ----


@pytest.mark.parametrize("covered", list(CAVAGE_VECTORS), ids=["C.2-basic", "C.3-all-headers"])
def test_draft_cavage_appendix_c_vectors_verify(covered: str) -> None:
    headers = _cavage_request(covered, CAVAGE_VECTORS[covered])
    key = httpsig.load_public_key(CAVAGE_KEY)
    body = BODY
    if "digest" not in covered:
        # C.2 does not bind the body: it verifies only for a request without one.
        with pytest.raises(SignatureError, match="does not cover 'digest'"):
            httpsig.verify_request("POST", CAVAGE_URL, headers, body, key, now=CAVAGE_TIME)
        body = b""
        del headers["Digest"]
    verified = httpsig.verify_request("POST", CAVAGE_URL, headers, body, key, now=CAVAGE_TIME)
    assert verified.scheme == "draft-cavage-12"
    assert verified.key_id == "Test"
    assert verified.covered == tuple(covered.split())
    assert httpsig.signature_key_id(headers) == "Test"


def test_draft_cavage_signing_string_is_the_appendix_c3_one() -> None:
    covered = ["(request-target)", "host", "date", "content-type", "digest", "content-length"]
    assert httpsig.cavage_signing_string(
        "POST", "/foo?param=value&pet=dog", CAVAGE_HEADERS, covered
    ) == (
        "(request-target): post /foo?param=value&pet=dog\n"
        "host: example.com\n"
        "date: Sun, 05 Jan 2014 21:31:40 GMT\n"
        "content-type: application/json\n"
        "digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\n"
        "content-length: 18"
    )


def test_draft_cavage_hs2019_takes_the_algorithm_from_an_rsa_key() -> None:
    covered = "(request-target) host date content-type digest content-length"
    headers = _cavage_request(covered, CAVAGE_VECTORS[covered], algorithm="hs2019")
    key = httpsig.load_public_key(CAVAGE_KEY)
    verified = httpsig.verify_request("POST", CAVAGE_URL, headers, BODY, key, now=CAVAGE_TIME)
    assert verified.algorithm == "rsa-sha256"


def test_draft_cavage_c1_default_test_is_refused_for_not_covering_the_target() -> None:
    # C.1 signs only `date` (the default when `headers` is absent): nothing binds the request.
    value = (
        'keyId="Test",algorithm="rsa-sha256",signature="SjWJWbWN7i0wzBvtPl8rbASWz5xQW6mcJmn+ibttBqtif'
        "LN7Sazz6m79cNfwwb8DMJ5cou1s7uEGKKCs+FLEEaDV5lp7q25WqS+lavg7T8hc0GppauB6hbgEKTwblDHYGEtbGmtd"
        'HgVCk9SuS13F0hZ8FD0k/5OxEPXe5WozsbM="'
    )
    headers = {**CAVAGE_HEADERS, "Signature": value}
    key = httpsig.load_public_key(CAVAGE_KEY)
    with pytest.raises(SignatureError, match="does not cover '\\(request-target\\)'"):
        httpsig.verify_request("POST", CAVAGE_URL, headers, b"", key, now=CAVAGE_TIME)


def test_rfc9421_section_4_3_rsa_v1_5_sha256_vector_verifies() -> None:
    """RFC 9421 §4.3: the proxy's `rsa-v1_5-sha256` signature by `test-key-rsa`, with `expires`,
    over a body bound by a sha-512 Content-Digest (the only rsa-v1_5 example the RFC gives)."""
    headers = {
        "Host": "origin.host.internal.example",
        "Date": "Tue, 20 Apr 2021 02:07:56 GMT",
        "Content-Type": "application/json",
        "Content-Length": "18",
        "Forwarded": "for=192.0.2.123;host=example.com;proto=https",
        "Content-Digest": RFC9421_DIGEST,
        "Signature-Input": (
            'proxy_sig=("@method" "@authority" "@path" "content-digest" "content-type"'
            ' "content-length" "forwarded");created=1618884480;keyid="test-key-rsa"'
            ';alg="rsa-v1_5-sha256";expires=1618884540'
        ),
        "Signature": (
            "proxy_sig=:S6ZzPXSdAMOPjN/6KXfXWNO/f7V6cHm7BXYUh3YD/fRad4BCaRZxP+JH+8XY1I6+8Cy+CM5g92iH"
            "gxtRPz+MjniOaYmdkDcnL9cCpXJleXsOckpURl49GwiyUpZ10KHgOEe11sx3G2gxI8S0jnxQB+Pu68U9vVcas"
            "qOWAEObtNKKZd8tSFu7LB5YAv0RAGhB8tmpv7sFnIm9y+7X5kXQfi8NMaZaA8i2ZHwpBdg7a6CMfwnnrtflzvZd"
            "XAsD3LH2TwevU+/PBPv0B6NMNk93wUs/vfJvye+YuI87HU38lZHowtznbLVdp770I6VHR6WfgS9ddzirrswsE1w"
            "5o0LV/g==:"
        ),
    }
    url = "https://origin.host.internal.example/foo?param=Value&Pet=dog"
    key = httpsig.load_public_key(TEST_KEY_RSA)
    verified = httpsig.verify_request("POST", url, headers, BODY, key, now=1618884500)
    assert (verified.scheme, verified.key_id, verified.algorithm) == (
        "rfc9421",
        "test-key-rsa",
        "rsa-v1_5-sha256",
    )
    assert verified.created == 1618884480
    # Past its `expires`, the same request is refused.
    with pytest.raises(SignatureError, match="outside the 300 s window"):
        httpsig.verify_request("POST", url, headers, BODY, key, now=1618884541)


B26_URL = "https://example.com/foo?param=Value&Pet=dog"
B26_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Length": "18",
}
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w"
    "6vuQv5lIp5WPpBKRCw==:"
)


def test_rfc9421_b26_ed25519_signature_base_and_signature() -> None:
    """RFC 9421 B.2.6: the same signature base, and (Ed25519 being deterministic) the same
    signature from `test-key-ed25519`."""
    from cryptography.hazmat.primitives import serialization

    base = httpsig.rfc9421_signature_base(
        "POST",
        B26_URL,
        B26_HEADERS,
        "test-key-ed25519",
        "ed25519",
        created=1618884473,
        components=("date", "@method", "@path", "@authority", "content-type", "content-length"),
        label="sig-b26",
        include_alg=False,
    )
    assert base == (
        b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        b'"@method": POST\n'
        b'"@path": /foo\n'
        b'"@authority": example.com\n'
        b'"content-type": application/json\n'
        b'"content-length": 18\n'
        b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type"'
        b' "content-length");created=1618884473;keyid="test-key-ed25519"'
    )
    private = serialization.load_pem_private_key(TEST_KEY_ED25519_PRIVATE.encode(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    signature = base64.b64encode(private.sign(base)).decode()
    assert f"sig-b26=:{signature}:" == B26_SIGNATURE


def test_rfc9421_b26_vector_verifies_and_is_refused_with_its_body_uncovered() -> None:
    headers = {**B26_HEADERS, "Signature-Input": B26_INPUT, "Signature": B26_SIGNATURE}
    key = httpsig.load_public_key(TEST_KEY_ED25519)
    # Without a body to bind, B.2.6 verifies exactly as published (label, no `alg`).
    verified = httpsig.verify_request("POST", B26_URL, headers, b"", key, now=1618884473)
    assert (verified.algorithm, verified.key_id) == ("ed25519", "test-key-ed25519")
    assert httpsig.signature_key_id(headers) == "test-key-ed25519"
    # With its body, it is refused: B.2.6 covers no Content-Digest, so the body is unsigned.
    with_digest = {**headers, "Content-Digest": RFC9421_DIGEST}
    with pytest.raises(SignatureError, match="does not cover 'content-digest'"):
        httpsig.verify_request("POST", B26_URL, with_digest, BODY, key, now=1618884473)


# ---- RFC 9530 / RFC 3230 digests ----


def test_rfc9530_content_digest_vectors() -> None:
    # RFC 9530 B.1 (sha-256 / sha-512 of `{"hello": "world"}` plus a newline) and RFC 9421 B.2.
    body = b'{"hello": "world"}\n'
    assert content_digest_header(body) == "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    assert content_digest_header(body, "sha-512") == (
        "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:"
    )
    check_content_digest(RFC9421_DIGEST, BODY)
    check_content_digest("sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:, md5=:AA==:", body)


def test_rfc3230_digest_of_the_cavage_body() -> None:
    assert digest_header(BODY) == CAVAGE_HEADERS["Digest"]
    check_digest(CAVAGE_HEADERS["Digest"], BODY)
    check_digest("sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", BODY)  # case-insensitive


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        (check_digest, "SHA-256=" + base64.b64encode(b"x" * 32).decode(), "does not match"),
        (check_digest, "SHA-256=not base64!", "not valid base64"),
        (check_digest, "SHA-512=abcd", "no SHA-256 value"),
        (
            check_content_digest,
            "sha-256=:" + base64.b64encode(b"x" * 32).decode() + ":",
            "does not match",
        ),
        (check_content_digest, "sha-256=abc", "not a byte sequence"),
        (check_content_digest, "md5=:AA==:", "no sha-256 or sha-512"),
        (check_content_digest, "sha-256=:AA", "not a structured-field dictionary"),
    ],
    ids=[
        "digest-mismatch",
        "digest-bad-base64",
        "digest-no-sha256",
        "content-digest-mismatch",
        "content-digest-not-bytes",
        "content-digest-unknown-only",
        "content-digest-malformed",
    ],
)
def test_digest_refusals(check: Callable[[str, bytes], None], value: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        check(value, BODY)


# ---- round trips ----

RSA_KEY = rsa.generate_private_key(65537, 2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()
INBOX = "https://stave.example/actor/inbox"
NOW = 1_800_000_000.0


def _signed(scheme: str, body: bytes = BODY, *, now: float = NOW) -> dict[str, str]:
    headers = {"Content-Type": "application/activity+json"}
    if scheme == "cavage":
        headers.update(httpsig.sign_cavage("POST", INBOX, headers, body, "k", RSA_KEY, now=now))
    else:
        key = RSA_KEY if scheme == "rfc9421-rsa" else ED_KEY
        headers.update(httpsig.sign_rfc9421("POST", INBOX, headers, body, "k", key, now=now))
    return headers


def _public(scheme: str) -> httpsig.PublicKey:
    return ED_KEY.public_key() if scheme == "rfc9421-ed25519" else RSA_KEY.public_key()


SCHEMES = ["cavage", "rfc9421-rsa", "rfc9421-ed25519"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip(scheme: str) -> None:
    headers = _signed(scheme)
    verified = httpsig.verify_request("POST", INBOX, headers, BODY, _public(scheme), now=NOW + 10)
    assert verified.key_id == httpsig.signature_key_id(headers) == "k"
    assert verified.created == int(NOW)


def test_cavage_signature_covers_what_issue_13_says() -> None:
    headers = _signed("cavage")
    assert 'headers="(request-target) host date digest content-type"' in headers["Signature"]
    assert headers["Digest"] == digest_header(BODY)
    assert headers["Date"] == formatdate(NOW, usegmt=True)
    assert headers["Host"] == "stave.example"


def test_cavage_get_signs_target_host_and_date_only() -> None:
    url = "http://127.0.0.1:8080/users/ada?x=1"
    headers = httpsig.sign_cavage("GET", url, {}, b"", "k", RSA_KEY, now=NOW)
    assert "Digest" not in headers
    assert 'headers="(request-target) host date"' in headers["Signature"]
    assert headers["Host"] == "127.0.0.1:8080"
    httpsig.verify_request("GET", url, headers, b"", RSA_KEY.public_key(), now=NOW)


def _tamper_body(headers: dict[str, str]) -> tuple[dict[str, str], bytes, str]:
    return headers, b'{"hello": "mars!"}', INBOX


def _tamper_url(headers: dict[str, str]) -> tuple[dict[str, str], bytes, str]:
    return headers, BODY, "https://stave.example/inbox"


def _tamper_digest(headers: dict[str, str]) -> tuple[dict[str, str], bytes, str]:
    body = b'{"hello": "mars!"}'
    name = "Digest" if "Digest" in headers else "Content-Digest"
    value = digest_header(body) if name == "Digest" else content_digest_header(body)
    return {**headers, name: value}, body, INBOX


def _drop_digest(headers: dict[str, str]) -> tuple[dict[str, str], bytes, str]:
    kept = {k: v for k, v in headers.items() if k not in ("Digest", "Content-Digest")}
    return kept, BODY, INBOX


def _flip_signature(headers: dict[str, str]) -> tuple[dict[str, str], bytes, str]:
    value = headers["Signature"]
    marker = 'signature="' if "signature=" in value else "=:"
    at = value.index(marker) + len(marker) + 3
    flipped = value[:at] + ("A" if value[at] != "A" else "B") + value[at + 1 :]
    return {**headers, "Signature": flipped}, BODY, INBOX


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_body, "does not match the body"),
        (_tamper_url, "does not verify"),
        (_tamper_digest, "does not verify"),
        (_drop_digest, "no (Content-)?Digest header"),
        (_flip_signature, "does not verify"),
    ],
    ids=["body", "url", "digest-and-body", "no-digest", "signature"],
)
def test_tampered_requests_are_refused(
    scheme: str,
    tamper: Callable[[dict[str, str]], tuple[dict[str, str], bytes, str]],
    reason: str,
) -> None:
    headers, body, url = tamper(_signed(scheme))
    with pytest.raises(SignatureError, match=reason):
        httpsig.verify_request("POST", url, headers, body, _public(scheme), now=NOW)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("offset", [-301, 301], ids=["too-old", "from-the-future"])
def test_outside_the_window_is_refused(scheme: str, offset: int) -> None:
    headers = _signed(scheme, now=NOW + offset)
    with pytest.raises(SignatureError, match="outside the 300 s window"):
        httpsig.verify_request("POST", INBOX, headers, BODY, _public(scheme), now=NOW)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_wrong_key_is_refused(scheme: str) -> None:
    other: httpsig.PublicKey = (
        ed25519.Ed25519PrivateKey.generate().public_key()
        if scheme == "rfc9421-ed25519"
        else rsa.generate_private_key(65537, 2048).public_key()
    )
    with pytest.raises(SignatureError, match="does not verify"):
        httpsig.verify_request("POST", INBOX, _signed(scheme), BODY, other, now=NOW)


def test_a_key_of_the_other_type_is_refused() -> None:
    with pytest.raises(SignatureError, match="the key is not a key for ed25519"):
        httpsig.verify_request(
            "POST", INBOX, _signed("rfc9421-ed25519"), BODY, RSA_KEY.public_key(), now=NOW
        )
    with pytest.raises(SignatureError, match="the key is not a key for rsa-sha256"):
        httpsig.verify_request("POST", INBOX, _signed("cavage"), BODY, ED_KEY.public_key(), now=NOW)


def _cavage_with(**params: str) -> dict[str, str]:
    headers = _signed("cavage")
    fields = dict(p.split("=", 1) for p in headers["Signature"].split('",'))
    fields = {k: v.strip('"') for k, v in fields.items()}
    fields.update(params)
    headers["Signature"] = ",".join(f'{k}="{v}"' for k, v in fields.items() if v != "-")
    return headers


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Content-Type": "application/json"}, "no Signature header"),
        ({"Signature": "this is not a signature"}, "malformed"),
        ({"Signature": 'keyId="k",algorithm="rsa-sha256"'}, "has no signature"),
        ({"Signature": 'algorithm="rsa-sha256",signature="AAAA"'}, "has no keyId"),
        (_cavage_with(algorithm="hmac-sha256"), "unsupported algorithm"),
        (_cavage_with(headers="(request-target) host date"), "does not cover 'digest'"),
        (
            _cavage_with(headers="(request-target) host digest"),
            "neither 'date' nor '\\(created\\)'",
        ),
        (
            _cavage_with(headers="(request-target) host date digest x-missing"),
            "'x-missing' is missing",
        ),
        (_cavage_with(signature="not base64!"), "not valid base64"),
    ],
    ids=[
        "none",
        "malformed",
        "no-signature",
        "no-keyid",
        "algorithm",
        "digest-uncovered",
        "no-date",
        "missing-header",
        "bad-base64",
    ],
)
def test_cavage_refusals(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        httpsig.verify_request("POST", INBOX, headers, BODY, RSA_KEY.public_key(), now=NOW)


def test_cavage_signature_in_authorization_header_is_read() -> None:
    headers = _signed("cavage")
    headers["Authorization"] = "Signature " + headers.pop("Signature")
    httpsig.verify_request("POST", INBOX, headers, BODY, RSA_KEY.public_key(), now=NOW)


def test_cavage_bad_date_is_refused() -> None:
    headers = {**_signed("cavage"), "Date": "yesterday"}
    with pytest.raises(SignatureError, match="not an HTTP date"):
        httpsig.verify_request("POST", INBOX, headers, BODY, RSA_KEY.public_key(), now=NOW)


def _rfc9421_with(input_value: str) -> dict[str, str]:
    headers = _signed("rfc9421-ed25519")
    headers["Signature-Input"] = input_value
    return headers


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (_rfc9421_with("sig1=not-a-list"), "Signature-Input header is malformed"),
        (_rfc9421_with('sig1=("@method" "@target-uri" "content-digest");created=1'), "no keyid"),
        (
            _rfc9421_with(
                'sig1=("@method" "@target-uri" "content-digest");keyid="k";alg="ed25519"'
            ),
            "no created time",
        ),
        (
            _rfc9421_with(
                'sig1=("@method" "@target-uri" "content-digest");created=1800000000'
                ';keyid="k";alg="hmac-sha256"'
            ),
            "unsupported algorithm",
        ),
        (
            _rfc9421_with('sig1=("@target-uri" "content-digest");created=1800000000;keyid="k"'),
            "'@method'",
        ),
        (
            _rfc9421_with('sig1=("@method" "content-digest");created=1800000000;keyid="k"'),
            "'@target-uri'",
        ),
        (
            _rfc9421_with('sig1=("@method" "@target-uri");created=1800000000;keyid="k"'),
            "'content-digest'",
        ),
        (
            _rfc9421_with(
                'other=("@method" "@target-uri" "content-digest");created=1800000000;keyid="k"'
            ),
            "has no 'other' signature",
        ),
        ({**_signed("rfc9421-ed25519"), "Signature": "sig1=?1"}, "does not verify"),
    ],
    ids=[
        "malformed",
        "no-keyid",
        "no-created",
        "algorithm",
        "no-method",
        "no-target",
        "no-digest",
        "label-mismatch",
        "signature-not-bytes",
    ],
)
def test_rfc9421_refusals(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        httpsig.verify_request("POST", INBOX, headers, BODY, ED_KEY.public_key(), now=NOW)


def test_load_public_key_refusals() -> None:
    with pytest.raises(SignatureError, match="not a readable PEM"):
        httpsig.load_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SignatureError, match="unsupported key type"):
        httpsig.load_public_key(pem)


def test_non_http_urls_are_refused() -> None:
    with pytest.raises(SignatureError, match="not an http\\(s\\) URL"):
        httpsig.sign_cavage("POST", "ftp://x.example/inbox", {}, BODY, "k", RSA_KEY)

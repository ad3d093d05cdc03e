"""The pages' own JavaScript, run under Node.js: JCS (web/static/jcs.js) against the Python
rfc8785 package, and proof checks (web/static/proof.js) against documents Stave signed.

The same ES modules the browser loads are imported by the scripts under tests/js/, unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.datadir import open_node
from node.identity import Identity
from node.signing import sign_document
from tests.support.paths import PROJECT_ROOT, require_tool

JS_TESTS = PROJECT_ROOT / "tests" / "js"


@pytest.fixture(scope="module")
def node_js() -> str:
    return require_tool("node", shutil.which("node"))


def run_js(node_js: str, script: str, cases: list[Any]) -> list[Any]:
    done = subprocess.run(
        [node_js, str(JS_TESTS / script)],
        input=json.dumps(cases).encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    results: list[Any] = json.loads(done.stdout)
    assert len(results) == len(cases)
    return results


def python_jcs(text: str) -> str | None:
    """rfc8785's JCS of the JSON in `text`, or None where it refuses the value."""
    try:
        return bytes(rfc8785.dumps(json.loads(text))).decode("utf-8")
    except (rfc8785.CanonicalizationError, ValueError):
        return None


def assert_same_jcs(node_js: str, texts: list[str]) -> None:
    for text, result in zip(texts, run_js(node_js, "canonicalize_stdin.mjs", texts), strict=True):
        expected = python_jcs(text)
        if expected is None:
            assert "error" in result, (text, result)
        else:
            assert result == {"jcs": expected}, text


TRICKY = {
    "sorting-by-utf16-code-units": (
        '{"\\ufb33":1,"\\ud83d\\ude00":2,"\\u20ac":3,"\\r":4,"a":5,"":6}'
    ),
    "nested-sorting": '{"b":{"z":1,"a":[{"y":2,"x":1}]},"a":null}',
    "escapes": '"\\u0000\\u0001\\u001f\\u007f\\u0080\\u2028\\u2029\\"\\\\/\\b\\f\\n\\r\\t"',
    "non-ascii-kept": '"é€😀\\ud834\\udd1e"',
    "lone-high-surrogate": '"\\ud800"',
    "lone-low-surrogate-key": '{"\\udc00":1}',
    "numbers": "[0,-0,-0.0,1,1.0,100,1e20,1e21,1e-6,1e-7,0.1,0.30000000000000004]",
    "number-extremes": (
        "[5e-324,1.7976931348623157e308,-1.7976931348623157e308,2.2250738585072014e-308]"
    ),
    "rfc-8785-numbers": "[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]",
    "largest-safe-integers": "[9007199254740991,-9007199254740991]",
    "integer-past-2^53": "9007199254740993",
    "negative-integer-past-2^53": "[-9007199254740992]",
    "integral-float-past-2^53": "9007199254740992.0",
    "huge-exponent": "1e400",
    "literals": '[true,false,null,"",[],{}]',
    "duplicate-names-last-wins": '{"a":1,"a":2}',
    "proto-name": '{"__proto__":{"x":1},"constructor":2}',
    "a-stave-manifest": json.dumps(
        {
            "type": "StaveTrack",
            "title": "Ünïcödé “quotes” <tags> & 𝄞",
            "durationSeconds": 183.4,
            "revision": 1,
            "audio": {"cid": "bafkreiabc", "size": 4183021},
        }
    ),
}


@pytest.mark.parametrize("text", list(TRICKY.values()), ids=list(TRICKY))
def test_jcs_matches_rfc8785_on_tricky_values(node_js: str, text: str) -> None:
    assert_same_jcs(node_js, [text])


def test_jcs_refuses_what_rfc8785_refuses(node_js: str) -> None:
    refused = [TRICKY[k] for k in TRICKY if python_jcs(TRICKY[k]) is None]
    assert len(refused) == 5
    results = run_js(node_js, "canonicalize_stdin.mjs", refused)
    assert all("error" in r for r in results)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_json_values, min_size=40, max_size=40))
def test_jcs_matches_rfc8785_on_generated_values(values: list[Any]) -> None:
    node_js = require_tool("node", shutil.which("node"))
    assert_same_jcs(node_js, [json.dumps(v) for v in values])


# --- proofs -------------------------------------------------------------------------------------


def _feed_bytes(root: Path) -> tuple[bytes, str]:
    import asyncio

    async def read() -> tuple[bytes, str]:
        async with open_node(root) as node:
            latest = await node.catalog.latest_feed()
            assert latest is not None
            body = node.store.path(latest.cid).read_bytes()
            did = node.identity.did
            node.store.close()
            return body, did

    return asyncio.run(read())


@pytest.fixture(scope="module")
def signed_feed(published_template: Path) -> tuple[bytes, str]:
    """The feed of a node with every fixture published, and its artist's did."""
    return _feed_bytes(published_template)


def test_a_real_feed_and_every_track_verify(node_js: str, signed_feed: tuple[bytes, str]) -> None:
    body, did = signed_feed
    feed = json.loads(body)
    assert len(feed["tracks"]) >= 7
    [result] = run_js(
        node_js, "verify_stdin.mjs", [{"text": body.decode(), "did": did, "kind": "feed"}]
    )
    assert result == {"error": None, "tracks": {t["id"]: None for t in feed["tracks"]}}


def test_one_changed_byte_fails_the_feed_and_that_track(
    node_js: str, signed_feed: tuple[bytes, str]
) -> None:
    body, did = signed_feed
    feed = json.loads(body)
    victim = feed["tracks"][1]
    title = victim["title"]
    changed = body.replace(
        json.dumps(title).encode(), json.dumps(title[:-1] + chr(ord(title[-1]) ^ 1)).encode(), 1
    )
    assert len(changed) == len(body) and changed != body
    [result] = run_js(
        node_js, "verify_stdin.mjs", [{"text": changed.decode(), "did": did, "kind": "feed"}]
    )
    assert "signature does not match" in result["error"]
    assert "signature does not match" in result["tracks"][victim["id"]]
    others = {k: v for k, v in result["tracks"].items() if k != victim["id"]}
    assert others and set(others.values()) == {None}


def test_documents_that_must_be_refused(node_js: str) -> None:
    artist = Identity.generate()
    other = Identity.generate()
    document = {"type": "StaveNode", "artist": artist.did, "n": 1.5, "name": "Ada"}
    signed = sign_document(document, artist)
    cases = {
        "good": (signed, artist.did, None),
        "other-key": (sign_document(document, other), artist.did, "not " + artist.did),
        "no-proof": (document, artist.did, "no proof"),
        "changed-member": ({**signed, "name": "Eve"}, artist.did, "does not match"),
        "changed-number": ({**signed, "n": 1.25}, artist.did, "does not match"),
        "added-member": ({**signed, "extra": True}, artist.did, "does not match"),
        "other-cryptosuite": (
            {**signed, "proof": {**signed["proof"], "cryptosuite": "eddsa-rdfc-2022"}},
            artist.did,
            "cryptosuite",
        ),
        "other-purpose": (
            {**signed, "proof": {**signed["proof"], "proofPurpose": "authentication"}},
            artist.did,
            "purpose",
        ),
        "short-signature": (
            {**signed, "proof": {**signed["proof"], "proofValue": "z3yMA"}},
            artist.did,
            "64-byte",
        ),
        "not-base58": (
            {**signed, "proof": {**signed["proof"], "proofValue": "z0OIl"}},
            artist.did,
            "base58btc",
        ),
        "changed-proof-date": (
            {**signed, "proof": {**signed["proof"], "created": "2020-01-01T00:00:00Z"}},
            artist.did,
            "does not match",
        ),
    }
    inputs = [
        {"text": json.dumps(d), "did": did, "kind": "document"} for d, did, _ in cases.values()
    ]
    big = json.dumps(signed).replace('"n": 1.5', '"n": 9007199254740993')
    inputs.append({"text": big, "did": artist.did, "kind": "document"})
    results = run_js(node_js, "verify_stdin.mjs", inputs)
    for (name, (_, _, reason)), result in zip(cases.items(), results, strict=False):
        if reason is None:
            assert result == {"ok": True}, name
        else:
            assert result["name"] == "VerificationError", (name, result)
            assert reason in result["error"], (name, result)
    assert "outside" in results[-1]["error"]


def test_node_unit_tests_pass(node_js: str) -> None:
    done = subprocess.run(
        [node_js, "--test", str(JS_TESTS)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"# fail 0" in done.stdout

"""Property tests over hostile input: feeds, manifests, key rotation statements, JCS values, CIDs
and mutated audio files.

The same targets as the atheris harness (`python -m fuzz.run`), driven here by hypothesis with a
fixed number of examples each and a fixed seed, so the suite stays fast and repeatable. Every
input must end in a clean rejection (a one-line StaveError) or a correct result, within a time
bound. Generated feeds, manifests and rotation chains go further: each part is drawn with a label
saying whether PROTOCOL §5/§6 (docs/protocol-extensions.md for rotation) lets it pass, the parts
are signed, and the verdict must match the labels.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import documents
from fuzz.targets import (
    ContractBroken,
    check_cid,
    check_cid_text,
    check_feed,
    check_jcs_value,
    check_manifest,
    check_media,
    check_rotation,
    rejected,
    time_bound,
)
from node.cid import CID, base58_encode, varint
from node.errors import StaveError, VerificationError
from node.feed import FollowState, serialize, verify_feed
from node.identity import Identity
from node.manifest import verify_manifest
from node.rotation import MAX_CHAIN, ROTATION_TYPE, verify_rotation, verify_rotation_chain
from node.signing import MAX_SAFE_INTEGER, canonicalize, sign_document
from tests.support.paths import PROJECT_ROOT

EXAMPLES = 200
TIME_BOUND = 5.0
MEDIA_TIME_BOUND = 20.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # `tally` counts across examples on purpose
    ],
)

# Verdicts per target, printed at the end of each test: "how many inputs each target ran".
RUNS: dict[str, Counter[str]] = {}


@pytest.fixture
def tally(
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> Iterator[Counter[str]]:
    name = request.node.name.removeprefix("test_")
    counts: Counter[str] = Counter()
    yield counts
    RUNS[name] = counts
    with capsys.disabled():
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        print(f"\n  fuzz {name}: {sum(counts.values())} inputs ({verdicts})", end="")


def bounded(function: Callable[[bytes], str], data: bytes, seconds: float = TIME_BOUND) -> str:
    with time_bound(seconds):
        return function(data)


# --- byte-level mutations ----------------------------------------------------------------------

INTERESTING = [
    b"",
    b"0",
    b"-0",
    b"1e999",
    b"-1e999",
    b"NaN",
    b"9007199254740992",
    b"1" * 400,
    b"null",
    b"true",
    b"{}",
    b"[]",
    b"[" * 3000,
    b'"\\ud800"',
    b'"\\u0000"',
    b"\xff\xfe",
    b"\xc3",
    b'"proof":null',
    b'"sequence":3',
    b'"artist":"did:key:z' + b"2" * 200 + b'"',
    b'"proofValue":"z' + b"2" * 3000 + b'"',
]


@dataclass(frozen=True)
class Mutation:
    kind: str
    at: float  # where, as a fraction of the length, so that mutations compose
    size: int
    value: bytes

    def apply(self, data: bytes) -> bytes:
        pos = min(int(self.at * len(data)), max(len(data) - 1, 0))
        if self.kind == "set":
            return data[:pos] + self.value[:1] + data[pos + 1 :]
        if self.kind == "flip":
            if not data:
                return data
            return data[:pos] + bytes([data[pos] ^ (1 << self.size % 8)]) + data[pos + 1 :]
        if self.kind == "insert":
            return data[:pos] + self.value + data[pos:]
        if self.kind == "delete":
            return data[:pos] + data[pos + self.size :]
        if self.kind == "duplicate":
            return data[:pos] + data[pos : pos + self.size] * 2 + data[pos + self.size :]
        if self.kind == "overwrite":
            return data[:pos] + self.value + data[pos + len(self.value) :]
        return data[:pos]  # truncate


MUTATIONS = st.builds(
    Mutation,
    kind=st.sampled_from(["set", "flip", "insert", "delete", "duplicate", "overwrite", "truncate"]),
    at=st.floats(0, 1),
    size=st.integers(1, 64),
    value=st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=8)),
)


def mutated(seeds: Callable[[], tuple[bytes, ...] | list[bytes]], most: int = 6) -> Any:
    return st.tuples(st.sampled_from(range(len(seeds()))), st.lists(MUTATIONS, max_size=most)).map(
        lambda drawn: _apply(seeds()[drawn[0]], drawn[1])
    )


def _apply(data: bytes, mutations: list[Mutation]) -> bytes:
    for mutation in mutations:
        data = mutation.apply(data)
    return data


@FUZZ
@given(body=mutated(documents.feeds))
def test_feed_mutated(body: bytes, tally: Counter[str]) -> None:
    tally[bounded(check_feed, body)] += 1


@FUZZ
@given(body=mutated(documents.manifests))
def test_manifest_mutated(body: bytes, tally: Counter[str]) -> None:
    tally[bounded(check_manifest, body)] += 1


@FUZZ
@given(body=mutated(documents.rotations))
def test_rotation_mutated(body: bytes, tally: Counter[str]) -> None:
    tally[bounded(check_rotation, body)] += 1


# --- generated documents with a verdict known in advance ---------------------------------------

Labelled = tuple[Any, bool]
MISSING = object()


def either(good: list[Any], bad: list[Any], odds: int = 12) -> st.SearchStrategy[Labelled]:
    """A good value, or one time in `odds` a bad one: most documents stay one flaw from valid."""
    return st.tuples(st.integers(0, odds - 1), st.sampled_from(good), st.sampled_from(bad)).map(
        # Hypothesis favours small integers, so the bad value is the one in the middle.
        lambda d: (d[2], False) if d[0] == odds // 2 else (d[1], True)
    )


# Values the verifiers never look at: anything JSON can hold within PROTOCOL §2's limits.
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Values for members the verifiers never read (cheaper to draw than ANY_JSON).
DONT_CARE: st.SearchStrategy[Any] = st.sampled_from(
    [None, "", "Ada", 0, -1.5, 1e300, [], {}, {"a": [1, "b"]}, True, "\u00e9\U0001d11e", [[[]]]]
)
# A member a verifier does not know: ignored when JSON can carry it, fatal when JCS cannot.
EXTRA = st.tuples(
    st.integers(0, 9), ANY_JSON, st.sampled_from([2**53, -(2**60), [1, [2**64]], {"n": 10**20}])
).map(lambda d: (d[2], False) if d[0] == 5 else (d[1], True))
TIMESTAMPS = ["2026-11-26T16:00:00Z", "2026-11-26T17:00:00+01:00", "2026-11-26T16:00:00.250Z"]
NOT_TIMESTAMPS = ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-26T16:00:00", 1764172800, None]
FUTURE = ["2026-12-03T16:00:00Z", "2099-01-01T00:00:00+14:00", "2026-11-27T12:00:01Z"]
PAST = [
    "2026-11-27T12:00:00Z",
    "2026-11-27T11:59:59Z",
    "2026-11-27T13:00:00+02:00",
    "2001-01-01T00:00:00Z",
]
GOOD_TERMS = [
    documents.TERMS.to_json(),
    {"license": "ARR"},
    {"license": "CC0-1.0", "tdmReservation": 0, "dataMining": {"aiTraining": "allowed"}},
]
BAD_TERMS: list[Any] = [
    None,
    "ARR",
    {"dataMining": {}},
    {"license": "ARR", "tdmReservation": 2},
    {"license": "ARR", "tdmReservation": True},
    {"license": "ARR", "dataMining": {"aiTraining": "maybe"}},
    {"license": "ARR", "dataMining": ["notAllowed"]},
]


@st.composite
def signed(
    draw: st.DrawFn,
    unsigned: dict[str, Any],
    by: Identity = documents.ARTIST,
    forger: Identity = documents.OTHER,
) -> Labelled:
    """The document with a proof that is either `by`'s or wrong in one way (`forger`'s, none,
    altered, another cryptosuite)."""
    how = draw(st.sampled_from(["artist"] * 12 + ["other", "none", "value", "type"]))
    if how == "none":
        return unsigned, False
    try:
        document = sign_document(unsigned, forger if how == "other" else by)
    except VerificationError:  # a value JCS cannot hold: nobody can sign it
        return {**unsigned, "proof": {"type": "DataIntegrityProof", "proofValue": "z1"}}, False
    if how == "value":
        value = document["proof"]["proofValue"]
        document["proof"]["proofValue"] = value[:-1] + ("2" if value[-1] != "2" else "3")
    elif how == "type":
        document["proof"]["cryptosuite"] = "eddsa-rdfc-2022"
    return document, how == "artist"


def assemble(draw: st.DrawFn, members: dict[str, Labelled]) -> tuple[dict[str, Any], bool]:
    document = {k: v for k, (v, _) in members.items() if v is not MISSING}
    extras = draw(
        st.dictionaries(st.sampled_from(["album", "x-note", "credits"]), EXTRA, max_size=2)
    )
    document.update({k: v for k, (v, _) in extras.items()})
    ok = all(ok for _, ok in members.values()) and all(ok for _, ok in extras.values())
    return document, ok


@st.composite
def labelled_manifest(draw: st.DrawFn) -> Labelled:
    index = draw(st.integers(0, 99))
    members: dict[str, Labelled] = {
        "type": draw(either(["StaveTrack"], ["StaveFeed", "stavetrack", None, MISSING])),
        "id": (draw(st.sampled_from([f"urn:uuid:{index}", 5, None])), True),
        "revision": (draw(st.sampled_from([1, 2, "3"])), True),
        "artist": draw(either([documents.DID], [documents.OTHER_DID, documents.DID + "x", None])),
        "title": (draw(st.text(max_size=12)), True),
        "published": (draw(st.sampled_from([*TIMESTAMPS, "whenever"])), True),
        "audio": draw(
            either(
                [documents.audio_ref(index, 100), {"cid": "bafkqaaa"}],
                [None, "bafkqaaa", {}, {"cid": 5}, [documents.audio_ref(index, 100)]],
            )
        ),
        "terms": draw(either(GOOD_TERMS, BAD_TERMS)),
    }
    for required in ("id", "revision", "title", "published", "audio", "terms"):
        if draw(st.integers(0, 30)) == 15:
            members[required] = (MISSING, False)
    unsigned, ok = assemble(draw, members)
    document, signed_ok = draw(signed(unsigned))
    return document, ok and signed_ok


@st.composite
def labelled_feed(draw: st.DrawFn) -> tuple[bytes, FollowState, int, bool]:
    last = draw(st.sampled_from([None, None, None, 0, 1, 5]))
    sequence, sequence_ok = draw(
        either([0, 1, 2, 6, MAX_SAFE_INTEGER], ["2", 1.0, -1, True, None, 2**53])
    )
    if sequence_ok and last is not None:
        sequence_ok = sequence > last  # the follower holds other bytes under `last`
    tracks = draw(st.lists(labelled_manifest(), max_size=3))
    members: dict[str, Labelled] = {
        "type": draw(either(["StaveFeed"], ["StaveTrack", None, MISSING])),
        "artist": draw(either([documents.DID], [documents.OTHER_DID, None, MISSING])),
        "name": (draw(DONT_CARE), True),
        "url": (draw(DONT_CARE), True),
        "sequence": (sequence, sequence_ok),
        "previous": (draw(DONT_CARE), True),
        "updated": draw(either(TIMESTAMPS, [*NOT_TIMESTAMPS, MISSING])),
        "expires": draw(either(FUTURE, [*PAST, *NOT_TIMESTAMPS, MISSING])),
        "terms": (draw(DONT_CARE), True),
        "tracks": ([m for m, _ in tracks], all(ok for _, ok in tracks)),
        "withdrawn": draw(
            either(
                [MISSING, [], [{"id": "urn:uuid:1", "at": TIMESTAMPS[0]}]],
                [None, "none", {}, [None], [{"id": 5}], [{"at": TIMESTAMPS[0]}]],
            )
        ),
    }
    if draw(st.integers(0, 11)) == 6:
        members["tracks"] = (draw(st.sampled_from([None, {}, "none", MISSING])), False)
    unsigned, ok = assemble(draw, members)
    document, signed_ok = draw(signed(unsigned))
    body = draw(
        st.sampled_from(
            [
                serialize(document),
                json.dumps(document, indent=2).encode(),
                json.dumps(document, ensure_ascii=True, separators=(", ", ": ")).encode(),
            ]
        )
    )
    max_bytes = draw(st.sampled_from([documents.MAX_FEED_BYTES] * 8 + [len(body), len(body) - 1]))
    state = FollowState(documents.DID, sequence=last, feed_bytes=None if last is None else b"{}")
    return body, state, max_bytes, ok and signed_ok and len(body) <= max_bytes


@FUZZ
@given(drawn=labelled_manifest())
def test_manifest_generated(drawn: Labelled, tally: Counter[str]) -> None:
    manifest, should_pass = drawn
    with time_bound(TIME_BOUND):
        try:
            verify_manifest(manifest, documents.DID)
        except StaveError as e:
            verdict = rejected(e)
            assert not should_pass, f"refused a manifest PROTOCOL §5 accepts: {e}"
        else:
            verdict = "accepted"
            assert should_pass, f"accepted a manifest PROTOCOL §5 refuses: {manifest}"
    tally[verdict] += 1


@FUZZ
@given(drawn=labelled_feed())
def test_feed_generated(drawn: tuple[bytes, FollowState, int, bool], tally: Counter[str]) -> None:
    body, state, max_bytes, should_pass = drawn
    with time_bound(TIME_BOUND):
        try:
            feed = verify_feed(body, state, max_bytes=max_bytes, now=documents.NOW)
        except StaveError as e:
            verdict = rejected(e)
            assert not should_pass, f"refused a feed PROTOCOL §6 accepts: {e}"
        else:
            verdict = "accepted"
            assert should_pass, f"accepted a feed PROTOCOL §6 refuses: {body[:600]!r}"
            assert feed == json.loads(body)
    tally[verdict] += 1


# --- key rotation chains -----------------------------------------------------------------------

KEYS = (documents.ARTIST, *documents.ROTATED)
A, B, C, D = documents.ROTATION_DIDS
NOT_NEXT: list[Any] = [
    "did:web:ada.example",
    "did:key:zNotAKey",
    "did:key:z" + "2" * 100,
    "did:key:z" + base58_encode(b"\xe7\x01" + b"\x02" * 33),  # a secp256k1 did:key
    "did:key:z" + base58_encode(b"\xed\x01" + b"\x02" * 31),  # an Ed25519 key one byte short
    None,
    5,
    [A],
    MISSING,
]
TYPE_MEMBER = either([ROTATION_TYPE], ["StaveFeed", ROTATION_TYPE.lower(), None, MISSING])
ROTATION_AT = either(TIMESTAMPS, [*NOT_TIMESTAMPS, MISSING])
# Unknown members, drawn from fewer values than EXTRA: a chain holds several statements.
ROTATION_EXTRAS = st.dictionaries(
    st.sampled_from(["note", "x-reason"]),
    st.tuples(st.integers(0, 9), DONT_CARE, st.sampled_from([2**53, [1, [2**64]]])).map(
        lambda d: (d[2], False) if d[0] == 5 else (d[1], True)
    ),
    max_size=1,
)


@cache
def link_members(old: str, new: str) -> st.SearchStrategy[tuple[Labelled, Labelled]]:
    """The `artist` and `next` of a statement from `old` to `new`, each sometimes wrong."""
    return st.tuples(
        either([old], [documents.OTHER_DID, old + "x", None, MISSING]),
        either([new], [old, old, old, *NOT_NEXT]),  # naming itself: the likeliest slip
    )


@st.composite
def labelled_statement(draw: st.DrawFn, old: Identity, new: str) -> Labelled:
    """A statement from `old` to `new`, labelled with whether it passes as one by its own
    `artist`: type, artist, next, time, unknown members and proof each sometimes wrong."""
    artist, following = draw(link_members(old.did, new))
    members = {
        "type": draw(TYPE_MEMBER),
        "artist": artist,
        "next": following,
        "at": draw(ROTATION_AT),
        **draw(ROTATION_EXTRAS),
    }
    unsigned = {k: v for k, (v, _) in members.items() if v is not MISSING}
    ok = all(ok for _, ok in members.values())
    forger = next((key for key in KEYS if key.did == new), documents.OTHER)
    statement, signed_ok = draw(signed(unsigned, by=old, forger=forger))
    if signed_ok and draw(st.integers(0, 15)) == 8:  # changed after it was signed
        member = draw(st.sampled_from(["next", "at", "artist"]))
        statement[member] = {"next": documents.OTHER_DID, "at": TIMESTAMPS[2]}.get(member, A)
        signed_ok = statement.get(member) == unsigned.get(member)
    return statement, ok and signed_ok


# Entries a served array may hold besides the artist's chain: statements by the same keys to
# other dids (forks, loops), by a stranger, and values that are no statement at all.
OTHER_ENTRIES = st.one_of(
    st.sampled_from([None, 5, "next", [], {}, {"artist": A}]).map(lambda v: (v, False)),
    st.sampled_from(
        [
            (old, new)
            for old in (*KEYS, documents.OTHER)
            for new in (*documents.ROTATION_DIDS, documents.OTHER_DID)
            if new != old.did
        ]
    ).flatmap(lambda link: labelled_statement(*link)),
)


@st.composite
def labelled_chain(draw: st.DrawFn) -> tuple[bytes, list[Labelled]]:
    """The bytes served for the chain A→B→C→D, each statement right or wrong in one way, with
    statements dropped, others inserted, two swapped, or too many of them; and the entries."""
    entries = [draw(labelled_statement(old, new.did)) for old, new in pairwise(KEYS)]
    if draw(st.integers(0, 7)) == 4:
        del entries[draw(st.integers(0, len(entries) - 1))]
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), draw(OTHER_ENTRIES))
    if len(entries) > 1 and draw(st.integers(0, 9)) == 5:
        i, j = draw(st.lists(st.integers(0, len(entries) - 1), min_size=2, max_size=2, unique=True))
        entries[i], entries[j] = entries[j], entries[i]
    if entries and draw(st.integers(0, 19)) == 10:
        entries = (entries * (MAX_CHAIN + 1))[: MAX_CHAIN + 1]
    served: Any = [entry for entry, _ in entries]
    if len(entries) == 1 and draw(st.booleans()):
        served = served[0]  # one statement may be served as an object
    body = draw(
        st.sampled_from(
            [
                json.dumps(served, ensure_ascii=False, separators=(",", ":")).encode(),
                json.dumps(served, indent=2).encode(),
                json.dumps(served, ensure_ascii=True, separators=(", ", ": ")).encode(),
            ]
        )
    )
    return body, entries


def expected_walk(entries: list[Labelled], followed: str, target: str) -> list[Any] | None:
    """The statements the extension's rules accept from `followed` to `target`, or None: at most
    MAX_CHAIN; the walk starts at the first statement for `followed`, every statement from there
    is valid and for the did the one before named, until one names `target`."""
    if len(entries) > MAX_CHAIN:
        return None
    for_followed = [isinstance(e, dict) and e.get("artist") == followed for e, _ in entries]
    if True not in for_followed:
        return None
    used = []
    current = followed
    for entry, valid in entries[for_followed.index(True) :]:
        if current == target:
            break
        if not (valid and isinstance(entry, dict) and entry.get("artist") == current):
            return None
        used.append(entry)
        current = entry["next"]
    return used if current == target else None


@FUZZ
@given(
    drawn=labelled_chain(),
    walk=st.sampled_from(
        [(A, D), (A, C), (B, D), (B, C), (A, B), (C, D), (A, documents.OTHER_DID)]
    ),
)
def test_rotation_generated(
    drawn: tuple[bytes, list[Labelled]], walk: tuple[str, str], tally: Counter[str]
) -> None:
    body, entries = drawn
    followed, target = walk
    expected = expected_walk(entries, followed, target)
    with time_bound(TIME_BOUND):
        for entry, valid in entries:  # each statement passes for its own artist, for no other
            if not isinstance(entry, dict):
                continue
            claimed = entry.get("artist")
            for did in dict.fromkeys([claimed, *documents.ROTATION_DIDS, documents.OTHER_DID]):
                if not isinstance(did, str):
                    continue
                should_pass = valid and did == claimed
                try:
                    following = verify_rotation(entry, did)
                except StaveError as e:
                    rejected(e)
                    assert not should_pass, f"refused a statement the extension accepts: {e}"
                else:
                    assert should_pass, f"accepted for {did} a statement it refuses: {entry}"
                    assert following == entry["next"]
        try:
            used = verify_rotation_chain(body, followed, target)
        except StaveError as e:
            verdict = rejected(e)
            assert expected is None, f"refused a chain the extension accepts: {e}"
        else:
            verdict = f"accepted ({len(used)} statements)"
            assert expected is not None, f"accepted a chain the extension refuses: {body[:600]!r}"
            assert used == expected
    tally[verdict] += 1


# --- JCS ---------------------------------------------------------------------------------------

JSON_ISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**53, -(2**53)])
    | st.floats()  # NaN and the infinities too: they have no JCS form
    | st.sampled_from([1e21, 1e-7, 5e-324, -0.0, 333333333.33333329, 1e23, 4.35, 0.002])
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=()), max_size=6) | st.integers(0, 3),
            inner,
            max_size=4,
        )
        # Mappings that are not dicts have no JSON form; a dict subclass is a dict.
        | st.dictionaries(st.text(max_size=3), inner, max_size=2).map(MappingProxyType)
        | st.dictionaries(st.text(max_size=3), inner, max_size=2).map(OrderedDict)
    ),
    max_leaves=20,
)


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value] if depth % 2 else {"a": value}
    return value


@FUZZ
@given(value=st.one_of(JSON_ISH, st.integers(250, 3000).map(nested)))
def test_jcs_values(value: Any, tally: Counter[str]) -> None:
    with time_bound(TIME_BOUND):
        verdict = check_jcs_value(value)
        if verdict == "jcs" and isinstance(value, dict):
            reordered = dict(reversed(list(value.items())))
            assert canonicalize(reordered) == canonicalize(value), "JCS depends on member order"
    tally[verdict] += 1


def test_jcs_rfc8785_examples() -> None:
    """RFC 8785 appendix B number samples and §3.2.3's sorting example, through canonicalize."""
    assert canonicalize(-0.0) == b"0"
    samples = {
        0.0: b"0",
        5e-324: b"5e-324",
        1.7976931348623157e308: b"1.7976931348623157e+308",
        9007199254740992.0: b"9007199254740992",
        295147905179352830000.0: b"295147905179352830000",
        1e21: b"1e+21",
        0.000001: b"0.000001",
        1e-7: b"1e-7",
        333333333.3333333: b"333333333.3333333",
    }
    for number, expected in samples.items():
        assert canonicalize(number) == expected, number
    sorting = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = [
        json.loads(b'"' + k + b'"')
        for k in (b"\\r", b"1", b"\\u0080", b"\\u00f6", b"\\u20ac", b"\\ud83d\\ude00", b"\\ufb33")
    ]
    assert list(json.loads(canonicalize(sorting))) == keys


# --- CIDs --------------------------------------------------------------------------------------

BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
CID_TEXT = st.one_of(
    st.sampled_from(documents.cid_strings()),
    st.builds(
        lambda version, codec, digest: str(CID(version, codec, 0x12, digest)),
        st.just(1),
        st.sampled_from([0x55, 0x70]),
        st.binary(min_size=32, max_size=32),
    ),
    st.tuples(st.sampled_from(documents.cid_strings()), st.lists(MUTATIONS, max_size=3)).map(
        lambda d: _apply(d[0].encode(), d[1]).decode("utf-8", "replace")
    ),
    st.builds(lambda s: "b" + s, st.text(BASE32, max_size=80)),
    st.builds(lambda s: "z" + s, st.text(BASE58, max_size=80)),
    st.builds(lambda s: "Qm" + s, st.text(BASE58, min_size=40, max_size=46)),
    st.text(max_size=600),
)


@FUZZ
@given(text=CID_TEXT)
def test_cid_text(text: str, tally: Counter[str]) -> None:
    with time_bound(TIME_BOUND):
        tally[check_cid_text(text)] += 1


@st.composite
def binary_cid(draw: st.DrawFn) -> bytes:
    """Binary CIDs built field by field, mostly valid, each field sometimes not."""
    version = draw(st.sampled_from([b"\x01"] * 6 + [b"\x00", b"\x02", b"\x81\x00", b""]))
    codec = draw(
        st.sampled_from([b"\x55", b"\x70"] * 3 + [b"\x71", b"\xf0\x01", b"\x80" * 10 + b"\x01"])
    )
    hash_code = draw(st.sampled_from([b"\x12"] * 4 + [b"\x00", b"\x13", b"\x92\x00"]))
    digest = draw(st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=140)))
    length = draw(st.sampled_from([len(digest)] * 4 + [len(digest) + 1, max(len(digest) - 1, 0)]))
    return version + codec + hash_code + varint(length) + digest


@FUZZ
@given(data=st.one_of(binary_cid(), binary_cid(), binary_cid(), st.binary(max_size=200)))
def test_cid_bytes(data: bytes, tally: Counter[str]) -> None:
    with time_bound(TIME_BOUND):
        tally[check_cid(data)] += 1


# --- tags on mutated audio files ---------------------------------------------------------------


def _media_seeds() -> list[bytes]:
    return [path.read_bytes() for path in documents.AUDIO_FIXTURES]


@dataclass(frozen=True)
class HeaderMutation:
    """A mutation aimed where parsers trust the file: the first and last few KiB."""

    where: str
    offset: int
    mutation: Mutation

    def apply(self, data: bytes) -> bytes:
        span = 4096
        if self.where == "head":
            start = min(self.offset, len(data))
        elif self.where == "tail":
            start = max(len(data) - span + self.offset, 0)
        else:
            return self.mutation.apply(data)
        window = data[start : start + span]
        return data[:start] + self.mutation.apply(window) + data[start + span :]


SIZE_FIELDS = st.sampled_from(
    [
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\xff",
        b"\x7f\xff\xff\xff",
        b"\x00\x00\x00\x08",
        b"\x80\x00\x00\x00",
    ]
)
MEDIA_MUTATION = st.builds(
    HeaderMutation,
    where=st.sampled_from(["head", "head", "tail", "anywhere"]),
    offset=st.integers(0, 512),
    mutation=st.one_of(
        MUTATIONS,
        st.builds(
            Mutation,
            kind=st.just("overwrite"),
            at=st.floats(0, 1),
            size=st.just(4),
            value=SIZE_FIELDS,
        ),
    ),
)


@FUZZ
@given(
    index=st.integers(0, len(documents.AUDIO_FIXTURES) - 1),
    mutations=st.lists(MEDIA_MUTATION, min_size=1, max_size=4),
)
def test_media_mutated(index: int, mutations: list[HeaderMutation], tally: Counter[str]) -> None:
    data = _media_seeds()[index]
    for mutation in mutations:
        data = mutation.apply(data)
    try:
        tally[bounded(check_media, data, MEDIA_TIME_BOUND)] += 1
    except ContractBroken as e:
        fixture = documents.AUDIO_FIXTURES[index].name
        raise ContractBroken(f"{fixture} with {mutations}: {e}") from e


def test_every_audio_fixture_is_tagged_intact() -> None:
    for path in documents.AUDIO_FIXTURES:
        assert check_media(path.read_bytes()) == "tagged", path.name


def test_seed_documents_verify() -> None:
    for body in documents.feeds():
        assert check_feed(body) == "accepted"
    for body in documents.manifests():
        assert check_manifest(body) == "accepted"
    for text in documents.cid_strings():
        assert check_cid_text(text) == "accepted"
    assert [check_rotation(body) for body in documents.rotations()] == [
        "accepted chain A-C + chain B-C + chain A-D",
        "accepted chain A-C + chain B-C + chain A-D",
        "accepted statement A-B",
        "accepted chain B-C + statement B-C",
        "accepted statement C-D",
        "accepted chain B-C",
    ]


LONG = "x" * 20_000


def _feed_with(path: tuple[str | int, ...], value: Any, sign: bool = False) -> bytes:
    document = json.loads(documents.feeds()[0])
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return serialize(sign_document(document, documents.ARTIST) if sign else document)


@pytest.mark.parametrize(
    "body",
    [
        _feed_with(("type",), LONG),
        _feed_with(("artist",), LONG),
        _feed_with(("proof", "type"), LONG),
        _feed_with(("proof", "cryptosuite"), LONG),
        _feed_with(("proof", "proofPurpose"), LONG),
        _feed_with(("proof", "verificationMethod"), LONG),
        _feed_with(("proof", "proofValue"), "z" + "2" * 300_000),
        _feed_with(("expires",), LONG, sign=True),
        _feed_with(("expires",), "2001-01-01T00:00:00." + "1" * 20_000 + "Z", sign=True),
        _feed_with(("updated",), LONG, sign=True),
        _feed_with(("tracks", 0, "id"), LONG, sign=True),
        _feed_with(("tracks", 0, "artist"), LONG, sign=True),
        b"[" * 100_000 + b"]" * 100_000,
        serialize({"a": nested(300)}),
    ],
    ids=[
        "type",
        "artist",
        "proof-type",
        "cryptosuite",
        "purpose",
        "method",
        "proof-value",
        "expires",
        "expired-long",
        "updated",
        "track-id",
        "track-artist",
        "deep-json",
        "deep-jcs",
    ],
)
def test_hostile_feed_is_refused_quickly_in_one_short_line(body: bytes) -> None:
    """Each of these once escaped as a RecursionError, hung, or echoed the whole value."""
    with time_bound(1.0):
        assert check_feed(body) == "rejected"


def test_hostile_did_is_refused_quickly() -> None:
    from node.identity import public_key_from_did

    for did in ("did:key:z" + "2" * 300_000, "did:web:" + LONG):
        with time_bound(1.0), pytest.raises(VerificationError) as refused:
            public_key_from_did(did)
        assert len(str(refused.value)) < 200


@pytest.mark.parametrize("name", ["tone.wav", "tone.aiff"])
def test_container_size_that_disagrees_with_the_file_is_refused(name: str) -> None:
    """Found by fuzzing: mutagen put its ID3 chunk where the wrong RIFF/FORM size said the file
    ended, and a file probe had accepted came out of write_terms corrupt."""
    data = bytearray(next(p for p in documents.AUDIO_FIXTURES if p.name == name).read_bytes())
    data[5] ^= 0x05  # the second byte of the container's size field
    assert check_media(bytes(data)) == "rejected"


def test_the_atheris_harness_runs_a_target_and_counts_its_inputs(tmp_path: Path) -> None:
    """The long mode's command works (one target, a few inputs: the long runs are for people)."""
    pytest.importorskip("atheris")
    places = ["--corpus", str(tmp_path / "corpus"), "--crashes", str(tmp_path / "crashes")]
    done = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "cid", "--runs", "300", *places],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 300 runs" in done.stderr
    assert len(list((tmp_path / "corpus").iterdir())) > len(documents.cid_strings())  # it grew
    assert list((tmp_path / "crashes").iterdir()) == []

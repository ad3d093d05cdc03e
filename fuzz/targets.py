"""The fuzz targets: one input in, a verdict out, or `ContractBroken` when Stave misbehaves.

The contract every target checks (issue 7): an input ends in a clean rejection — a `StaveError`
whose message is one line of bounded length — or in a result that is correct, never in another
exception. What "correct" means is each target's own oracle:

- `feed`, `manifest`: whatever verifies is, as JCS, one of the documents the artist signed (an
  Ed25519 forgery aside, only bytes meaning the same document can pass); a feed also passes
  only for the followed artist and never rolls back.
- `rotation`: a chain `verify_rotation_chain` returns is made only of statements the keys
  really signed (as JCS), each for the did the one before named, from the followed did to the
  target; a statement `verify_rotation` passes is one of them, for the followed did, and its
  `next` is what it returns; nothing ever leads to a did no key rotated to.
- `jcs`: `canonicalize` agrees with an independent RFC 8785 serialiser on every value, both on
  whether the value has a JCS form and on its bytes, and its output parses back to the value.
- `cid`: a string `CID.parse` accepts is spelled exactly as the CID it returns encodes; a binary
  CID round-trips byte for byte; a dag-pb block decodes or is refused.
- `media`: a file `probe` accepts gets the terms written into it and read back from it intact,
  and still probes as the same format with its other tags kept.

A per-input time bound is the caller's: libFuzzer's `-timeout`, `time_bound` in the tests.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz import documents
from fuzz.jcs_reference import NoJCSForm, json_equal, parse_jcs, reference_jcs
from node import media
from node.cid import CID, base58_encode, decode_dag_pb
from node.errors import StaveError
from node.feed import FollowState, parse_json, verify_feed
from node.manifest import verify_manifest
from node.rotation import MAX_ROTATION_BYTES, verify_rotation, verify_rotation_chain
from node.signing import canonicalize

# A rejection names the thing and the reason in one line; it never echoes a whole hostile input.
MAX_MESSAGE = 1000


class ContractBroken(AssertionError):
    """An input made Stave do something the contract forbids."""


class Hang(Exception):
    """An input took longer than the per-input time bound."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise `Hang` in the main thread if the block runs longer than `seconds`."""

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"input took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def rejected(error: StaveError, label: str = "rejected") -> str:
    """The verdict for a clean rejection; ContractBroken if its message is not one short line."""
    message = str(error)
    if not message or "\n" in message or "\r" in message:
        raise ContractBroken(f"{type(error).__name__} message is not one line: {message[:200]!r}")
    if len(message) > MAX_MESSAGE:
        raise ContractBroken(
            f"{type(error).__name__} message is {len(message)} characters: {message[:200]!r}…"
        )
    return label


def check(condition: bool, why: str) -> None:
    if not condition:
        raise ContractBroken(why)


# --- feed and manifest verification -----------------------------------------------------------


def check_feed(body: bytes) -> str:
    """verify_feed as a new follower, as one that accepted the second seed, and as a stranger."""
    second = documents.feeds()[1]
    verdicts = []
    for state in (
        FollowState(documents.DID),
        FollowState(documents.DID, sequence=2, feed_bytes=second),
    ):
        try:
            feed = verify_feed(body, state, max_bytes=documents.MAX_FEED_BYTES, now=documents.NOW)
        except StaveError as e:
            verdicts.append(rejected(e))
            continue
        check(
            canonicalize(feed) in documents.signed_forms(),
            "verify_feed accepted a feed the artist never signed",
        )
        if state.sequence is not None:
            check(feed["sequence"] >= state.sequence, "verify_feed accepted a rollback")
            check(
                feed["sequence"] > state.sequence or body == state.feed_bytes,
                "verify_feed accepted different bytes under an accepted sequence",
            )
        verdicts.append("accepted")
    try:
        verify_feed(
            body,
            FollowState(documents.OTHER_DID),
            max_bytes=documents.MAX_FEED_BYTES,
            now=documents.NOW,
        )
    except StaveError as e:
        rejected(e)
    else:
        raise ContractBroken("verify_feed accepted a feed for an artist who did not sign it")
    return verdicts[0]


def check_manifest(body: bytes) -> str:
    """verify_manifest on the JSON in `body`, for its artist and for a stranger."""
    try:
        manifest = parse_json(body, "manifest")
    except StaveError as e:
        return rejected(e)
    try:
        verify_manifest(manifest, documents.OTHER_DID)
    except StaveError as e:
        rejected(e)
    else:
        raise ContractBroken(
            "verify_manifest accepted a manifest for an artist who did not sign it"
        )
    try:
        verify_manifest(manifest, documents.DID)
    except StaveError as e:
        return rejected(e)
    check(
        canonicalize(manifest) in documents.signed_forms(),
        "verify_manifest accepted a manifest the artist never signed",
    )
    return "accepted"


# --- key rotation statements -------------------------------------------------------------------


def check_rotation(body: bytes) -> str:
    """`body` as `/.well-known/stave-rotation.json`: walked from A to C (stopping mid-chain), from
    B to C (starting mid-chain), from A to D (the whole chain) and from A to a stranger's did;
    and read as one statement for each of A, B, C and for the stranger."""
    names = dict(zip(documents.ROTATION_DIDS, "ABCD", strict=True))
    a, b, c, d = documents.ROTATION_DIDS
    accepted = []
    for followed, target in ((a, c), (b, c), (a, d)):
        try:
            statements = verify_rotation_chain(body, followed, target)
        except StaveError as e:
            rejected(e)
            continue
        _check_chain(statements, followed, target)
        accepted.append(f"chain {names[followed]}-{names[target]}")
    for followed in (a, b, c):
        try:
            following = verify_rotation(body, followed)
        except StaveError as e:
            rejected(e)
            continue
        _check_chain([parse_json(body, "rotation statement")], followed, following)
        accepted.append(f"statement {names[followed]}-{names.get(following, '?')}")
    stranger = documents.OTHER_DID
    for verify in (
        lambda: verify_rotation_chain(body, a, stranger),
        lambda: verify_rotation(body, stranger),
    ):
        try:
            verify()
        except StaveError as e:
            rejected(e)
        else:
            raise ContractBroken("a rotation was accepted to or from a did no key rotated to")
    return "accepted " + " + ".join(accepted) if accepted else "rejected"


def _check_chain(statements: list[Any], followed: str, target: str) -> None:
    """ContractBroken unless `statements` are signed ones leading from `followed` to `target`."""
    check(bool(statements), f"an empty rotation chain was accepted from {followed} to {target}")
    current = followed
    for number, statement in enumerate(statements, start=1):
        check(
            isinstance(statement, dict) and canonicalize(statement) in documents.rotation_forms(),
            f"rotation statement {number} was accepted, but no key signed it",
        )
        check(
            statement["artist"] == current,
            f"rotation statement {number} is for {statement['artist']}, not {current}",
        )
        current = statement["next"]
    check(current == target, f"the accepted rotation chain leads to {current}, not {target}")


# --- JCS ---------------------------------------------------------------------------------------


def check_jcs_value(value: Any) -> str:
    """canonicalize(value) against the reference serialiser; the verdict is 'jcs' or 'no-jcs'."""
    try:
        expected: bytes | None = reference_jcs(value)
    except NoJCSForm:
        expected = None
    try:
        produced = canonicalize(value)
    except StaveError as e:
        rejected(e)
        check(expected is None, f"canonicalize refused a value with a JCS form: {expected!r:.200}")
        return "no-jcs"
    check(expected is not None, f"canonicalize gave {produced!r:.200} for a value with no JCS form")
    check(produced == expected, f"canonicalize gave {produced!r:.200}, RFC 8785 {expected!r:.200}")
    parsed = parse_jcs(produced)
    check(json_equal(parsed, value), "the JCS form does not parse back to the value")
    check(canonicalize(parsed) == produced, "canonicalize is not idempotent")
    return "jcs"


def check_jcs(data: bytes) -> str:
    """JSON text when `data` is JSON (non-finite constants allowed), else a value it encodes."""
    try:
        value = json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        value = value_from_bytes(data)
    return check_jcs_value(value)


def value_from_bytes(data: bytes) -> Any:
    """A JSON-ish value decoded from arbitrary bytes: every input means some value."""
    reader = _Reader(data)
    return reader.value(0)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk.ljust(n, b"\0")

    def byte(self) -> int:
        return self.take(1)[0]

    def text(self) -> str:
        raw = self.take(self.byte() % 16 * 2)
        # UTF-16 with surrogatepass yields lone surrogates and astral characters alike.
        return raw.decode("utf-16-le", "surrogatepass")

    def value(self, depth: int) -> Any:
        kind = self.byte() % 9
        if self.pos >= len(self.data) or depth > 300:
            kind = min(kind, 5)
        if kind == 0:
            return None
        if kind == 1:
            return bool(self.byte() & 1)
        if kind == 2:
            return int.from_bytes(self.take(1 + self.byte() % 8), "big", signed=True)
        if kind == 3:
            return float(struct.unpack(">d", self.take(8))[0])
        if kind in (4, 5):
            return self.text()
        if kind == 6:
            return [self.value(depth + 1) for _ in range(self.byte() % 5)]
        if kind == 7:
            members: dict[Any, Any] = {}
            for _ in range(self.byte() % 5):
                key: Any = self.text() if self.byte() % 8 else self.byte()
                members[key] = self.value(depth + 1)
            return members
        # A deep chain: the depth limit and recursion.
        nested: Any = self.value(depth + 1)
        for _ in range(self.byte() * 2):
            nested = [nested]
        return nested


# --- CIDs --------------------------------------------------------------------------------------


def check_cid_text(text: str) -> str:
    try:
        cid = CID.parse(text)
    except StaveError as e:
        return rejected(e)
    if text.startswith("Qm"):
        check(cid.version == 0 and str(cid) == text, f"{text!r} parsed as {cid}")
    elif text.startswith("b"):
        check(str(cid) == text, f"{text!r} parsed as {cid}, which is spelled differently")
    elif text.startswith("z"):
        check("z" + base58_encode(cid.to_bytes()) == text, f"{text!r} parsed as {cid}")
    else:
        raise ContractBroken(f"{text!r} parsed as {cid} without a known prefix")
    check(CID.parse(str(cid)) == cid, f"{cid} does not parse back to itself")
    check(CID.from_bytes(cid.to_bytes()) == cid, f"{cid} does not round-trip in binary")
    check(str(CID.parse(str(cid.to_v1()))) == str(cid.to_v1()), f"{cid}'s CIDv1 is unstable")
    return "accepted"


def check_cid(data: bytes) -> str:
    """The input as a CID string, as a binary CID, and as a dag-pb block."""
    verdicts = [check_cid_text(data.decode("utf-8", "replace"))]
    try:
        cid = CID.from_bytes(data)
    except StaveError as e:
        verdicts.append(rejected(e))
    else:
        check(
            cid.to_bytes() == data, f"binary CID {data.hex()} re-encodes as {cid.to_bytes().hex()}"
        )
        verdicts.append("binary accepted")
    try:
        decode_dag_pb(data)
    except StaveError as e:
        rejected(e)
    else:
        verdicts.append("dag-pb accepted")
    accepted = [verdict for verdict in verdicts if verdict != "rejected"]
    return " and ".join(accepted) if accepted else "rejected"


# --- tags on mutated audio ---------------------------------------------------------------------

EMBEDDED = media.EmbeddedTerms(
    copyright="2026 Ada Example",
    license="CC-BY-NC-ND-4.0",
    license_url="https://creativecommons.org/licenses/by-nc-nd/4.0/",
    terms_in_words="© 2026 Ada Example. Not allowed without the artist's permission: AI training.",
    tdm_reservation=1,
    ai_training="notAllowed",
    artist_did=documents.DID,
    track_id="urn:uuid:00000000-0000-4000-8000-000000000001",
    feed_url="https://ada.example/feed.json",
)


def check_media(data: bytes) -> str:
    """probe the bytes as a file; if accepted, write the terms and read them back."""
    directory = Path(tempfile.mkdtemp(prefix="stave-fuzz-"))
    try:
        return _check_media_file(directory / "input", data)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _check_media_file(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    try:
        info = media.probe(path)
    except StaveError as e:
        return rejected(e)
    check(info.format in media.SUPPORTED_FORMATS, f"probe answered format {info.format!r}")
    check(info.duration_seconds > 0, f"probe accepted {info.duration_seconds} s of audio")
    try:
        media.write_terms(path, EMBEDDED)
    except StaveError as e:
        return rejected(e, "probed, tags refused")
    try:
        again = media.probe(path)
        found = media.read_terms(path)
    except StaveError as e:
        raise ContractBroken(f"{info.format} file no longer reads after write_terms: {e}") from e
    check(again.format == info.format, f"write_terms turned {info.format} into {again.format}")
    expected = EMBEDDED.fields()
    if info.format in ("mp3", "wav", "aiff"):
        expected["LICENSE_URL"] = EMBEDDED.license_url
    check(found == expected, f"{info.format}: read back {found}, wrote {expected}")
    kept = (info.title, info.artist, info.album)
    check((again.title, again.artist, again.album) == kept, f"{info.format}: tags lost {kept}")
    return "tagged"


def media_seeds() -> list[bytes]:
    return [path.read_bytes() for path in documents.AUDIO_FIXTURES]


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A fuzz target: its check, the inputs it starts from, and the largest input worth trying."""

    name: str
    check: Callable[[bytes], str]
    seeds: Callable[[], list[bytes]]
    max_len: int
    runs: int  # inputs in a default (long) run: a few minutes on one core
    timeout_seconds: int = 10


def _jcs_seeds() -> list[bytes]:
    return [
        *documents.manifests(),
        b'{"b":[1e21,1e-7,-0.0,5e-324,333333333.33333329],"a":"\\u00e9\\ud83c\\udfb5","\\u20ac":1}',
        b'{"big":9007199254740992,"nan":NaN}',
        b"\x07\x03\x02hi\x03\x00\x00\x00\x00\x00\x00\xf0\x7f",
    ]


TARGETS: dict[str, Target] = {
    "feed": Target("feed", check_feed, lambda: list(documents.feeds()), 1 << 16, 200_000),
    "manifest": Target(
        "manifest", check_manifest, lambda: list(documents.manifests()), 1 << 14, 200_000
    ),
    "rotation": Target(
        "rotation",
        check_rotation,
        lambda: list(documents.rotations()),
        MAX_ROTATION_BYTES,
        1_000_000,
    ),
    "jcs": Target("jcs", check_jcs, _jcs_seeds, 1 << 12, 30_000),
    "cid": Target(
        "cid", check_cid, lambda: [c.encode() for c in documents.cid_strings()], 1 << 10, 500_000
    ),
    "media": Target("media", check_media, media_seeds, 1 << 19, 10_000, timeout_seconds=30),
}

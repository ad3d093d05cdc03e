"""The signed documents, rotation statements, CIDs and audio files the fuzz targets start from.

Everything here is deterministic: the keys come from fixed seeds, every timestamp is fixed, so a
seed corpus, a failing input and its verdict are the same on every run.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.cid import CID, DAG_PB, RAW, UnixFSImporter
from node.feed import build_feed, serialize
from node.identity import Identity
from node.manifest import build_manifest, content_ref
from node.rotation import build_rotation
from node.signing import canonicalize, sign_document
from node.terms import Terms

ARTIST = Identity(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = Identity(Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132))))
DID = ARTIST.did
OTHER_DID = OTHER.did

# The keys the artist rotated to, in order (docs/protocol-extensions.md "Key rotation"): the
# artist's key names the first, each names the next.
ROTATED = tuple(
    Identity(Ed25519PrivateKey.from_private_bytes(bytes(range(start, start + 32))))
    for start in (40, 140, 200)
)
ROTATION_DIDS = (DID, *(identity.did for identity in ROTATED))
ROTATED_AT = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)

CREATED = "2026-11-26T16:00:00Z"
UPDATED = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
# The moment the fuzzed feeds are verified at: after they were signed, before they expire.
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MAX_FEED_BYTES = 1 << 20

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STAVE_SHARED", ROOT.parent / "shared"))
AUDIO_FIXTURES = sorted(p for p in (SHARED / "fixtures" / "audio").iterdir() if p.is_file())

TERMS = Terms(
    license="CC-BY-NC-ND-4.0",
    license_url="https://creativecommons.org/licenses/by-nc-nd/4.0/",
    copyright="2026 Ada Example",
)
# Titles that put every kind of JSON string escape and multi-byte UTF-8 into the documents.
TITLES = (
    "Tone in A",
    'Quote " and back\\slash, tab\t, bell\x07 and unit separator\x1f',
    "Éte\u0301 — 夏 — \U0001d11e clef",
)


def audio_ref(seed: int, size: int) -> dict[str, Any]:
    """A content reference with a CID computed from deterministic bytes."""
    importer = UnixFSImporter()
    importer.update(seed.to_bytes(4, "big") * (size // 4))
    return content_ref(str(importer.finish().root), "audio/mpeg", size)


def signed_manifest(index: int, identity: Identity = ARTIST, revision: int = 1) -> dict[str, Any]:
    """A signed manifest; `index` picks its title, id and audio."""
    extra: dict[str, Any] = {"album": "Fuzz", "trackNumber": index + 1}
    if index % 2:
        extra["credits"] = [{"role": "composer", "name": "Ada"}, {"role": "mix", "weight": 0.25}]
    unsigned = build_manifest(
        track_id=f"urn:uuid:00000000-0000-4000-8000-{index:012d}",
        revision=revision,
        artist=identity.did,
        title=TITLES[index % len(TITLES)],
        published=CREATED,
        duration_seconds=183.4 + index,
        audio=audio_ref(index, 4096 * (index + 1)),
        cover=content_ref(str(CID.of_block(b"cover %d" % index)), "image/png", 7)
        if index
        else None,
        terms=TERMS,
        extra=extra,
    )
    return sign_document(unsigned, identity, created=CREATED)


def signed_feed(sequence: int, previous: str | None, manifests: list[dict[str, Any]]) -> bytes:
    """The bytes of a signed feed, as a node stores and serves them."""
    unsigned = build_feed(
        artist=DID,
        name="Ada Example",
        url="https://ada.example/",
        sequence=sequence,
        previous=previous,
        updated=UPDATED,
        expires_days=7,
        terms=TERMS,
        tracks=manifests,
        withdrawn=[("urn:uuid:00000000-0000-4000-8000-000000000099", CREATED)] if previous else [],
    )
    return serialize(sign_document(unsigned, ARTIST, created=CREATED))


@cache
def manifests() -> tuple[bytes, ...]:
    """Signed manifests as stored in a catalog: with and without cover, credits, escapes."""
    return tuple(serialize(signed_manifest(i)) for i in range(3))


@cache
def feeds() -> tuple[bytes, ...]:
    """A first feed (sequence 1) and the next one (sequence 2, pointing back at the first)."""
    first = signed_feed(1, None, [signed_manifest(1), signed_manifest(0)])
    second = signed_feed(
        2, str(CID.of_block(first)), [signed_manifest(2), signed_manifest(1, revision=2)]
    )
    return first, second


@cache
def signed_forms() -> frozenset[bytes]:
    """The JCS form of every document the artist signed for the fuzz corpus."""
    from node.feed import parse_json

    return frozenset(canonicalize(parse_json(body)) for body in (*feeds(), *manifests()))


@cache
def rotation_statements() -> tuple[dict[str, Any], ...]:
    """The statements A→B, B→C, C→D of ROTATION_DIDS, each by the key before, an hour apart."""
    return tuple(
        build_rotation(old, new.did, ROTATED_AT + timedelta(hours=hour))
        for hour, (old, new) in enumerate(pairwise((ARTIST, *ROTATED)))
    )


@cache
def rotations() -> tuple[bytes, ...]:
    """What `/.well-known/stave-rotation.json` may serve: the chain as an array (compact, as a
    node serves it, and indented), each statement alone as an object, and the chain from B."""
    chain = list(rotation_statements())
    return (
        json.dumps(chain, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(chain, indent=2).encode(),
        *(serialize(statement) for statement in chain),
        json.dumps(chain[1:], ensure_ascii=False, separators=(",", ":")).encode(),
    )


@cache
def rotation_forms() -> frozenset[bytes]:
    """The JCS form of every rotation statement the keys signed."""
    return frozenset(canonicalize(statement) for statement in rotation_statements())


def cid_strings() -> list[str]:
    """CIDs in every form `CID.parse` reads."""
    leaf = CID.of_block(b"hello")
    node = CID.of_block(b"\x12\x00", DAG_PB)
    return [
        str(leaf),
        str(node),
        str(CID(0, DAG_PB, node.hash_code, node.digest)),
        "z" + _base58(leaf.to_bytes()),
        str(CID.identity(b"")),
        str(CID.identity(b"x" * 100, RAW)),
        "bafkqaaa",
    ]


def _base58(data: bytes) -> str:
    from node.cid import base58_encode

    return base58_encode(data)

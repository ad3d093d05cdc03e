"""Tamper coverage: change one byte at a time and check that verification notices every change.

A real node publishes three tracks (one with a cover and a title that needs JSON escapes, one
larger than a 1 MiB chunk). Then, at positions drawn with a fixed seed, one byte at a time is
replaced by another value:

- in the latest feed, as its bytes are stored and served: `verify_feed` must refuse it;
- in a track manifest, as its JSON bytes are stored in the catalog: `verify_manifest` must;
- in each stored audio file: the bytes must no longer hash to the file's CID (`Store.verify`).

A changed byte that leaves the document meaning the same (a hex digit's case in a `\\u001f`
escape) may pass, and only then: an accepted change must parse to exactly the original
document. Such changes are counted, not hidden. A targeted pass also tries every byte value at
every position inside the documents' escape sequences, where such changes live.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node.datadir import init_data_dir, open_node
from node.errors import StaveError
from node.feed import FollowState, parse_json, verify_feed
from node.manifest import verify_manifest
from node.publish import Publisher, TrackChoices
from node.store import Store
from tests.support.audio import write_wav
from tests.support.shared import FIXTURES

SEED = 20261126
POSITIONS = 1200
ESCAPED_TITLE = 'Quote " back\\slash, tab\t, unit\x1fseparator — é'


@dataclass(frozen=True)
class Published:
    root: Path
    did: str
    feed: bytes
    manifest: bytes
    audio_cids: list[str]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    base = tmp_path_factory.mktemp("tamper")
    root = base / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")
    large = write_wav(base / "large.wav", 1_200_000, seed=SEED)

    async def publish() -> tuple[str, list[str]]:
        async with open_node(root) as node:
            publisher = Publisher(node)
            await publisher.add(FIXTURES / "tone.wav")
            escaped = await publisher.add(FIXTURES / "tone.mp3", TrackChoices(title=ESCAPED_TITLE))
            big = await publisher.add(large)
            return node.identity.did, [escaped["audio"]["cid"], big["audio"]["cid"]]

    did, audio = asyncio.run(publish())
    with sqlite3.connect(root / "catalog.sqlite") as db:
        (feed_cid,) = db.execute("SELECT cid FROM feeds ORDER BY sequence DESC").fetchone()
        (manifest,) = db.execute(
            "SELECT manifest FROM tracks WHERE title = ?", (ESCAPED_TITLE,)
        ).fetchone()
    feed = (root / "store" / "files" / feed_cid).read_bytes()
    return Published(root, did, feed, manifest.encode("utf-8"), audio)


def accepts_feed(published: Published) -> Callable[[bytes], Any]:
    state = FollowState(published.did)
    now = datetime.now(UTC)
    return lambda body: verify_feed(body, state, max_bytes=1 << 24, now=now)


def accepts_manifest(published: Published) -> Callable[[bytes], Any]:
    def verify(body: bytes) -> Any:
        manifest = parse_json(body, "manifest")
        verify_manifest(manifest, published.did)
        return manifest

    return verify


def tamper(original: bytes, positions: list[int], verify: Callable[[bytes], Any]) -> Counter[str]:
    """Replace one byte at each position (a seeded different value); tally the outcomes."""
    rng = random.Random(SEED)
    document = json.loads(original)
    outcomes: Counter[str] = Counter()
    for pos in positions:
        changed = bytearray(original)
        changed[pos] = rng.choice([b for b in range(256) if b != original[pos]])
        outcomes[_outcome(bytes(changed), document, verify)] += 1
    return outcomes


def _outcome(changed: bytes, document: Any, verify: Callable[[bytes], Any]) -> str:
    try:
        accepted = verify(changed)
    except StaveError as e:
        assert "\n" not in str(e)
        return "rejected"
    # Only a change that means the same document may pass.
    assert accepted == document, f"a changed byte was accepted: {changed!r}"
    return "accepted, same document"


def escape_positions(body: bytes) -> list[int]:
    """Every byte inside a JSON string escape (`\\"`, `\\\\`, `\\t`, `\\u001f`, …)."""
    positions: list[int] = []
    pos = body.find(b"\\")
    while pos != -1:
        length = 6 if body[pos + 1 : pos + 2] == b"u" else 2
        positions.extend(range(pos, pos + length))
        pos = body.find(b"\\", pos + length)
    return positions


def sample(length: int, count: int = POSITIONS) -> list[int]:
    assert length >= 1000
    return sorted(random.Random(SEED).sample(range(length), min(count, length)))


def report(capsys: pytest.CaptureFixture[str], what: str, outcomes: Counter[str]) -> None:
    with capsys.disabled():
        tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        print(f"\n  tamper {what}: {sum(outcomes.values())} one-byte changes ({tally})", end="")


def test_every_changed_byte_of_a_served_feed_is_refused(
    published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    verify = accepts_feed(published)
    verify(published.feed)  # the untouched feed passes
    outcomes = tamper(published.feed, sample(len(published.feed)), verify)
    report(capsys, f"feed ({len(published.feed)} bytes)", outcomes)
    assert sum(outcomes.values()) >= 1000
    assert outcomes["rejected"] >= sum(outcomes.values()) - 5


def test_every_changed_byte_of_a_manifest_is_refused(
    published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    verify = accepts_manifest(published)
    verify(published.manifest)
    positions = sample(len(published.manifest))
    outcomes = tamper(published.manifest, positions, verify)
    report(capsys, f"manifest ({len(published.manifest)} bytes)", outcomes)
    assert sum(outcomes.values()) >= 1000
    assert outcomes["rejected"] >= sum(outcomes.values()) - 5


@pytest.mark.parametrize("which", ["feed", "manifest"])
def test_only_changes_that_keep_the_document_pass_inside_escapes(
    published: Published, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every other value of every byte inside every escape: a hex digit's case is the one
    change that keeps the meaning, and it passes; nothing else does."""
    body = published.feed if which == "feed" else published.manifest
    verify = accepts_feed(published) if which == "feed" else accepts_manifest(published)
    document = json.loads(body)
    positions = escape_positions(body)
    assert b"\\u001f" in body and b'\\"' in body and b"\\\\" in body and b"\\t" in body
    outcomes: Counter[str] = Counter()
    same = []
    for pos in positions:
        for value in range(256):
            if value == body[pos]:
                continue
            changed = body[:pos] + bytes([value]) + body[pos + 1 :]
            outcome = _outcome(changed, document, verify)
            outcomes[outcome] += 1
            if outcome != "rejected":
                same.append(changed[pos - 5 : pos + 1].split(b"\\")[-1])
    report(capsys, f"{which} escapes ({len(positions)} positions × 255)", outcomes)
    # \u001f's hex digits: '0', '0', '1' have no other case; 'f' → 'F' is the same character.
    assert sorted(set(same)) == [b"u001F"]


def test_every_changed_byte_of_stored_audio_breaks_its_cid(
    published: Published, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(published.root / "store")
    rng = random.Random(SEED)
    try:
        for cid in published.audio_cids:
            path = store.path(cid)
            size = path.stat().st_size
            positions = sample(size, 1000)
            path.chmod(0o644)
            outcomes: Counter[str] = Counter()
            fd = os.open(path, os.O_RDWR)
            try:
                for pos in positions:
                    (original,) = os.pread(fd, 1, pos)
                    os.pwrite(
                        fd, bytes([rng.choice([b for b in range(256) if b != original])]), pos
                    )
                    outcomes["rejected" if not store.verify(cid) else "accepted"] += 1
                    os.pwrite(fd, bytes([original]), pos)
            finally:
                os.close(fd)
                path.chmod(0o444)
            leaves = len({pos >> 20 for pos in positions})
            report(capsys, f"audio {cid[:12]}… ({size} bytes, {leaves} leaf block(s))", outcomes)
            assert outcomes == Counter(rejected=1000)
            assert store.verify(cid)
    finally:
        store.close()

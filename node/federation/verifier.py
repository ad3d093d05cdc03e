"""Verifying followed feeds off the event loop, in worker processes when many wait at once.

Verification is pure CPU (JSON, JCS, SHA-256, Ed25519). A few feeds are verified in a thread; when
`BULK` or more wait together — a first sync of many follows, say — they go to worker processes
(started then, reused after), which use every core and keep the web server's GIL free.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any

from node.cid import CID
from node.errors import InvalidCID, VerificationError
from node.feed import FEED_TYPE, FollowState, parse_json, verify_feed
from node.rotation import verify_rotation_chain

BULK = 8
MAX_PROCESSES = 4


def check_tracks(feed: dict[str, Any]) -> None:
    """Raise why the verified feed's tracks cannot be stored as they are; else return.

    verify_feed checks signatures and presence; this checks the types the catalog and the
    gateway rely on, so that a signed but malformed feed is rejected whole, never half-stored.
    """
    if not isinstance(feed.get("name"), str):
        raise VerificationError("feed name is not a string")
    seen: set[str] = set()
    for manifest in feed["tracks"]:
        label = f"track {repr(manifest.get('id'))[:80]}"
        for key in ("id", "title", "published"):
            if not isinstance(manifest.get(key), str):
                raise VerificationError(f"{label}: {key} is not a string")
        revision = manifest.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise VerificationError(f"{label}: revision is not an integer")
        if manifest["id"] in seen:
            raise VerificationError(f"{label}: listed twice in the feed")
        seen.add(manifest["id"])
        refs = [("audio", manifest["audio"])]
        if manifest.get("cover") is not None:
            refs.append(("cover", manifest["cover"]))
        for what, ref in refs:
            if not isinstance(ref, dict) or not isinstance(ref.get("cid"), str):
                raise VerificationError(f"{label}: {what} has no CID")
            try:
                CID.parse(ref["cid"])
            except InvalidCID as e:
                raise VerificationError(f"{label}: {what} CID is not valid ({e})") from e


def verify_accepted(
    body: bytes, state: FollowState, max_bytes: int, now: datetime
) -> dict[str, Any]:
    """The feed in `body` if a follower in `state` may accept and store it; else raise why."""
    feed = verify_feed(body, state, max_bytes=max_bytes, now=now)
    check_tracks(feed)
    return feed


def claimed_artist(body: bytes, max_bytes: int) -> str | None:
    """The `artist` a feed (within the size limit) names, if it is a feed naming one at all."""
    if len(body) > max_bytes:
        return None
    try:
        feed = parse_json(body)
    except VerificationError:
        return None
    if not isinstance(feed, dict) or feed.get("type") != FEED_TYPE:
        return None
    artist = feed.get("artist")
    return artist if isinstance(artist, str) else None


def verify_rotated(
    body: bytes, statements: bytes, state: FollowState, max_bytes: int, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A feed signed by a key other than the followed one, with the rotation statements that
    lead to it (docs/protocol-extensions.md): the feed and the statements used, if a follower
    in `state` may accept it; else VerificationError saying why.

    The statements must lead from the followed did to the feed's `artist`, and the feed must
    then pass PROTOCOL §6 against that did, the accepted sequence carrying across.
    """
    target = claimed_artist(body, max_bytes)
    if target is None or target == state.artist:
        raise VerificationError("feed names no other artist to rotate to")
    try:
        chain = verify_rotation_chain(statements, state.artist, target)
    except VerificationError as e:
        raise VerificationError(
            f"no valid rotation statement leads from {state.artist} to {target}: {e}"
        ) from e
    try:
        feed = verify_accepted(body, replace(state, artist=target), max_bytes, now)
    except VerificationError as e:
        raise VerificationError(f"feed of the rotated key {target}: {e}") from e
    return feed, chain


class FeedVerifier:
    """Runs `verify_accepted` off the event loop; `close()` stops its worker processes."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or min(MAX_PROCESSES, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._waiting = 0

    def busy(self) -> bool:
        """Whether feeds are being verified now (by `verify`)."""
        return self._waiting > 0

    async def verify(
        self, body: bytes, state: FollowState, max_bytes: int, now: datetime
    ) -> dict[str, Any]:
        """The verified feed, or VerificationError with the reason."""
        self._waiting += 1
        try:
            if self._waiting >= BULK:
                self.start()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, verify_accepted, body, state, max_bytes, now
            )
        finally:
            self._waiting -= 1

    async def verify_rotated(
        self, body: bytes, statements: bytes, state: FollowState, max_bytes: int, now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """`verify_rotated` off the event loop: the feed and the rotation statements used."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, verify_rotated, body, statements, state, max_bytes, now
        )

    def start(self) -> None:
        """Start the worker processes now (a bulk of feeds is coming), if there are to be any."""
        if self._pool is None and self.processes > 1:
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn")
            )
            for _ in range(self.processes):  # each submission starts one worker, up to the max
                self._pool.submit(int)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

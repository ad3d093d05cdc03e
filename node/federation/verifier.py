"""Verifying followed feeds off the event loop, in worker processes when many wait at once.

Verification is pure CPU (JSON, JCS, SHA-256, Ed25519). A few feeds are verified in a thread; when
`BULK` or more wait together — a first sync of many follows, say — they go to worker processes
(started then, reused after), which use every core and keep the web server's GIL free.

What a follower may accept is decided in the domain, by `node.feed.judge_feed` (and
`node.rotation.verify_rotated` for a feed under a rotated key); this module only decides where
that runs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any

from node.feed import FollowState, judge_feed
from node.rotation import verify_rotated

BULK = 8
MAX_PROCESSES = 4


class FeedVerifier:
    """Runs `judge_feed` off the event loop; `close()` stops its worker processes."""

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
                self._pool, partial(judge_feed, body, state, max_bytes=max_bytes, now=now)
            )
        finally:
            self._waiting -= 1

    async def verify_rotated(
        self, body: bytes, statements: bytes, state: FollowState, max_bytes: int, now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """`verify_rotated` off the event loop: the feed and the rotation statements used."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool,
            partial(verify_rotated, body, statements, state, max_bytes=max_bytes, now=now),
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

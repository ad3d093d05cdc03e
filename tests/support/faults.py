"""Fault injection: commands killed with SIGKILL at random, and uploads a crash can cut off.

`kill_trials` is the harness for every crash test: it runs a command, kills it after a random
delay drawn from a seeded generator, and hands each trial to a check callback that asserts
whatever must hold after such a crash (the node checks clean, nothing published is lost, the
next command works). Kill trials for uploads, syncs and mirror downloads reuse it with their
own command and check.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.audio import CHUNK
from tests.support.cli import clean_environment


@dataclass(frozen=True)
class KillTrial:
    """One run of a command, sent SIGKILL `delay` seconds after it started (unless it ended
    first)."""

    number: int
    delay: float
    killed: bool  # False when the command had already finished by itself
    returncode: int
    stderr: str


def kill_trials(
    command: Callable[[int], Sequence[str]],
    check: Callable[[KillTrial], None],
    *,
    trials: int,
    delay: Callable[[int, random.Random], float],
    seed: int,
    armed: Callable[[int], Callable[[], bool]] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> list[KillTrial]:
    """Run `command(n)` for n in range(trials), SIGKILL it after `delay(n, rng)` seconds (`rng`
    seeded with `seed`), wait for it, then call `check(trial)`.

    The delay counts from the start, or, when `armed` is given, from the moment the predicate
    `armed(n)` returns (made before the command starts) first holds: "once it has begun writing".
    Only the process started here is ever signalled, by its pid. Returns every trial.
    """
    rng = random.Random(seed)
    done = []
    for number in range(trials):
        wait = delay(number, rng)
        ready = armed(number) if armed is not None else None
        process = subprocess.Popen(
            command(number),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env if env is not None else clean_environment(),
        )
        started = time.monotonic()
        if ready is not None:
            while process.poll() is None and not ready():
                if time.monotonic() - started > timeout:
                    break
                time.sleep(0.001)
        deadline = time.monotonic() + wait
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(min(0.002, max(deadline - time.monotonic(), 0)))
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        elapsed = time.monotonic() - started
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        trial = KillTrial(
            number, elapsed, killed, process.returncode, stderr.decode(errors="replace")
        )
        check(trial)
        done.append(trial)
    return done


def stratified(span: float, trials: int, seed: int) -> Callable[[int, random.Random], float]:
    """A `delay` for `kill_trials` that spreads `trials` kills evenly over [0, `span`): each
    trial gets a random moment within its own slice of the span, the slices dealt out in a
    seeded shuffled order. With a handful of trials, plain uniform draws may miss a phase."""
    slices = list(range(trials))
    random.Random(seed).shuffle(slices)
    return lambda number, rng: span * (slices[number % trials] + rng.random()) / trials


def time_phases(command: Sequence[str], started_writing: Callable[[], bool]) -> tuple[float, float]:
    """Run `command` to its end once; return (seconds until `started_writing()` first held,
    seconds until it exited). Kill delays drawn around these spread over the real work."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=clean_environment())
    writing = None
    while process.poll() is None:
        if writing is None and started_writing():
            writing = time.monotonic() - started
        time.sleep(0.001)
    total = time.monotonic() - started
    assert process.returncode == 0, f"{command} failed uninterrupted"
    return (writing if writing is not None else 0.0), total


# --- uploads to a node served by `stave run` (tests.support.node.served) ----------------------


class Upload(threading.Thread):
    """A `POST /api/tracks` of one file with the admin token, as a multipart body streamed in
    1 MiB pieces, run in a thread; afterwards `status` and `body` are the answer's, or `error`
    says why there was none (the server went away). `sent` is set once the whole body is sent.

    With `connect_for` seconds it retries refused connections, for a server still starting."""

    def __init__(
        self, url: str, token: str, path: Path, title: str | None = None, connect_for: float = 0
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.token = token
        self.path = path
        self.title = title
        self.connect_for = connect_for
        self.sent = threading.Event()
        self.status: int | None = None
        self.body = b""
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.status, self.body = self._post()
        except (OSError, http.client.HTTPException) as e:
            self.error = f"{type(e).__name__}: {e}"

    def _post(self) -> tuple[int, bytes]:
        address = urllib.parse.urlsplit(self.url)
        boundary = uuid.uuid4().hex
        head = b""
        if self.title is not None:
            head += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'
                f"{self.title}\r\n"
            ).encode()
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{self.path.name}"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        connection = self._connect(address.hostname or "127.0.0.1", address.port or 80)
        try:
            connection.putrequest("POST", "/api/tracks")
            connection.putheader("Authorization", f"Bearer {self.token}")
            connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            length = len(head) + self.path.stat().st_size + len(tail)
            connection.putheader("Content-Length", str(length))
            connection.endheaders()
            connection.send(head)
            with self.path.open("rb") as audio:
                while chunk := audio.read(CHUNK):
                    connection.send(chunk)
            connection.send(tail)
            self.sent.set()
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _connect(self, host: str, port: int) -> http.client.HTTPConnection:
        deadline = time.monotonic() + self.connect_for
        while True:
            connection = http.client.HTTPConnection(host, port, timeout=60)
            try:
                connection.connect()
                return connection
            except ConnectionRefusedError:
                connection.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


def upload(url: str, token: str, path: Path, title: str | None = None) -> dict[str, Any]:
    """Publish `path` on the node at `url` through `POST /api/tracks`; the one track's JSON."""
    attempt = Upload(url, token, path, title)
    attempt.run()
    assert attempt.status == 201, (attempt.status, attempt.error, attempt.body[:300])
    (track,) = json.loads(attempt.body)["tracks"]
    assert isinstance(track, dict)
    return track

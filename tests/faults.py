"""Fault-injection helpers: audio files of any size, and commands killed with SIGKILL at random.

`kill_trials` is the harness for every crash test: it runs a command, kills it after a random
delay drawn from a seeded generator, and hands each trial to a check callback that asserts
whatever must hold after such a crash (the node checks clean, nothing published is lost, the
next command works). Kill trials for uploads, syncs and mirror downloads reuse it with their
own command and check.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


def write_wav(path: Path, size: int, seed: int = 0) -> Path:
    """A valid 16-bit stereo 44.1 kHz PCM WAV of about `size` bytes of noise, written in chunks."""
    frames = max((size - 44) // 4, 1)
    data_bytes = frames * 4
    header = (
        b"RIFF"
        + (36 + data_bytes).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")  # PCM
        + (2).to_bytes(2, "little")
        + (44_100).to_bytes(4, "little")
        + (44_100 * 4).to_bytes(4, "little")
        + (4).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data"
        + data_bytes.to_bytes(4, "little")
    )
    noise = random.Random(seed)
    with path.open("wb") as out:
        out.write(header)
        left = data_bytes
        while left:
            n = min(CHUNK, left)
            out.write(noise.randbytes(n))
            left -= n
    return path


def stave_command(data_dir: Path, *args: str) -> list[str]:
    """The argv of `stave --data-dir DIR ARGS…` run from this checkout."""
    return [sys.executable, "-m", "node", "--data-dir", str(data_dir), *args]


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any STAVE_ setting, plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STAVE_")}
    environment.update(extra or {})
    return environment


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

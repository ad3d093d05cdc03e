"""Audio made on the spot, for tests and benchmarks: valid PCM WAVs of any size, of noise, of a
repeating waveform, of silence or of a tone. Large ones are written a MiB at a time."""

from __future__ import annotations

import math
import os
import random
import struct
import uuid
import wave
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20


def wav_header(data_bytes: int, *, channels: int = 2, rate: int = 44_100) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV whose samples are `data_bytes` long."""
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    block = channels * 2
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    return header


def write_samples(path: Path, data_bytes: int, piece: Callable[[int], bytes]) -> Path:
    """A 16-bit stereo 44.1 kHz WAV of `data_bytes` of samples, each MiB (or the rest) of them
    `piece(n)`."""
    with path.open("wb") as out:
        out.write(wav_header(data_bytes))
        left = data_bytes
        while left:
            samples = piece(min(CHUNK, left))
            out.write(samples)
            left -= len(samples)
    return path


def write_wav(path: Path, size: int, seed: int = 0) -> Path:
    """A valid 16-bit stereo 44.1 kHz PCM WAV of about `size` bytes of noise, the same for the
    same seed."""
    frames = max((size - 44) // 4, 1)
    return write_samples(path, frames * 4, random.Random(seed).randbytes)


def write_noise_wav(path: Path, data_bytes: int) -> Path:
    """A WAV of `data_bytes` of fresh random noise: no two 1 MiB chunks (or files) alike."""
    return write_samples(path, data_bytes, os.urandom)


def write_big_wav(path: Path, data_bytes: int) -> Path:
    """A WAV with `data_bytes` of a repeating waveform, cheap to make at any size."""
    block = bytes(range(256)) * 4096  # 1 MiB
    return write_samples(path, data_bytes, lambda n: block[:n])


def silent_wav(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A mono 16-bit PCM WAV of silence with a little noise at the start (so it is unique)."""
    frames = int(seconds * rate)
    data = uuid.uuid4().bytes * 4 + bytes(frames * 2 - 64)
    path.write_bytes(wav_header(len(data), channels=1, rate=rate) + data)
    return path


def write_tone(path: Path, index: int) -> None:
    """A fifth of a second of a sine, its pitch set by `index`, so every file differs."""
    rate, frequency = 8000, 220.0 + index
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * n / rate)))
        for n in range(rate // 5)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def write_long_take(path: Path, size: int) -> None:
    """About `size` bytes of WAV: noise, 16-bit stereo at 44.1 kHz, written a MiB at a time."""
    chunk = random.Random(20).randbytes(1024 * 1024)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        for index in range(size // len(chunk)):
            out.writeframes(index.to_bytes(8, "big") + chunk[8:])

"""A short demo track, synthesised here so a fresh node has something to publish.

`python -m node.demo OUT.wav` writes ten seconds of a soft arpeggio as 16-bit mono WAV.
"""

from __future__ import annotations

import math
import struct
import sys
import wave
from pathlib import Path

RATE = 22050
NOTES = (220.0, 261.63, 329.63, 392.0, 329.63, 261.63)  # A minor, up and down


def write_demo_track(path: Path, seconds: float = 10.0) -> None:
    """Write a demo WAV file to `path`, streaming one note at a time."""
    note_length = seconds / (len(NOTES) * 2)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for index in range(len(NOTES) * 2):
            frequency = NOTES[index % len(NOTES)]
            count = int(RATE * note_length)
            frames = bytearray()
            for n in range(count):
                envelope = math.sin(math.pi * n / count)
                sample = 0.3 * envelope * math.sin(2 * math.pi * frequency * n / RATE)
                frames += struct.pack("<h", int(sample * 32767))
            out.writeframes(bytes(frames))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m node.demo OUT.wav", file=sys.stderr)
        raise SystemExit(2)
    write_demo_track(Path(sys.argv[1]))

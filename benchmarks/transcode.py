"""Listening renditions: how fast a track is transcoded, and how much memory `stave add DIR`
takes for a whole album with its renditions.

    python -m benchmarks.transcode [--minutes N] [--tracks N] [--mib N]

1. Transcoding speed, on one core (the process is pinned to one CPU): a synthesised stereo
   44.1 kHz track of N minutes (default 5), as WAV and as FLAC, encoded to Opus at 128 kb/s by
   `node.media.renditions.transcode`; the speed is the track's length over the time taken, a
   multiple of real time. The reference, measured in the same run on the same core, is PyAV
   decoding the same file alone. Goal: at least 20× real time.
2. Peak memory of `stave add DIR` (the real command, a child process; its VmHWM from
   `wait4`'s rusage) for an album of N WAVs (default 12) of M MiB each (default 40), every
   track transcoded. The reference is the peak of `stave --version` (the interpreter and the
   command's imports). Goal: at most 150 MB.
"""

from __future__ import annotations

import argparse
import array
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from tests.support.cli import clean_environment, stave_command

SPEED_GOAL = 20.0
RSS_GOAL_MB = 150.0
RATE = 44_100
BLOCK_SECONDS = 5


def music_block(seed: int) -> bytes:
    """Five seconds of stereo 16-bit audio that an encoder cannot make trivial: two drifting
    tones, a beat and some noise, different for each seed."""
    rng = random.Random(seed)
    base = 110.0 * (1 + seed % 7 / 7)
    samples = array.array("h")
    for i in range(BLOCK_SECONDS * RATE):
        t = i / RATE
        beat = math.exp(-8 * (t % 0.5))
        left = 0.3 * math.sin(2 * math.pi * base * t) + 0.2 * beat * math.sin(2 * math.pi * 60 * t)
        right = 0.25 * math.sin(2 * math.pi * base * 1.5 * t * (1 + 0.002 * math.sin(t)))
        noise = 0.04 * (rng.random() * 2 - 1)
        samples.append(int((left + noise) * 24_000))
        samples.append(int((right + noise) * 24_000))
    return samples.tobytes()


def write_wav(path: Path, seconds: float, seed: int) -> None:
    """A WAV of `seconds`, written a block at a time; no two blocks of one file alike."""
    block = bytearray(music_block(seed))
    frames = int(seconds * RATE)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(RATE)
        written = 0
        while written < frames:
            block[0:4] = written.to_bytes(4, "little")  # a tick at each block, so none repeat
            n = min(BLOCK_SECONDS * RATE, frames - written)
            f.writeframes(bytes(block[: n * 4]))
            written += n


def to_flac(source: Path, destination: Path) -> None:
    import av

    with av.open(str(source)) as inp, av.open(str(destination), "w") as out:
        stream = out.add_stream("flac", rate=RATE, layout="stereo")
        for frame in inp.decode(audio=0):
            frame.pts = None
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def decode_seconds(path: Path) -> float:
    """Wall time PyAV takes to decode `path` alone, on this core."""
    import av

    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        stream.codec_context.thread_count = 1
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - start


def transcode_seconds(path: Path, destination: Path) -> float:
    from node.media.renditions import parse_rendition, transcode

    start = time.perf_counter()
    transcode(path, destination, parse_rendition("opus:128"))
    return time.perf_counter() - start


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """The peak resident memory (MB) and the wall time of `command`, run to its end."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=clean_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    assert process.stderr is not None
    errors = process.stderr.read().decode()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:])} failed: {errors.strip()}")
    return usage.ru_maxrss / 1024, elapsed  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5, help="track length (default 5)")
    parser.add_argument("--tracks", type=int, default=12, help="album tracks (default 12)")
    parser.add_argument("--mib", type=int, default=40, help="MiB per album WAV (default 40)")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    with tempfile.TemporaryDirectory(prefix="stave-bench-") as directory:
        tmp = Path(directory)
        seconds = args.minutes * 60
        wav, flac = tmp / "track.wav", tmp / "track.flac"
        write_wav(wav, seconds, seed=1)
        to_flac(wav, flac)
        print(f"track: {seconds:.0f} s, stereo {RATE} Hz; one core (CPU {cpu})")
        for name, source in (("WAV", wav), ("FLAC", flac)):
            decoded = min(decode_seconds(source) for _ in range(2))
            encoded = min(transcode_seconds(source, tmp / "track.opus") for _ in range(2))
            bitrate = (tmp / "track.opus").stat().st_size * 8 / seconds / 1000
            print(
                f"transcode {name} to Opus 128 kb/s: {seconds / encoded:.1f}x real time"
                f" ({encoded:.2f} s, {bitrate:.0f} kb/s out); decoding alone"
                f" {seconds / decoded:.1f}x real time"
            )

        album = tmp / "album"
        album.mkdir()
        track_seconds = args.mib * 1024**2 / (RATE * 4)
        for number in range(1, args.tracks + 1):
            write_wav(album / f"{number:02d} Track {number}.wav", track_seconds, seed=number)
        node = tmp / "node"
        init = subprocess.run(
            stave_command(node, "init", "--name", "Benchmark"),
            env=clean_environment(),
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise SystemExit(f"stave init failed: {init.stderr.strip()}")
        baseline, _ = peak_rss_mb(stave_command(node, "--version"))
        peak, elapsed = peak_rss_mb(stave_command(node, "add", str(album)))
        print(
            f"album: {args.tracks} WAVs of {args.mib} MiB ({track_seconds:.0f} s each),"
            f" published with renditions in {elapsed:.1f} s"
        )
        print(f"stave add DIR peak RSS: {peak:.1f} MB; stave --version {baseline:.1f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

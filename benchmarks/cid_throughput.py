"""CID throughput against plain SHA-256 over the same file.

    python -m benchmarks.cid_throughput [--mib N]

Writes a temporary file of N MiB, then times `hashlib.sha256` over it and the unixfs-v1-2025
import (`node.cid.import_path`) over it, best of three each, interleaved so that both see the
same page cache and CPU conditions. The goal is a ratio of at least 0.85.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from node.cid import CHUNK_SIZE, import_path

GOAL = 0.85
ROUNDS = 3


def write_sample(path: Path, mib: int) -> None:
    """N MiB of pseudo-random bytes: 1 MiB of random data repeated with a varying prefix."""
    block = bytearray(random.Random(0).randbytes(CHUNK_SIZE))
    with path.open("wb") as f:
        for i in range(mib):
            block[:8] = i.to_bytes(8, "big")  # no two chunks alike
            f.write(block)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def cid_file(path: Path) -> str:
    return str(import_path(path).root)


def timed(run: Callable[[Path], str], path: Path) -> float:
    start = time.perf_counter()
    run(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="file size in MiB (default 512)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stave-bench-") as directory:
        path = Path(directory) / "sample.bin"
        write_sample(path, args.mib)
        sha256_file(path)  # warm the page cache
        sha_times, cid_times = [], []
        for _ in range(ROUNDS):
            sha_times.append(timed(sha256_file, path))
            cid_times.append(timed(cid_file, path))
        root = cid_file(path)
    sha = args.mib / min(sha_times)
    cid = args.mib / min(cid_times)
    ratio = cid / sha
    print(f"file:        {args.mib} MiB, CID {root}")
    print(f"sha256:      {sha:8.1f} MiB/s")
    print(f"CID import:  {cid:8.1f} MiB/s")
    print(f"ratio:       {ratio:8.3f} (goal >= {GOAL}) {'ok' if ratio >= GOAL else 'BELOW GOAL'}")


if __name__ == "__main__":
    main()

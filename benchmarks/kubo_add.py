"""`stave add` into a node with the Kubo backend against `ipfs add` of the same file.

    python -m benchmarks.kubo_add [--mib 300] [--rounds 3]

Generates a valid WAV of N MiB of noise (so `stave add` accepts it and no two 1 MiB chunks are
alike), starts one Kubo daemon on loopback with a temporary repo, then, best of R rounds each,
interleaved so that both see the same page cache and disk:

- `stave add FILE` into a fresh node with `[ipfs] backend = "kubo"` pointing at that daemon,
  wall clock of the whole command, which returns only once Kubo has the file pinned
  (`ipfs.publish_wait_seconds` is raised so it never leaves the pin to the queue);
- `ipfs add` of the same file against the same daemon with the same parameters (PROTOCOL §3:
  `--cid-version=1 --raw-leaves --chunker=size-1048576 --max-file-links=1024 --trickle=false
  --hash=sha2-256`), which pins too.

Between measurements every pin is removed and the repo garbage-collected, so neither finds the
other's blocks already there. Prints both times and their ratio; the goal is at most 1.1.
Needs the Kubo binary: $STAVE_KUBO_BIN, scripts/build-kubo.sh's cache, or ipfs on PATH.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.audio import write_noise_wav
from tests.support.cli import clean_environment
from tests.support.cli import stave as run_stave
from tests.support.kubo import KuboDaemon, find_kubo

GOAL = 1.1
MIB = 1024 * 1024
IPFS_ADD_PARAMETERS = (
    "--cid-version=1",
    "--raw-leaves",
    "--chunker=size-1048576",
    "--max-file-links=1024",
    "--trickle=false",
    "--hash=sha2-256",
)


def stave(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`stave` run to its end (an hour at most); SystemExit with its stderr if it fails."""
    done = run_stave(data_dir, *args, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"stave {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def time_stave_add(work: Path, source: Path, api: str) -> tuple[float, str]:
    """Seconds `stave add` takes into a fresh Kubo-backed node, and the pinned CID."""
    node = work / "node"
    shutil.rmtree(node, ignore_errors=True)
    stave(node, "init", "--name", "Benchmark")
    config = (node / "config.toml").read_text()
    config = config.replace('backend = "embedded"', 'backend = "kubo"')
    config = config.replace('api = "http://127.0.0.1:5001"', f'api = "{api}"')
    config = config.replace("publish_wait_seconds = 5", "publish_wait_seconds = 3600")
    (node / "config.toml").write_text(config)
    stave(node, "pin")  # the first feed, so that only the track is left for the timed command
    start = time.perf_counter()
    added = stave(node, "add", str(source))
    elapsed = time.perf_counter() - start
    status = json.loads(stave(node, "status", "--json").stdout)
    if added.stderr or status["pins"]["pending"] or status["pins"]["failed"]:
        raise SystemExit(f"stave add left pins behind: {added.stderr} {status['pins']}")
    cid = added.stdout.split()[1]
    shutil.rmtree(node)
    return elapsed, cid


def time_ipfs_add(daemon: KuboDaemon, source: Path) -> tuple[float, str]:
    """Seconds `ipfs add` (the CLI, through the running daemon) takes, and the CID."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(daemon.binary), "add", "-Q", *IPFS_ADD_PARAMETERS, str(source)],
        env={**clean_environment(), "IPFS_PATH": str(daemon.repo)},
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, done.stdout.strip()


def empty_repo(daemon: KuboDaemon, *cids: str) -> None:
    env = {**clean_environment(), "IPFS_PATH": str(daemon.repo)}
    for cid in cids:
        subprocess.run([str(daemon.binary), "pin", "rm", cid], env=env, capture_output=True)
    subprocess.run([str(daemon.binary), "repo", "gc", "-q"], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300, help="WAV size in MiB (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many (default 3)")
    args = parser.parse_args()
    binary = find_kubo()
    if binary is None:
        raise SystemExit("Kubo is not available: run scripts/build-kubo.sh or set STAVE_KUBO_BIN")
    with tempfile.TemporaryDirectory(prefix="stave-bench-") as directory:
        work = Path(directory)
        source = work / "long-take.wav"
        write_noise_wav(source, args.mib * MIB - 44)
        daemon = KuboDaemon(binary, work / "kubo", offline=True)
        daemon.start()
        try:
            stave_times: list[float] = []
            ipfs_times: list[float] = []
            for _ in range(args.rounds):
                elapsed, cid = time_stave_add(work, source, daemon.api)
                stave_times.append(elapsed)
                empty_repo(daemon, cid)
                elapsed, cid = time_ipfs_add(daemon, source)
                ipfs_times.append(elapsed)
                empty_repo(daemon, cid)
        finally:
            daemon.stop()
    best_stave, best_ipfs = min(stave_times), min(ipfs_times)
    ratio = best_stave / best_ipfs
    print(f"file:        {args.mib} MiB WAV, best of {args.rounds}")
    print(f"stave add:   {best_stave:6.2f} s  (until Kubo has it pinned)  {_all(stave_times)}")
    print(f"ipfs add:    {best_ipfs:6.2f} s  (same bytes, same parameters)  {_all(ipfs_times)}")
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"ratio:       {ratio:6.2f}  ({verdict} the goal of at most {GOAL})")


def _all(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    main()

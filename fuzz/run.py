"""Run a fuzz target under atheris (libFuzzer, coverage-guided) and say how many inputs it ran.

    python -m fuzz.run TARGET [--runs N] [--seed S]     # feed manifest rotation jcs cid media
    python -m fuzz.run all [--runs N] [--seed S]        # each target in turn, then a summary

A target's seeds (fuzz/documents.py) start the corpus; libFuzzer mutates them for `--runs`
inputs (by default each target's own count, a few minutes each), each bounded by the target's
timeout. An input that breaks the contract stops the run
with its traceback, and libFuzzer saves it as `fuzz/crashes/crash-…` to replay with
`python -m fuzz.run TARGET --replay FILE`. Exit status 0 only if every input held.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

CRASHES = Path(__file__).resolve().parent / "crashes"
DONE = re.compile(rb"Done (\d+) runs in (\d+) second")
NAMES = ("feed", "manifest", "rotation", "jcs", "cid", "media")


def fuzz_one(name: str, runs: int | None, seed: int, corpus: Path, crashes: Path) -> None:
    """Fuzz one target in this process, growing `corpus`; libFuzzer exits the process when done."""
    with atheris.instrument_imports(include=["node", "fuzz", "mutagen", "rfc8785"]):
        from fuzz.targets import TARGETS
    target = TARGETS[name]
    runs = target.runs if runs is None else runs
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed_input in enumerate(target.seeds()):
        (corpus / f"seed-{index}").write_bytes(seed_input)
    crashes.mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        target.check(data)

    argv = [
        sys.argv[0],
        f"-runs={runs}",
        f"-seed={seed}",
        f"-max_len={target.max_len}",
        f"-timeout={target.timeout_seconds}",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def replay(name: str, path: Path) -> int:
    from fuzz.targets import TARGETS

    verdict = TARGETS[name].check(path.read_bytes())
    print(f"{name}: {path}: {verdict}")
    return 0


def fuzz_all(runs: int | None, seed: int) -> int:
    """Each target in its own process; prints one summary line per target."""
    failed = []
    for name in NAMES:
        started = time.monotonic()
        options = ["--seed", str(seed)] + ([] if runs is None else ["--runs", str(runs)])
        with tempfile.TemporaryDirectory(prefix=f"stave-fuzz-{name}-") as corpus:
            done = subprocess.run(
                [sys.executable, "-m", "fuzz.run", name, *options, "--corpus", corpus],
                capture_output=True,
            )
        seconds = time.monotonic() - started
        found = DONE.search(done.stderr)
        inputs = int(found.group(1)) if found else 0
        if done.returncode != 0 or found is None:
            failed.append(name)
            sys.stderr.buffer.write(done.stderr[-4000:])
            print(f"{name}: FAILED after {inputs} inputs ({seconds:.0f} s)", flush=True)
        else:
            print(f"{name}: {inputs} inputs in {seconds:.0f} s, every one held", flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=(*NAMES, "all"))
    parser.add_argument("--runs", type=int, help="inputs per target (default: the target's own)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    parser.add_argument("--replay", type=Path, metavar="FILE", help="check one saved input")
    parser.add_argument(
        "--crashes",
        type=Path,
        default=CRASHES,
        metavar="DIR",
        help="where an input that breaks the contract is saved (default: fuzz/crashes)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        help="where libFuzzer keeps the inputs it found interesting; reuse it to resume"
        " (default: a new directory under the system's temporary directory)",
    )
    args = parser.parse_args()
    if args.replay:
        return replay(args.target, args.replay)
    if args.target == "all":
        return fuzz_all(args.runs, args.seed)
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix=f"stave-fuzz-{args.target}-"))
    fuzz_one(args.target, args.runs, args.seed, corpus, args.crashes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

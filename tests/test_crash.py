"""Crash safety of `stave add`: SIGKILL at random moments, then the node must still be whole.

A ~20 MB WAV is published again and again by `stave add`, each run killed with SIGKILL after a
random (seeded) delay spanning an uninterrupted add: one trial in four within its start-up (the
interpreter, opening the node, probing the file), the others anywhere from its first write into
the store to a little past its end — copying, tagging, hashing, storing, signing, committing.
Counting those from the first write, observed on the filesystem, keeps the spread the same on a
loaded machine. After every kill:

- the node checks clean: `check_node` (the service behind `stave check`, and the command itself
  every ten trials) finds no problem — only notices of what the interrupted write left: a
  half-written file in `tmp/`, or tagged audio stored but not yet referenced;
- nothing published before is lost: every earlier track is still listed, its content is present
  and re-hashes to its CID (the check re-hashes every stored file), the feed chain verifies;
- the killed add either published its track completely or not at all.

Every tenth trial, `stave check --repair` removes the leftovers, and an uninterrupted
`stave add` must work. With the embedded store nothing else is pending after a crash.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from node.check import CheckReport, check_node
from node.datadir import init_data_dir, open_node
from node.publish import Publisher
from tests.support.audio import write_wav
from tests.support.cli import stave, stave_command
from tests.support.faults import KillTrial, kill_trials, time_phases
from tests.support.shared import FIXTURES

TRIALS = 30
SEED = 7


async def inspect(root: Path) -> tuple[CheckReport, dict[str, str]]:
    """The check's report and every current track (id → audio CID)."""
    async with open_node(root) as node:
        report = await check_node(node)
        tracks = {t.id: t.audio_cid for t in await node.catalog.tracks()}
    return report, tracks


def test_stave_add_killed_at_random_moments_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")

    async def publish_baseline() -> None:
        async with open_node(root) as node:
            await Publisher(node).publish_feed()
            await Publisher(node).add_many([FIXTURES / "tone.mp3", FIXTURES / "tone.flac"])

    asyncio.run(publish_baseline())
    wav = write_wav(tmp_path / "session.wav", 20_000_000, seed=SEED)

    # An uninterrupted add, timed: until it starts writing into the store (the interpreter has
    # started, the node is open, the file probed), and from then to its end.
    tmp = root / "store" / "tmp"
    opening, total = time_phases(stave_command(root, "add", str(wav)), lambda: any(tmp.iterdir()))
    writing = total - opening

    def delay(number: int, rng: random.Random) -> float:
        # One trial in four counts from the start, to kill it while it starts up and opens the
        # node; the others count from its first write, to kill it anywhere in the real work:
        # copying, tagging, hashing, storing, signing, committing.
        return rng.uniform(0, opening if number % 4 == 0 else 1.1 * writing)

    def first_write(number: int) -> Callable[[], bool]:
        if number % 4 == 0:
            return lambda: True
        before = set(tmp.iterdir())
        return lambda: bool(set(tmp.iterdir()) - before)

    report, published = asyncio.run(inspect(root))
    assert report.ok and not report.notices and len(published) == 3
    outcomes: Counter[str] = Counter()
    noticed: set[str] = set()  # leftovers of earlier trials, until a repair removes them

    def after_kill(trial: KillTrial) -> None:
        if not trial.killed:
            assert trial.returncode == 0, trial.stderr
        report, tracks = asyncio.run(inspect(root))
        assert report.ok, [str(p) for p in report.problems]
        assert {n.kind for n in report.notices} <= {"leftover", "orphan"}, report.notices
        lost = published.keys() - tracks.keys()
        assert not lost, f"trial {trial.number}: lost {lost}"
        assert all(tracks[track_id] == cid for track_id, cid in published.items())
        new = tracks.keys() - published.keys()
        assert len(new) <= 1 and (trial.killed or len(new) == 1)
        published.update(tracks)
        fresh = {n.kind for n in report.notices if n.subject not in noticed}
        noticed.update(n.subject for n in report.notices)
        outcomes[_outcome(trial, fresh, new)] += 1
        if trial.number % 10 == 9:
            _repair_then_add(root, published)
            noticed.clear()

    trials = kill_trials(
        lambda _: stave_command(root, "add", str(wav)),
        after_kill,
        trials=TRIALS,
        delay=delay,
        armed=first_write,
        seed=SEED,
    )
    _repair_then_add(root, published)
    with capsys.disabled():
        tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        print(
            f"\n  crash: {len(trials)} kill trials of stave add (start-up {opening:.2f} s,"
            f" writing {writing:.2f} s; {tally})",
            end="",
        )
    assert len(trials) >= 30
    # The kills did land in the middle of the add, not only before it began or after it ended.
    assert outcomes["killed while writing (leftover in tmp/)"] >= 3


def _outcome(trial: KillTrial, kinds: set[str], new: set[str]) -> str:
    """Where the kill landed, told by what it left: a new track, an orphan, a tmp/ file."""
    if not trial.killed:
        return "ran to the end"
    if new:
        return "killed after publishing"
    if "orphan" in kinds:
        return "killed between storing and publishing (orphan)"
    if "leftover" in kinds:
        return "killed while writing (leftover in tmp/)"
    return "killed before it wrote anything"


def _repair_then_add(root: Path, published: dict[str, str]) -> None:
    """`stave check` passes as it is, `--repair` leaves nothing behind, and `stave add` works."""
    check = stave(root, "check")
    assert check.returncode == 0 and "problem" not in check.stderr, check.stderr
    repair = stave(root, "check", "--repair", "--json")
    assert repair.returncode == 0, repair.stderr
    assert json.loads(repair.stdout)["notices"] == []
    report, tracks = asyncio.run(inspect(root))
    assert report.ok and not report.notices and not report.problems
    assert list((root / "store" / "tmp").iterdir()) == []
    added = stave(root, "add", str(FIXTURES / "tone.ogg"), "--json")
    assert added.returncode == 0, added.stderr
    (manifest,) = json.loads(added.stdout)
    _, tracks = asyncio.run(inspect(root))
    assert manifest["id"] in tracks and published.keys() <= tracks.keys()
    published.update(tracks)

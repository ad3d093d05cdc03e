"""Crash safety over the network: SIGKILL at random moments of an upload, a sync and a mirror.

Three kinds of kill trials, each with the harness of `tests/test_crash.py` (`faults.kill_trials`)
and seeded delays spread over the real work, timed first on an uninterrupted run:

- **an upload in the server**: `stave run` is killed while it takes a `POST /api/tracks` of an
  8 MB WAV, counted from the moment the upload appears in the store's `tmp/` — receiving,
  probing, tagging, storing, signing, committing, answering. Afterwards the node checks clean,
  every earlier track is present and whole, the killed upload published completely or not at
  all (and completely whenever the client was answered 201), and every third trial a restarted
  `stave run` serves the feed and takes a further upload;
- **a sync**: `stave sync` of a node following another (`stave run`, on 127.0.0.1, a new track
  published before every trial) is killed during its start-up or after it fetched the feed,
  counted from the feed request in the artist's access log. Afterwards the follower checks
  clean and holds exactly the feed it had accepted or the artist's latest — its exact bytes
  and its tracks, never a mix — and every other trial an uninterrupted sync accepts the latest;
- **a mirror download**: the same with `stave follow --mirror` and a 20 MB WAV published before
  every trial, `stave sync` killed while it downloads, counted from its `.part` file appearing
  in the follower's `tmp/`. Afterwards the follower checks clean — a half-downloaded file is
  only a leftover in `tmp/` and the content it was for is only "pending", never stored under
  its CID — nothing mirrored before is lost, and every other trial an uninterrupted sync
  completes the mirror: every file present and re-hashing to its CID.

Each kind prints a summary of where its kills landed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from node.check import CheckReport, Finding, check_node
from node.datadir import DataDir, open_node
from node.publish import Publisher
from tests.support.audio import write_wav
from tests.support.cli import stave, stave_command
from tests.support.faults import KillTrial, Upload, kill_trials, stratified, time_phases, upload
from tests.support.federation import make_node_dir
from tests.support.net import free_port
from tests.support.node import served
from tests.support.shared import FIXTURES

SEED = 11
UPLOAD_TRIALS = 10
SYNC_TRIALS = 10
MIRROR_TRIALS = 10


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


async def inspect(root: Path) -> tuple[CheckReport, dict[str, str]]:
    """The check's report and every current track (id → audio CID)."""
    async with open_node(root) as node:
        report = await check_node(node)
        tracks = {t.id: t.audio_cid for t in await node.catalog.tracks()}
    return report, tracks


def assert_clean(report: CheckReport, notices: set[str]) -> set[str]:
    """No problem and only notices of the given kinds; returns the notices' subjects."""
    assert report.ok, [str(p) for p in report.problems]
    assert {n.kind for n in report.notices} <= notices, [str(n) for n in report.notices]
    return {n.subject for n in report.notices}


def check_command_passes(root: Path) -> None:
    check = stave(root, "check")
    assert check.returncode == 0 and "problem" not in check.stderr, check.stdout + check.stderr


def repair_leaves_nothing(root: Path) -> None:
    """`stave check --repair` removes every leftover: the node checks with no notice at all."""
    repair = stave(root, "check", "--repair", "--json")
    assert repair.returncode == 0, repair.stderr
    assert json.loads(repair.stdout)["notices"] == []
    assert list((root / "store" / "tmp").iterdir()) == []
    report, _ = asyncio.run(inspect(root))
    assert report.ok and not report.notices


def summary(
    capsys: pytest.CaptureFixture[str], what: str, line: str, outcomes: Counter[str]
) -> None:
    with capsys.disabled():
        tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        print(f"\n  crash: {what} ({line}; {tally})", end="")


# --- an upload in the server -------------------------------------------------------------------


def test_stave_run_killed_during_an_upload_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    root = asyncio.run(make_node_dir(tmp_path / "node", port, "Ada Example"))

    async def publish_baseline() -> None:
        async with open_node(root) as node:
            await Publisher(node).add_many([FIXTURES / "tone.mp3", FIXTURES / "tone.flac"])

    asyncio.run(publish_baseline())
    token = DataDir(root).admin_token()
    wav = write_wav(tmp_path / "take.wav", 8_000_000, seed=SEED)
    tmp = root / "store" / "tmp"
    log = tmp_path / "run.log"

    # An uninterrupted upload, timed from its first bytes in tmp/ to the answer.
    with served(root, port, log):
        before = set(tmp.iterdir())
        timed = Upload(url, token, wav, title="Timed take")
        timed.start()
        began = None
        while timed.is_alive():
            if began is None and set(tmp.iterdir()) - before:
                began = time.monotonic()
            time.sleep(0.001)
        answered = time.monotonic()
        assert timed.status == 201, (timed.error, timed.body[:300])
    assert began is not None
    work = answered - began

    attempts: dict[int, Upload] = {}

    def upload_begun(number: int) -> Callable[[], bool]:
        # The upload starts with the server (retrying until it listens); the kill is counted
        # from the moment the server has begun writing it into tmp/.
        before = set(tmp.iterdir())
        attempt = attempts[number] = Upload(url, token, wav, f"Take {number}", connect_for=60)
        attempt.start()
        return lambda: bool(set(tmp.iterdir()) - before)

    report, published = asyncio.run(inspect(root))
    assert_clean(report, set())
    assert len(published) == 3
    outcomes: Counter[str] = Counter()
    noticed: set[str] = set()

    def after_kill(trial: KillTrial) -> None:
        assert trial.killed, f"stave run ended by itself: {trial.stderr[-500:]}"
        attempt = attempts[trial.number]
        attempt.join(timeout=60)
        assert not attempt.is_alive()
        assert attempt.status in (None, 201), (attempt.status, attempt.body[:300])
        report, tracks = asyncio.run(inspect(root))
        subjects = assert_clean(report, {"leftover", "orphan"})
        lost = published.keys() - tracks.keys()
        assert not lost, f"trial {trial.number}: lost {lost}"
        assert all(tracks[track_id] == cid for track_id, cid in published.items())
        new = tracks.keys() - published.keys()
        assert len(new) <= 1
        if attempt.status == 201:
            (answer,) = json.loads(attempt.body)["tracks"]
            assert new == {answer["id"]}, f"trial {trial.number}: answered 201, not published"
        published.update(tracks)
        fresh = [n for n in report.notices if n.subject not in noticed]
        noticed.update(subjects)
        outcomes[_upload_outcome(attempt, fresh, new)] += 1
        if trial.number % 3 == 2:
            _restart_and_upload(root, port, log, token, tmp_path, trial.number, published)

    trials = kill_trials(
        lambda _: stave_command(root, "run", "--host", "127.0.0.1", "--port", str(port)),
        after_kill,
        trials=UPLOAD_TRIALS,
        delay=stratified(1.5 * work, UPLOAD_TRIALS, SEED),
        armed=upload_begun,
        seed=SEED,
    )
    check_command_passes(root)
    repair_leaves_nothing(root)
    _restart_and_upload(root, port, log, token, tmp_path, len(trials), published)
    summary(
        capsys,
        f"{len(trials)} kill trials of stave run taking an 8 MB upload",
        f"upload to answer {work:.2f} s",
        outcomes,
    )
    assert len(trials) >= 8
    # The kills landed in the middle of the upload, not only after it was answered.
    assert sum(n for outcome, n in outcomes.items() if "answered" not in outcome) >= 2


def _upload_outcome(attempt: Upload, fresh: list[Finding], new: set[str]) -> str:
    """Where the kill landed, told by the client's side and what the node kept."""
    if attempt.status == 201:
        return "killed after answering 201"
    if new:
        return "killed after publishing, before answering"
    if any(n.kind == "orphan" for n in fresh):
        return "killed between storing and publishing (orphan)"
    if any(n.kind == "leftover" and Path(n.subject).is_file() for n in fresh):
        return "killed while tagging and storing the audio (copy in tmp/)"
    if not attempt.sent.is_set():
        return "killed while receiving the upload"
    return "killed after receiving, before storing"


def _restart_and_upload(
    root: Path,
    port: int,
    log: Path,
    token: str,
    tmp_path: Path,
    number: int,
    published: dict[str, str],
) -> None:
    """A restarted `stave run` serves a feed of every track and publishes a further upload."""
    check_command_passes(root)
    with served(root, port, log) as url:
        feed = json.loads(get(url + "feed.json"))
        assert {t["id"] for t in feed["tracks"]} == published.keys()
        small = write_wav(tmp_path / f"further-{number}.wav", 300_000, seed=1000 + number)
        track = upload(url, token, small, f"Further {number}")
    _, tracks = asyncio.run(inspect(root))
    assert track["id"] in tracks and published.keys() <= tracks.keys()
    published.update(tracks)


# --- a sync and a mirror download --------------------------------------------------------------


class Artist:
    """The followed node, served by `stave run`: publishes through `POST /api/tracks` and keeps
    the exact bytes of every feed it served, by sequence."""

    def __init__(self, url: str, root: Path, log: Path, sources: Path) -> None:
        self.url = url
        self.token = DataDir(root).admin_token()
        self.log = log
        self.sources = sources
        self.feeds: dict[int, bytes] = {}
        self.published = 0

    def publish(self, size: int) -> None:
        """Publish a new WAV of `size` bytes (unique noise) and record the feed that lists it."""
        self.published += 1
        wav = write_wav(self.sources / f"song-{self.published}.wav", size, seed=self.published)
        upload(self.url, self.token, wav, f"Song {self.published}")
        wav.unlink()
        served_before = self.feed_requests()
        body = get(self.url + "feed.json")
        self.feeds[json.loads(body)["sequence"]] = body
        # The access log line comes after the answer: wait for it, so that counting feed
        # requests from here on counts only the follower's.
        deadline = time.monotonic() + 30
        while self.feed_requests() == served_before:
            assert time.monotonic() < deadline, f"no access log line in {self.log}"
            time.sleep(0.005)

    @property
    def latest(self) -> int:
        return max(self.feeds)

    def feed_requests(self) -> int:
        """How many times the feed was served so far, by the access log."""
        return self.log.read_text(errors="replace").count('"GET /feed.json ')


class Follower:
    """What the following node holds about the one artist it follows, and how it checks."""

    def __init__(self, report: CheckReport, sequence: int, body: bytes, tracks: set[str]) -> None:
        self.report = report
        self.sequence = sequence
        self.body = body
        self.tracks = tracks  # ids
        self.content: set[str] = set()  # CIDs of the tracks' files
        self.stored: set[str] = set()  # of those, the ones in the store


@contextmanager
def followed_artist(tmp_path: Path, tracks: int, *options: str) -> Iterator[tuple[Artist, Path]]:
    """Ada's node served by `stave run` with `tracks` tracks of 200 kB published, and Ben's node
    (not served) following it, `stave follow` given `options`: the artist and Ben's node."""
    port = free_port()
    a = asyncio.run(make_node_dir(tmp_path / "a", port, "Ada Example"))
    b = asyncio.run(make_node_dir(tmp_path / "b", free_port(), "Ben Example"))
    with served(a, port, tmp_path / "a.log") as url:
        artist = Artist(url, a, tmp_path / "a.log", tmp_path)
        for _ in range(tracks):
            artist.publish(200_000)
        follow = stave(b, "follow", *options, url)
        assert follow.returncode == 0, follow.stderr
        yield artist, b


async def follower_of(root: Path) -> Follower:
    """The follower's check, and its accepted feed, asserting it is one whole feed: the catalog's
    follow row, the stored feed bytes and the followed tracks all say the same."""
    async with open_node(root) as node:
        report = await check_node(node)
        (follow,) = await node.catalog.follows()
        feed = await node.catalog.followed_feed(follow.artist)
        tracks = await node.catalog.followed_tracks(follow.artist)
        assert feed is not None and follow.sequence == feed.sequence
        listed = json.loads(feed.body)["tracks"]
        assert sorted((t["id"], t["revision"]) for t in listed) == sorted(
            (t.id, t.revision) for t in tracks
        )
        assert follow.track_count == len(tracks)
        state = Follower(report, feed.sequence, feed.body, {t.id for t in tracks})
        state.content = {c for t in tracks for c in (t.audio_cid, t.cover_cid) if c}
        state.content |= {r["cid"] for t in tracks for r in t.manifest.get("renditions", [])}
        state.stored = {c for c in state.content if node.store.has(c)}
    return state


def test_stave_sync_killed_at_random_moments_keeps_a_whole_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with followed_artist(tmp_path, 3) as (artist, b):

        def feed_fetched() -> Callable[[], bool]:
            before = artist.feed_requests()
            return lambda: artist.feed_requests() > before

        # An uninterrupted sync of a new feed, timed: until it has fetched the feed, then to its
        # end (verifying, accepting, recording the status).
        artist.publish(200_000)
        fetching, total = time_phases(stave_command(b, "sync"), feed_fetched())
        accepting = total - fetching
        accepted = asyncio.run(follower_of(b))
        assert accepted.sequence == artist.latest and not accepted.report.notices
        artist.publish(200_000)

        def armed(number: int) -> Callable[[], bool]:
            return (lambda: True) if number % 3 == 0 else feed_fetched()

        from_start = stratified(1.1 * total, SYNC_TRIALS, SEED)
        after_fetch = stratified(1.2 * accepting, SYNC_TRIALS, SEED + 1)

        def delay(number: int, rng: random.Random) -> float:
            # One trial in three counts from the start, anywhere in the whole sync; the others
            # from the feed request, in the verifying and accepting that follow it.
            return (from_start if number % 3 == 0 else after_fetch)(number, rng)

        outcomes: Counter[str] = Counter()
        requests = [artist.feed_requests()]

        def after_kill(trial: KillTrial) -> None:
            nonlocal accepted
            if not trial.killed:
                assert trial.returncode == 0, trial.stderr
            now = asyncio.run(follower_of(b))
            assert_clean(now.report, set())
            assert now.sequence in (accepted.sequence, artist.latest), now.sequence
            assert now.body == artist.feeds[now.sequence]
            assert accepted.tracks <= now.tracks, f"trial {trial.number}: lost tracks"
            assert trial.killed or now.sequence == artist.latest
            fetched = artist.feed_requests() > requests[-1]
            outcomes[_sync_outcome(trial, now.sequence != accepted.sequence, fetched)] += 1
            accepted = now
            if trial.number % 2 == 1:
                accepted = _sync_completes(b, artist)
            artist.publish(200_000)  # something new for the next trial
            requests.append(artist.feed_requests())

        trials = kill_trials(
            lambda _: stave_command(b, "sync"),
            after_kill,
            trials=SYNC_TRIALS,
            delay=delay,
            armed=armed,
            seed=SEED,
        )
        _sync_completes(b, artist)
    summary(
        capsys,
        f"{len(trials)} kill trials of stave sync",
        f"until the feed is fetched {fetching:.2f} s, then {accepting:.2f} s",
        outcomes,
    )
    assert len(trials) >= 8
    # The kills landed after the fetch too, not only in the start-up or after the end.
    assert (
        outcomes["killed after fetching, before accepting"] + outcomes["killed after accepting"]
        >= 2
    )


def _sync_outcome(trial: KillTrial, changed: bool, fetched: bool) -> str:
    if not trial.killed:
        return "ran to the end"
    if changed:
        return "killed after accepting"
    if fetched:
        return "killed after fetching, before accepting"
    return "killed before fetching the feed"


def _sync_completes(root: Path, artist: Artist) -> Follower:
    """An uninterrupted `stave sync` accepts the artist's latest feed and, for a mirror, leaves
    every file of it stored and whole; `stave check` passes."""
    synced = stave(root, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    state = asyncio.run(follower_of(root))
    assert state.sequence == artist.latest and state.body == artist.feeds[artist.latest]
    assert_clean(state.report, {"leftover"})
    check_command_passes(root)
    return state


def test_stave_sync_killed_while_mirroring_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    size = 20_000_000
    with followed_artist(tmp_path, 2, "--mirror") as (artist, b):
        tmp = b / "store" / "tmp"

        def download_begun() -> Callable[[], bool]:
            before = set(tmp.iterdir())
            return lambda: bool(set(tmp.iterdir()) - before)

        # An uninterrupted sync of a feed with a new 20 MB track, timed: until its download
        # begins (a .part file in tmp/), then to its end.
        artist.publish(size)
        starting, total = time_phases(stave_command(b, "sync"), download_begun())
        downloading = total - starting
        mirrored = asyncio.run(follower_of(b))
        # three tracks, each with its listening rendition
        assert mirrored.stored == mirrored.content and len(mirrored.content) == 6
        assert_clean(mirrored.report, set())
        artist.publish(size)

        outcomes: Counter[str] = Counter()
        noticed: set[str] = set()

        def after_kill(trial: KillTrial) -> None:
            nonlocal mirrored
            if not trial.killed:
                assert trial.returncode == 0, trial.stderr
            now = asyncio.run(follower_of(b))
            subjects = assert_clean(now.report, {"leftover", "pending"})
            assert now.sequence in (mirrored.sequence, artist.latest), now.sequence
            assert now.body == artist.feeds[now.sequence]
            assert mirrored.tracks <= now.tracks, f"trial {trial.number}: lost tracks"
            # Nothing mirrored before is lost; whatever is not stored is pending, and whatever
            # is stored re-hashes to its CID (else the check would report it corrupt).
            assert mirrored.stored <= now.stored, f"trial {trial.number}: lost content"
            pending = {n.subject for n in now.report.notices if n.kind == "pending"}
            assert pending == now.content - now.stored
            assert trial.killed or not pending
            fresh = subjects - noticed
            noticed.update(subjects)
            outcomes[_mirror_outcome(trial, fresh, pending)] += 1
            mirrored = now
            if trial.number % 2 == 1:
                mirrored = _sync_completes(b, artist)
                assert mirrored.stored == mirrored.content
            artist.publish(size)  # a new track to download in the next trial

        trials = kill_trials(
            lambda _: stave_command(b, "sync"),
            after_kill,
            trials=MIRROR_TRIALS,
            delay=stratified(1.1 * downloading, MIRROR_TRIALS, SEED),
            armed=lambda _: download_begun(),
            seed=SEED,
        )
        final = _sync_completes(b, artist)
        tracks = 3 + 1 + MIRROR_TRIALS
        assert final.stored == final.content and len(final.content) == 2 * tracks  # renditions
    repair_leaves_nothing(b)
    summary(
        capsys,
        f"{len(trials)} kill trials of stave sync mirroring a 20 MB track",
        f"until the download begins {starting:.2f} s, then {downloading:.2f} s",
        outcomes,
    )
    assert len(trials) >= 8
    assert outcomes["killed while downloading (.part in tmp/, content pending)"] >= 1


def _mirror_outcome(trial: KillTrial, fresh: set[str], pending: set[str]) -> str:
    if not trial.killed:
        return "ran to the end"
    if not pending:
        return "killed after the download was stored"
    if any(subject.endswith(".part") for subject in fresh):
        return "killed while downloading (.part in tmp/, content pending)"
    return "killed before downloading (content pending)"

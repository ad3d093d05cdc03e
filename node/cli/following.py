"""Following other nodes from the command line: `follow`, `unfollow`, `following` and `sync`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from node.catalog import open_catalog
from node.cli.common import EXIT_INVALID, Subcommands, add_command, data_dir, print_json
from node.datadir import DataDir
from node.errors import UsageError


class _MirrorProgress:
    """A rich progress bar for mirror downloads when stderr is a terminal, else nothing."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[Any], None] | None:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]Mirroring[/bold] {task.fields[files]}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        return self._update

    def _update(self, state: Any) -> None:
        files = f"{state.files_done}/{state.files_total} files"
        if self._task is None:
            self._task = self._progress.add_task("mirror", total=state.bytes_total, files=files)
        self._progress.update(
            self._task, completed=state.bytes_done, total=state.bytes_total, files=files
        )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


async def cmd_follow(args: argparse.Namespace) -> int:
    from node.federation.follows import open_follows
    from node.federation.outcomes import follow_json

    async with open_follows(data_dir(args)) as service:
        with _MirrorProgress() as progress:
            if args.target.startswith("did:"):
                if not args.mirror:
                    raise UsageError(f"{args.target}: give the node's URL to follow it")
                follow, failures = await service.mirror_followed(args.target, progress)
                for line in failures:
                    print(f"stave: not mirrored: {line}", file=sys.stderr)
                print(f"Mirroring {follow.name} ({follow.artist})")
                return EXIT_INVALID if failures else 0
            outcome = await service.follow(args.target, mirror=args.mirror, progress=progress)
    follow, sync = outcome.follow, outcome.sync
    if args.json:
        print_json({**follow_json(follow), "sync": sync.to_json()})
    else:
        print(f"Following {follow.name} ({follow.artist}) at {follow.url}")
        if sync.verdict != "rejected":
            mirrored = ", mirrored here" if follow.mirror else ""
            print(f"  feed {follow.sequence}: {follow.track_count} track(s){mirrored}")
    if outcome.subscription_error:
        print(f"stave: no WebSub push, polling only: {outcome.subscription_error}", file=sys.stderr)
    if sync.error:
        print(f"stave: first sync: {sync.error}", file=sys.stderr)
        return EXIT_INVALID
    return 0


async def cmd_unfollow(args: argparse.Namespace) -> int:
    from node.federation.follows import open_follows

    async with open_follows(data_dir(args)) as service:
        follow = await service.unfollow(args.target)
    print(f"No longer following {follow.name} ({follow.artist})")
    return 0


async def cmd_following(args: argparse.Namespace) -> int:
    from node.federation.outcomes import follow_json

    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        follows = [follow_json(f) for f in await catalog.follows()]
    if args.json:
        print_json(follows)
        return 0
    if not follows:
        print("Not following anyone. Follow an artist with: stave follow URL", file=sys.stderr)
    for f in follows:
        mirror = "mirror" if f["mirror"] else "      "
        sequence = "-" if f["sequence"] is None else f["sequence"]
        print(
            f"{f['name']}  {f['did']}  {f['url']}  feed {sequence}  {f['tracks']} track(s)"
            f"  {mirror}  synced {f['lastSync'] or 'never'}" + ("  STALE" if f["stale"] else "")
        )
        if f["lastError"]:
            print(f"    last error: {f['lastError']}")
    return 0


async def cmd_sync(args: argparse.Namespace) -> int:
    from node.federation.follows import open_follows

    async with open_follows(data_dir(args)) as service:
        outcomes = await service.sync_all()
    if args.json:
        print_json([o.to_json() for o in outcomes])
    else:
        if not outcomes:
            print("Not following anyone.", file=sys.stderr)
        for o in outcomes:
            line = f"{o.name} ({o.artist}): {o.verdict}"
            if o.sequence is not None:
                line += f", feed {o.sequence}"
            if o.added or o.removed:
                line += f", +{len(o.added)} -{len(o.removed)} track(s)"
            if o.rotated_from:
                line += f", the artist's key rotated from {o.rotated_from} (statement verified)"
            if o.verdict == "rejected":
                line += f": {o.reason}"
            print(line)
            for error in o.mirror_errors:
                print(f"    not mirrored: {error}")
    return EXIT_INVALID if any(o.error for o in outcomes) else 0


def register(commands: Subcommands) -> None:
    """Add the following commands to `stave`."""
    follow = add_command(
        commands, "follow", cmd_follow, "follow an artist's node: verify, subscribe, sync, mirror"
    )
    follow.add_argument("target", metavar="URL", help="the node's URL (or a followed did)")
    follow.add_argument(
        "--mirror", action="store_true", help="keep a verified copy of the artist's catalog"
    )
    follow.add_argument("--json", action="store_true")
    unfollow = add_command(commands, "unfollow", cmd_unfollow, "stop following an artist")
    unfollow.add_argument("target", metavar="DID|URL")
    following = add_command(
        commands, "following", cmd_following, "list the artists this node follows"
    )
    following.add_argument("--json", action="store_true")
    sync = add_command(
        commands, "sync", cmd_sync, "sync every followed feed now and say what changed"
    )
    sync.add_argument("--json", action="store_true")

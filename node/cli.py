"""The `stave` command. Each command parses, calls one library function, and prints.

Errors a user can cause print one line to stderr and exit 2; `verify` exits 1 for an invalid
file. Secrets come from the environment (`STAVE_KEY_PASSPHRASE`), never from flags.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from node import __version__
from node.catalog import TrackRecord, open_catalog
from node.datadir import DataDir, Node, default_data_dir, init_data_dir, open_node
from node.errors import StaveError, UsageError
from node.publish import Publisher, TrackChoices
from node.terms import check_use

EXIT_ERROR = 2
EXIT_INVALID = 1

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """The one place coroutines are run from the command line."""
    return asyncio.run(coroutine)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir()


async def cmd_init(args: argparse.Namespace) -> int:
    root = _data_dir(args)
    identity = init_data_dir(root, args.name, args.url)
    async with open_node(root) as node:
        await Publisher(node).publish_feed()
    print(identity.did)
    print(f"Initialised {root}", file=sys.stderr)
    return 0


async def cmd_id(args: argparse.Namespace) -> int:
    print(DataDir(_data_dir(args)).load_identity().did)
    return 0


def _choices(args: argparse.Namespace) -> TrackChoices:
    ai_training = args.ai_training
    if ai_training is not None:
        check_use(ai_training)
    return TrackChoices(
        title=args.title,
        license=args.license,
        copyright=args.copyright,
        ai_training=ai_training,
    )


async def cmd_add(args: argparse.Namespace) -> int:
    sources = [Path(name) for name in args.files]
    for source in sources:
        if not source.is_file():
            reason = "no such file" if not source.exists() else "not a regular file"
            raise UsageError(f"{source}: {reason}")
    choices = _choices(args)
    async with open_node(_data_dir(args)) as node:
        publisher = Publisher(node)
        if len(sources) > 1 and sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task("Publishing", total=len(sources))
                manifests = await publisher.add_many(
                    sources, choices, on_stored=lambda _: progress.advance(task)
                )
        else:
            manifests = await publisher.add_many(sources, choices)
        await _pin_briefly(node)
    if args.json:
        _print_json(manifests)
    else:
        for manifest in manifests:
            print(f"{manifest['id']}  {manifest['audio']['cid']}  {manifest['title']}")
    return 0


def _summary(track: TrackRecord) -> dict[str, Any]:
    manifest = track.manifest
    return {
        "id": track.id,
        "title": track.title,
        "revision": track.revision,
        "cid": track.audio_cid,
        "durationSeconds": manifest.get("durationSeconds"),
        "license": manifest["terms"]["license"],
        "aiTraining": manifest["terms"]["dataMining"]["aiTraining"],
    }


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_catalog(DataDir(_data_dir(args)).catalog_path) as catalog:
        tracks = await catalog.tracks()
    if args.json:
        _print_json([track.manifest for track in tracks])
        return 0
    if not tracks:
        print("No tracks yet. Publish one with: stave add FILE", file=sys.stderr)
    for track in tracks:
        s = _summary(track)
        minutes, seconds = divmod(int(s["durationSeconds"] or 0), 60)
        print(
            f"{track.id[9:17]}  {minutes}:{seconds:02d}  r{s['revision']}  {s['license']:<16}"
            f" AI:{s['aiTraining']:<11}  {s['cid']}  {s['title']}"
        )
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_catalog(DataDir(_data_dir(args)).catalog_path) as catalog:
        track = await catalog.find_track(args.id)
    if args.json:
        _print_json(track.manifest)
        return 0
    manifest = track.manifest
    terms = manifest["terms"]
    rows = [
        ("id", track.id),
        ("title", track.title),
        ("revision", track.revision),
        ("published", track.published),
        ("duration", f"{manifest.get('durationSeconds')} s"),
        (
            "audio",
            f"{track.audio_cid} ({manifest['audio']['mediaType']}, "
            f"{manifest['audio']['size']} bytes)",
        ),
        ("cover", track.cover_cid or "none"),
        ("license", terms["license"]),
        ("copyright", terms.get("copyright", "")),
        ("tdmReservation", terms["tdmReservation"]),
        ("AI training", terms["dataMining"]["aiTraining"]),
        ("withdrawn", track.withdrawn_at or "no"),
    ]
    for label, value in rows:
        print(f"{label:>15}: {value}")
    return 0


async def cmd_edit(args: argparse.Namespace) -> int:
    choices = _choices(args)
    async with open_node(_data_dir(args)) as node:
        manifest = await Publisher(node).edit(args.id, choices)
        await _pin_briefly(node)
    if args.json:
        _print_json(manifest)
    else:
        print(f"{manifest['id']}  revision {manifest['revision']}  {manifest['audio']['cid']}")
    return 0


async def cmd_withdraw(args: argparse.Namespace) -> int:
    async with open_node(_data_dir(args)) as node:
        track = await Publisher(node).withdraw(args.id)
        await _pin_briefly(node)
    print(f"{track.id}  withdrawn at {track.withdrawn_at}")
    return 0


async def cmd_cat(args: argparse.Namespace) -> int:
    from node.store import Store

    store = Store(DataDir(_data_dir(args)).store_path)
    with store.open(args.cid) as source:
        shutil.copyfileobj(source, sys.stdout.buffer, 1024 * 1024)
    sys.stdout.buffer.flush()
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    from node.verify import verify_file

    if args.path.startswith("ipns://"):
        return await _verify_ipns(args)
    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    data = DataDir(_data_dir(args))
    if data.catalog_path.exists():
        async with open_catalog(data.catalog_path) as catalog:
            verdict = await verify_file(path, catalog, use_feed=not args.offline)
    else:
        verdict = await verify_file(path, None, use_feed=not args.offline)
    if args.json:
        _print_json(verdict.to_json())
    else:
        state = "valid" if verdict.valid else "INVALID"
        print(f"{path.name}: {state}: {verdict.reason}")
        print(f"  CID {verdict.cid}")
    return 0 if verdict.valid else EXIT_INVALID


async def cmd_admin_token(args: argparse.Namespace) -> int:
    data = DataDir(_data_dir(args))
    data.load_config()
    print(data.write_admin_token() if args.rotate else data.admin_token())
    return 0


async def cmd_key_rotate(args: argparse.Namespace) -> int:
    from node.keys import rotate_key
    from node.rotation import ROTATION_PATH

    root = _data_dir(args)
    result = await rotate_key(root)
    async with open_node(root) as node:
        await _pin_briefly(node)
        statements = node.base_url + ROTATION_PATH
    print(result.new_did)
    feed = f"feed {result.feed.sequence}" if result.feed else "the feed"
    print(
        f"Rotated the key: {result.old_did} -> {result.new_did}; {result.tracks} track(s) and"
        f" {feed} signed by the new key; the old key is kept in {result.old_key};"
        f" followers learn of it from {statements}",
        file=sys.stderr,
    )
    return 0


async def cmd_run(args: argparse.Namespace) -> int:
    from node.web.runner import serve

    root = _data_dir(args)
    config = DataDir(root).load_config()
    host = args.host or config["server.host"]
    port = config["server.port"] if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a port number from 0 to 65535")
    await serve(root, host, port, shutdown_timeout=config["server.shutdown_timeout"])
    return 0


# --- federation: follow, unfollow, following, sync -------------------------------------------


async def cmd_follow(args: argparse.Namespace) -> int:
    from node.federation.follows import open_follows

    async with open_follows(_data_dir(args)) as service:
        with _MirrorProgress() as progress:
            if args.target.startswith("did:"):
                if not args.mirror:
                    raise UsageError(f"{args.target}: give the node's URL to follow it")
                follow = await service.find(args.target)
                failures = await service.set_mirror(follow.artist, True, progress)
                for line in failures:
                    print(f"stave: not mirrored: {line}", file=sys.stderr)
                print(f"Mirroring {follow.name} ({follow.artist})")
                return EXIT_INVALID if failures else 0
            outcome = await service.follow(args.target, mirror=args.mirror, progress=progress)
    follow, sync = outcome.follow, outcome.sync
    if args.json:
        from node.federation.follows import follow_json

        _print_json({**follow_json(follow), "sync": sync.to_json()})
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


async def cmd_unfollow(args: argparse.Namespace) -> int:
    from node.federation.follows import open_follows

    async with open_follows(_data_dir(args)) as service:
        follow = await service.unfollow(args.target)
    print(f"No longer following {follow.name} ({follow.artist})")
    return 0


async def cmd_following(args: argparse.Namespace) -> int:
    from node.federation.follows import follow_json

    async with open_catalog(DataDir(_data_dir(args)).catalog_path) as catalog:
        follows = [follow_json(f) for f in await catalog.follows()]
    if args.json:
        _print_json(follows)
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

    async with open_follows(_data_dir(args)) as service:
        outcomes = await service.sync_all()
    if args.json:
        _print_json([o.to_json() for o in outcomes])
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


def _track_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--title", help="track title (default: the title tag, else the file name)")
    parser.add_argument("--license", help="SPDX licence id, ARR (all rights reserved), or a URL")
    parser.add_argument("--copyright", help='copyright line: "YEAR HOLDER"')
    parser.add_argument(
        "--ai-training",
        metavar="{allowed,notAllowed,constrained}",
        help="whether this track may be used to train AI (default: notAllowed)",
    )
    parser.add_argument("--json", action="store_true", help="print the signed manifest(s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stave",
        description="Stave: publish your music signed, with your terms inside every file.",
    )
    parser.add_argument("--version", action="version", version=f"stave {__version__}")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the node's data directory (default: $STAVE_DATA_DIR or the user data dir)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    init = command("init", cmd_init, "create the data directory, the artist's key and catalog")
    init.add_argument("--name", required=True, help="the artist or project name")
    init.add_argument("--url", help="the public base URL of this node")
    command("id", cmd_id, "print the artist's did:key")
    add = command("add", cmd_add, "publish audio files (MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF)")
    add.add_argument("files", nargs="+", metavar="FILE")
    _track_options(add)
    listing = command("list", cmd_list, "list published tracks, newest first")
    listing.add_argument("--json", action="store_true")
    show = command("show", cmd_show, "show one track")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    edit = command("edit", cmd_edit, "publish a new revision of a track")
    edit.add_argument("id", metavar="ID")
    _track_options(edit)
    withdraw = command("withdraw", cmd_withdraw, "withdraw a track from the feed")
    withdraw.add_argument("id", metavar="ID")
    cat = command("cat", cmd_cat, "write stored content to stdout")
    cat.add_argument("cid", metavar="CID")
    verify = command(
        "verify", cmd_verify, "check a file's tags and CID against its signed manifest"
    )
    verify.add_argument("path", metavar="PATH", help="an audio file, or ipns://NAME for a feed")
    verify.add_argument("--offline", action="store_true", help="use the local catalog only")
    verify.add_argument("--json", action="store_true")
    serve = command("run", cmd_run, "serve the node on the web until SIGTERM or Ctrl-C")
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument(
        "--port", type=int, help="port to listen on, 0 for any free one (default: server.port)"
    )
    follow = command(
        "follow", cmd_follow, "follow an artist's node: verify, subscribe, sync, mirror"
    )
    follow.add_argument("target", metavar="URL", help="the node's URL (or a followed did)")
    follow.add_argument(
        "--mirror", action="store_true", help="keep a verified copy of the artist's catalog"
    )
    follow.add_argument("--json", action="store_true")
    unfollow = command("unfollow", cmd_unfollow, "stop following an artist")
    unfollow.add_argument("target", metavar="DID|URL")
    following = command("following", cmd_following, "list the artists this node follows")
    following.add_argument("--json", action="store_true")
    sync = command("sync", cmd_sync, "sync every followed feed now and say what changed")
    sync.add_argument("--json", action="store_true")
    token = command("admin-token", cmd_admin_token, "print the admin API token")
    token.add_argument("--rotate", action="store_true", help="replace it with a new one")
    key = commands.add_parser(
        "key", help="manage the artist's key", description="manage the artist's key"
    )
    key_commands = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    rotate = key_commands.add_parser(
        "rotate",
        help="replace the artist's key; the old key signs a statement naming the new one",
        description=(
            "Replace the artist's key with a new one (the node must not be running). The old"
            " key signs a statement naming the new did, served at"
            " /.well-known/stave-rotation.json, so followers accept the new key; every current"
            " track and the next feed are signed again by the new key. The old key is kept as"
            " key.old-N.pem. Run it again to finish a rotation that was interrupted."
        ),
    )
    rotate.set_defaults(handler=cmd_key_rotate)
    _pinning_commands(command)
    _backup_commands(command)
    _check_commands(command)
    return parser


# --- pinning to Kubo (node/pinning.py) ---------------------------------------------------------


async def _pin_briefly(node: Node) -> None:
    """After a publish with the kubo backend: give Kubo a few seconds to take it, else leave
    the rest to the queue with a one-line notice."""
    if node.config["ipfs.backend"] != "kubo":
        return
    from node.pinning import pin_for_a_moment

    queue = await pin_for_a_moment(node, node.config["ipfs.publish_wait_seconds"])
    if queue.left:
        print(
            f"stave: published; Kubo: {queue.notice()}; `stave run` or `stave pin` will finish",
            file=sys.stderr,
        )


async def cmd_status(args: argparse.Namespace) -> int:
    from node.pinning import status

    async with open_node(_data_dir(args)) as node:
        found = await status(node)
    if args.json:
        _print_json(found.to_json())
        return 0
    queue = found.queue
    rows: list[tuple[str, str]] = [("backend", found.backend)]
    if found.api is not None:
        rows.append(("kubo", found.kubo_error or f"{found.kubo_version} at {found.api}"))
        pins = f"{queue.pinned} pinned, {queue.pending} pending, {queue.failed} failed"
        if queue.unpins_pending:
            pins += f", {queue.unpins_pending} unpins pending"
        rows.append(("pins", pins))
        for record in queue.open:
            what = f"{record.state} {record.want[:-2]}"
            why = f": {record.last_error}" if record.last_error else ""
            rows.append((what, f"{record.cid} ({record.attempts} attempts){why}"))
    feed = "none" if found.feed_sequence is None else f"{found.feed_sequence} ({found.feed_cid})"
    rows.append(("feed", feed))
    if found.ipns_enabled:
        ipns = found.ipns
        published = "not yet published"
        if ipns is not None and ipns.sequence is not None:
            published = f"feed {ipns.sequence} ({ipns.cid})"
        if ipns is not None and ipns.last_error:
            published += f"; last attempt failed: {ipns.last_error}"
        rows.append(("ipns", f"{found.ipns_name}: {published}"))
    for label, value in rows:
        print(f"{label:>15}: {value}")
    return 0


async def cmd_pin(args: argparse.Namespace) -> int:
    from node.pinning import kubo_client, process_pins, queue_state, uses_kubo

    async with open_node(_data_dir(args)) as node:
        if not uses_kubo(node):
            raise UsageError('pin: the node does not use Kubo; set [ipfs] backend = "kubo"')
        if args.retry_failed:
            async with node.catalog.transaction() as tx:
                await tx.retry_failed_pins()
        async with kubo_client(node) as client:
            await process_pins(node, client, once=True)
        queue = await queue_state(node.catalog)
    if queue.left:
        print(f"stave: Kubo: {queue.notice()}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{queue.pinned} pinned, nothing pending")
    return 0


async def _verify_ipns(args: argparse.Namespace) -> int:
    from node.kubo import KuboClient
    from node.pinning import AUTHORIZATION_ENV, kubo_client
    from node.verify import verify_ipns

    name = args.path.removeprefix("ipns://").strip("/")
    if not name or "/" in name:
        raise UsageError(f"{args.path}: give ipns://NAME, the name alone")
    data = DataDir(_data_dir(args))
    if data.config_path.exists():
        async with open_node(data.root) as node, kubo_client(node) as client:
            verdict = await verify_ipns(name, client)
    else:
        authorization = os.environ.get(AUTHORIZATION_ENV) or None
        async with KuboClient(authorization=authorization) as client:
            verdict = await verify_ipns(name, client)
    if args.json:
        _print_json(verdict.to_json())
    else:
        state = "valid" if verdict.valid else "INVALID"
        print(f"ipns://{name}: {state}: {verdict.reason}")
    return 0 if verdict.valid else EXIT_INVALID


def _pinning_commands(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    status = command("status", cmd_status, "show the IPFS backend, pins pending and the IPNS name")
    status.add_argument("--json", action="store_true")
    pin = command("pin", cmd_pin, "pin everything queued to Kubo now and publish the IPNS name")
    pin.add_argument("--retry-failed", action="store_true", help="try refused pins again")


# --- backup and restore (node/backup.py) -------------------------------------------------------

EXPORT_PASSPHRASE_ENV = "STAVE_EXPORT_PASSPHRASE"


def _archive_passphrase(*, confirm: bool) -> str:
    """The passphrase protecting the key inside an archive: $STAVE_EXPORT_PASSPHRASE, else asked
    on the terminal (twice when `confirm`); never a flag."""
    passphrase = os.environ.get(EXPORT_PASSPHRASE_ENV)
    if passphrase:
        return passphrase
    if not sys.stdin.isatty():
        raise UsageError(
            f"the archive's key needs a passphrase: set {EXPORT_PASSPHRASE_ENV}"
            " or run on a terminal to be asked"
        )
    import getpass

    passphrase = getpass.getpass("Passphrase for the key in the archive: ")
    if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
        raise UsageError("the two passphrases differ; nothing was exported")
    if not passphrase:
        raise UsageError("an empty passphrase cannot protect the key")
    return passphrase


async def cmd_export(args: argparse.Namespace) -> int:
    from node.backup import describe, export_node

    passphrase = _archive_passphrase(confirm=True) if args.with_key else None
    to_stdout = args.file == "-"
    target = sys.stdout.buffer if to_stdout else Path(args.file)
    summary = await export_node(_data_dir(args), target, key_passphrase=passphrase)
    print(f"Exported {describe(summary)}", file=sys.stderr if to_stdout else sys.stdout)
    return 0


async def cmd_import(args: argparse.Namespace) -> int:
    from node.backup import describe, import_node

    source = sys.stdin.buffer if args.file == "-" else Path(args.file)
    root = _data_dir(args)
    summary = await import_node(
        source, root, archive_passphrase=lambda: _archive_passphrase(confirm=False)
    )
    print(f"Restored {describe(summary)} into {root}")
    return 0


def _backup_commands(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    export = command(
        "export", cmd_export, "write a backup archive: content, catalog, feed chain, config"
    )
    export.add_argument("file", metavar="FILE", help="the archive to write (- for stdout)")
    export.add_argument(
        "--with-key",
        action="store_true",
        help=f"include the artist's key, encrypted with a passphrase (${EXPORT_PASSPHRASE_ENV}"
        " or asked on the terminal)",
    )
    restore = command(
        "import", cmd_import, "restore a backup archive into a new, empty data directory"
    )
    restore.add_argument("file", metavar="FILE", help="the archive to read (- for stdin)")


# --- checking the node (node/check.py) ---------------------------------------------------------


async def cmd_check(args: argparse.Namespace) -> int:
    from node.check import check_node

    async with open_node(_data_dir(args), exclusive=args.repair) as node:
        report = await check_node(node, repair=args.repair)
    if args.json:
        _print_json(report.to_json())
        return 0 if report.ok else EXIT_INVALID
    for finding in report.problems:
        print(finding)
    for finding in report.notices:
        print(f"notice: {finding}")
    for finding in report.repaired:
        print(f"repaired: {finding}")
    summary = (
        f"Checked {report.files} stored file(s), {report.tracks} track(s), {report.feeds} feed(s): "
    )
    summary += f"{len(report.problems)} problem(s)" if report.problems else "all well"
    if report.notices:
        summary += f"; {len(report.notices)} notice(s)"
        if any(f.repairable for f in report.notices):
            summary += " (`stave check --repair` removes the leftovers)"
    if report.repaired:
        summary += f"; repaired {len(report.repaired)}"
    print(summary, file=sys.stderr)
    return 0 if report.ok else EXIT_INVALID


def _check_commands(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    check = command(
        "check",
        cmd_check,
        "re-hash every stored file and check the catalog and the feed chain against the store",
    )
    check.add_argument(
        "--repair",
        action="store_true",
        help="remove content nothing references and leftovers of interrupted writes, re-index"
        " (needs the node to itself: stop `stave run` first)",
    )
    check.add_argument("--json", action="store_true")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        return run(args.handler(args))
    except StaveError as e:
        print(f"stave: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("stave: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0

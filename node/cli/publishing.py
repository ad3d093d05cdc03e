"""Publishing from the command line: `init`, `id`, `add`, `list`, `show`, `edit`, `withdraw`,
`cat` and `verify`. `add` publishes one file as a track, and a folder or several files as one
release (its options and progress bar are in node/cli/releases.py)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from node.catalog import TrackRecord, open_catalog
from node.cli.common import (
    EXIT_INVALID,
    Subcommands,
    add_command,
    data_dir,
    pin_briefly,
    print_json,
    print_rows,
)
from node.cli.ipfs import verify_ipns_name
from node.cli.releases import (
    ReleaseProgress,
    add_release_options,
    release_choices,
    wants_release,
)
from node.datadir import DataDir, open_node
from node.publish import Publisher, TrackChoices, audio_sources, init_node
from node.releases import ReleaseChoices, ReleasePublisher, release_sources
from node.terms import check_use


async def cmd_init(args: argparse.Namespace) -> int:
    root = data_dir(args)
    identity = await init_node(root, args.name, args.url)
    print(identity.did)
    print(f"Initialised {root}", file=sys.stderr)
    return 0


async def cmd_id(args: argparse.Namespace) -> int:
    # The did stays alone on the first line: scripts read it with `stave id | head -n 1`.
    data = DataDir(data_dir(args))
    did = data.load_identity().did
    config = data.load_config()
    host = urlsplit(config["node.url"]).netloc
    print(f"{did}\nfediverse: @{config['fediverse.handle']}@{host}")
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
    if wants_release(args):
        return await _add_release(args, release_choices(args))
    sources = audio_sources(args.files)
    choices = _choices(args)
    async with open_node(data_dir(args)) as node:
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
        await pin_briefly(node)
    _print_added(args, manifests)
    return 0


async def _add_release(args: argparse.Namespace, choices: ReleaseChoices) -> int:
    sources = release_sources(args.files, args.cover)
    track_choices = _choices(replace_namespace(args, title=None))
    async with open_node(data_dir(args)) as node:
        with ReleaseProgress(len(sources.tracks)) as progress:
            published = await ReleasePublisher(node).add_release(
                sources, choices, track_choices, on_step=progress
            )
        await pin_briefly(node)
    _print_added(args, published.manifests)
    if not args.json:
        release = published.release
        print(
            f"release {release['id']}  {release['kind']}  {len(release['tracks'])} track(s)"
            f"  {release['title']}"
        )
    return 0


def replace_namespace(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def _print_added(args: argparse.Namespace, manifests: list[dict[str, Any]]) -> None:
    if args.json:
        print_json(manifests)
    else:
        for manifest in manifests:
            print(f"{manifest['id']}  {manifest['audio']['cid']}  {manifest['title']}")


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
    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        tracks = await catalog.tracks()
    if args.json:
        print_json([track.manifest for track in tracks])
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
    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        track = await catalog.find_track(args.id)
    if args.json:
        print_json(track.manifest)
        return 0
    manifest = track.manifest
    terms = manifest["terms"]
    print_rows(
        [
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
    )
    return 0


async def cmd_edit(args: argparse.Namespace) -> int:
    choices = _choices(args)
    async with open_node(data_dir(args)) as node:
        manifest = await Publisher(node).edit(args.id, choices)
        await pin_briefly(node)
    if args.json:
        print_json(manifest)
    else:
        print(f"{manifest['id']}  revision {manifest['revision']}  {manifest['audio']['cid']}")
    return 0


async def cmd_withdraw(args: argparse.Namespace) -> int:
    async with open_node(data_dir(args)) as node:
        track = await Publisher(node).withdraw(args.id)
        await pin_briefly(node)
    print(f"{track.id}  withdrawn at {track.withdrawn_at}")
    return 0


async def cmd_cat(args: argparse.Namespace) -> int:
    from node.store import Store

    store = Store(DataDir(data_dir(args)).store_path)
    with store.open(args.cid) as source:
        shutil.copyfileobj(source, sys.stdout.buffer, 1024 * 1024)
    sys.stdout.buffer.flush()
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    if args.path.startswith("ipns://"):
        return await verify_ipns_name(args)
    from node.verify import verify_file_at

    path = Path(args.path)
    verdict = await verify_file_at(data_dir(args), path, use_feed=not args.offline)
    if args.json:
        print_json(verdict.to_json())
    else:
        state = "valid" if verdict.valid else "INVALID"
        print(f"{path.name}: {state}: {verdict.reason}")
        print(f"  CID {verdict.cid}")
    return 0 if verdict.valid else EXIT_INVALID


def _track_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--title",
        help="track title (default: the title tag, else the file name); for a release, its"
        " title (default: the album tag, else the folder's name)",
    )
    parser.add_argument("--license", help="SPDX licence id, ARR (all rights reserved), or a URL")
    parser.add_argument("--copyright", help='copyright line: "YEAR HOLDER"')
    parser.add_argument(
        "--ai-training",
        metavar="{allowed,notAllowed,constrained}",
        help="whether this track may be used to train AI (default: notAllowed)",
    )
    parser.add_argument("--json", action="store_true", help="print the signed manifest(s)")


def register(commands: Subcommands) -> None:
    """Add the publishing commands to `stave`."""
    init = add_command(
        commands, "init", cmd_init, "create the data directory, the artist's key and catalog"
    )
    init.add_argument("--name", required=True, help="the artist or project name")
    init.add_argument("--url", help="the public base URL of this node")
    add_command(commands, "id", cmd_id, "print the artist's did:key")
    add = add_command(
        commands,
        "add",
        cmd_add,
        "publish audio files (MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF): one file as a track,"
        " a folder or several files as one release",
    )
    add.add_argument("files", nargs="+", metavar="FILE|DIR")
    _track_options(add)
    add_release_options(add)
    listing = add_command(commands, "list", cmd_list, "list published tracks, newest first")
    listing.add_argument("--json", action="store_true")
    show = add_command(commands, "show", cmd_show, "show one track")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    edit = add_command(commands, "edit", cmd_edit, "publish a new revision of a track")
    edit.add_argument("id", metavar="ID")
    _track_options(edit)
    withdraw = add_command(commands, "withdraw", cmd_withdraw, "withdraw a track from the feed")
    withdraw.add_argument("id", metavar="ID")
    cat = add_command(commands, "cat", cmd_cat, "write stored content to stdout")
    cat.add_argument("cid", metavar="CID")
    verify = add_command(
        commands, "verify", cmd_verify, "check a file's tags and CID against its signed manifest"
    )
    verify.add_argument("path", metavar="PATH", help="an audio file, or ipns://NAME for a feed")
    verify.add_argument("--offline", action="store_true", help="use the local catalog only")
    verify.add_argument("--json", action="store_true")

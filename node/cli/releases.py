"""Releases from the command line: `release list`, `release show`, `release edit`, `release
withdraw`, and what `add` needs to publish a folder or several files as one release (its
options, the choice of a release over a loose track, the progress bar)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from node.catalog import ReleaseRecord, open_catalog
from node.cli.common import Subcommands, add_command, data_dir, pin_briefly, print_json, print_rows
from node.datadir import DataDir, open_node
from node.errors import TrackNotFound, UsageError
from node.release import RELEASE_KINDS
from node.releases import Credit, ReleaseChoices, ReleasePublisher

_RELEASE_OPTIONS = ("kind", "released", "cover", "credit", "description", "upc")


def wants_release(args: argparse.Namespace) -> bool:
    """Whether `add` publishes a release: for a folder, several files, or one file with a
    release option (`--kind single`, `--cover`…); `--loose` keeps every file a track."""
    chosen = [name for name in _RELEASE_OPTIONS if getattr(args, name)]
    if args.loose:
        if chosen:
            raise UsageError(f"--loose: a loose track has no --{chosen[0]}")
        return False
    return len(args.files) > 1 or Path(args.files[0]).is_dir() or bool(chosen)


def release_choices(args: argparse.Namespace) -> ReleaseChoices:
    credits: tuple[Credit, ...] | None = None
    if getattr(args, "no_credits", False):
        credits = ()
    if args.credit:
        credits = tuple(_credit(text) for text in args.credit)
    return ReleaseChoices(
        title=args.title,
        kind=args.kind,
        released=args.released,
        credits=credits,
        description=args.description,
        upc=args.upc,
    ).checked()


def _places(order: str, entries: list[dict[str, Any]]) -> tuple[tuple[str, int, int], ...]:
    """`--order 2,1,3`: the tracks by their current places, in the new play order; each keeps
    its disc."""
    try:
        positions = [int(part) for part in order.split(",")]
    except ValueError:
        positions = []
    if sorted(positions) != list(range(1, len(entries) + 1)):
        raise UsageError(
            f"--order: {order!r}: give the places 1 to {len(entries)}, each once, in the new"
            " order, as 2,1,3"
        )
    picked = [entries[p - 1] for p in positions]
    return tuple((entry["id"], entry["disc"], n) for n, entry in enumerate(picked, start=1))


def _credit(text: str) -> Credit:
    role, equals, name = text.partition("=")
    if not equals or not role.strip() or not name.strip():
        raise UsageError(f"--credit: {text!r}: give ROLE=NAME, as producer=Ada Example")
    return Credit(role.strip(), name.strip())


class ReleaseProgress:
    """A rich progress bar over a release's files when stderr is a terminal, else nothing:
    each file is checked, then stored."""

    def __init__(self, files: int) -> None:
        self._files = files
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ReleaseProgress:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[file]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("Checking", total=self._files, file="")
        return self

    def __call__(self, step: str, source: Path) -> None:
        if self._progress is None:
            return
        task = self._progress.tasks[0]
        if step == "stored" and task.description == "Checking":
            self._progress.reset(self._task, total=self._files, description="Publishing")
        self._progress.update(self._task, advance=1, file=source.name)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


async def cmd_release_list(args: argparse.Namespace) -> int:
    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        releases = await catalog.releases(include_withdrawn=args.all)
    if args.json:
        print_json([r.document for r in releases])
        return 0
    if not releases:
        print("No releases yet. Publish a folder as one with: stave add DIR", file=sys.stderr)
    for r in releases:
        gone = f"  withdrawn {r.withdrawn_at}" if r.withdrawn_at else ""
        count = len(r.document["tracks"])
        print(
            f"{r.id[9:17]}  {r.released}  {r.kind:<11}  r{r.revision}  {count:>2} track(s)"
            f"  {r.title}{gone}"
        )
    return 0


async def cmd_release_show(args: argparse.Namespace) -> int:
    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        record = await catalog.find_release(args.id)
        titles = {}
        for entry in record.document["tracks"]:
            try:
                titles[entry["id"]] = (await catalog.track(entry["id"])).title
            except TrackNotFound:
                titles[entry["id"]] = "?"
    if args.json:
        print_json(record.document)
        return 0
    _print_release(record, titles)
    return 0


def _print_release(record: ReleaseRecord, titles: dict[str, str]) -> None:
    document = record.document
    credits = "; ".join(f"{c['role']}: {c['name']}" for c in document.get("credits", []))
    print_rows(
        [
            ("id", record.id),
            ("title", record.title),
            ("kind", record.kind),
            ("released", record.released),
            ("published", record.published),
            ("revision", record.revision),
            ("cover", record.cover_cid or "none"),
            ("credits", credits or "none"),
            ("description", document.get("description", "")),
            ("upc", document.get("upc", "")),
            ("terms", "the node's" if "terms" not in document else document["terms"]["license"]),
            ("withdrawn", record.withdrawn_at or "no"),
        ]
    )
    several = len({entry["disc"] for entry in document["tracks"]}) > 1
    for entry in document["tracks"]:
        place = f"{entry['disc']}-{entry['number']:02d}" if several else f"{entry['number']:>2}"
        print(f"  {place}  {entry['id'][9:17]}  r{entry['revision']}  {titles[entry['id']]}")


async def cmd_release_edit(args: argparse.Namespace) -> int:
    choices = release_choices(args)
    async with open_node(data_dir(args)) as node:
        if args.order:
            record = await node.catalog.find_release(args.id)
            choices = replace(choices, places=_places(args.order, record.document["tracks"]))
        release = await ReleasePublisher(node).edit_release(args.id, choices)
        await pin_briefly(node)
    if args.json:
        print_json(release)
    else:
        print(f"{release['id']}  revision {release['revision']}  {release['title']}")
    return 0


async def cmd_release_withdraw(args: argparse.Namespace) -> int:
    async with open_node(data_dir(args)) as node:
        record, tracks = await ReleasePublisher(node).withdraw_release(
            args.id, keep_tracks=args.keep_tracks
        )
        await pin_briefly(node)
    print(f"{record.id}  withdrawn at {record.withdrawn_at}, with {len(tracks)} track(s)")
    return 0


def add_release_options(parser: argparse.ArgumentParser, *, edit: bool = False) -> None:
    """The release options of `add` (and, with `edit`, of `release edit`)."""
    parser.add_argument(
        "--kind",
        metavar="{" + ",".join(RELEASE_KINDS) + "}",
        help="the kind of release (default: single for one track, ep for up to 6 tracks under"
        " 30 minutes, album otherwise)",
    )
    parser.add_argument(
        "--released", metavar="YYYY-MM-DD", help="release date (default: the date tags, else today)"
    )
    parser.add_argument(
        "--credit",
        action="append",
        metavar="ROLE=NAME",
        help="a credit, as producer=Ada Example; repeat for more"
        + ("; replaces the release's credits" if edit else ""),
    )
    parser.add_argument("--description", help="a few words about the release")
    parser.add_argument("--upc", help="the release's UPC or EAN barcode")
    if edit:
        parser.add_argument(
            "--no-credits", action="store_true", help="remove the release's credits"
        )
        return
    parser.add_argument(
        "--cover",
        metavar="IMAGE",
        help="the release's cover (default: cover.jpg, folder.jpg or front.* in the folder,"
        " else the first picture in a track)",
    )
    parser.add_argument(
        "--loose",
        action="store_true",
        help="publish several files as loose tracks, not as one release",
    )


def register(commands: Subcommands) -> None:
    """Add `release list|show|edit|withdraw` to `stave`."""
    release = add_command(
        commands, "release", _no_subcommand, "list, show, edit and withdraw releases"
    )
    sub = release.add_subparsers(dest="release_command", required=True, metavar="COMMAND")
    listing = add_command(sub, "list", cmd_release_list, "list releases, newest first")
    listing.add_argument("--all", action="store_true", help="withdrawn releases too")
    listing.add_argument("--json", action="store_true")
    show = add_command(sub, "show", cmd_release_show, "show one release and its tracks")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true")
    edit = add_command(sub, "edit", cmd_release_edit, "publish a new revision of a release")
    edit.add_argument("id", metavar="ID")
    edit.add_argument("--title", help="the release's title")
    edit.add_argument(
        "--order", metavar="N,N,…", help="a new play order by the tracks' places now, as 2,1,3"
    )
    add_release_options(edit, edit=True)
    edit.add_argument("--json", action="store_true", help="print the signed release")
    withdraw = add_command(
        sub, "withdraw", cmd_release_withdraw, "withdraw a release and its tracks from the feed"
    )
    withdraw.add_argument("id", metavar="ID")
    withdraw.add_argument(
        "--keep-tracks", action="store_true", help="keep its tracks published as loose tracks"
    )


async def _no_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("release: give a command: list, show, edit or withdraw")

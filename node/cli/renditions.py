"""Listening renditions from the command line: `renditions make`."""

from __future__ import annotations

import argparse
import sys

from node.cli.common import Subcommands, add_command, data_dir, pin_briefly
from node.datadir import open_node
from node.publish import Publisher
from node.renditions import Progress, make_catalog_renditions


async def cmd_renditions_make(args: argparse.Namespace) -> int:
    async with open_node(data_dir(args)) as node:

        def progress(at: Progress) -> None:
            print(
                f"renditions: {at.done + 1}/{at.total} {at.track.title}",
                file=sys.stderr,
                flush=True,
            )

        revised = await make_catalog_renditions(node, Publisher(node), on_track=progress)
        if revised:
            await pin_briefly(node)
    if revised:
        print(f"Made the renditions of {revised} track(s), each in its next manifest revision")
    else:
        print("Every track has its renditions already")
    return 0


def register(commands: Subcommands) -> None:
    renditions = commands.add_parser(
        "renditions",
        help="listening renditions: the small copies phones stream",
        description="Listening renditions (media.renditions): the small copies phones stream.",
    )
    sub = renditions.add_subparsers(dest="renditions_command", required=True, metavar="COMMAND")
    add_command(
        sub,
        "make",
        cmd_renditions_make,
        "make the renditions every current track lacks, each track in its next manifest"
        " revision and feed; stopped, it goes on where it was when run again",
    )

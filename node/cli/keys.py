"""The node's secrets from the command line: the admin API token (`admin-token`) and the
artist's key (`key rotate`)."""

from __future__ import annotations

import argparse
import sys

from node.cli.common import Subcommands, add_command, data_dir, pin_briefly
from node.datadir import DataDir, open_node

ROTATE_DESCRIPTION = (
    "Replace the artist's key with a new one (the node must not be running). The old"
    " key signs a statement naming the new did, served at"
    " /.well-known/stave-rotation.json, so followers accept the new key; every current"
    " track and the next feed are signed again by the new key. The old key is kept as"
    " key.old-N.pem. Run it again to finish a rotation that was interrupted."
)


async def cmd_admin_token(args: argparse.Namespace) -> int:
    data = DataDir(data_dir(args))
    data.load_config()
    print(data.write_admin_token() if args.rotate else data.admin_token())
    return 0


async def cmd_key_rotate(args: argparse.Namespace) -> int:
    from node.keys import rotate_key
    from node.rotation import ROTATION_PATH

    root = data_dir(args)
    result = await rotate_key(root)
    async with open_node(root) as node:
        await pin_briefly(node)
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


def register(commands: Subcommands) -> None:
    """Add `admin-token` and `key` (with `key rotate`) to `stave`."""
    token = add_command(commands, "admin-token", cmd_admin_token, "print the admin API token")
    token.add_argument("--rotate", action="store_true", help="replace it with a new one")
    key = commands.add_parser(
        "key", help="manage the artist's key", description="manage the artist's key"
    )
    key_commands = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    rotate = key_commands.add_parser(
        "rotate",
        help="replace the artist's key; the old key signs a statement naming the new one",
        description=ROTATE_DESCRIPTION,
    )
    rotate.set_defaults(handler=cmd_key_rotate)

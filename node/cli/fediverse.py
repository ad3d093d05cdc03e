"""The artist's fediverse audience from the command line: `stave fediverse followers`,
`remove ACCT|ACTOR`, `block DOMAIN`, `unblock DOMAIN` and `blocked`."""

from __future__ import annotations

import argparse
import sys

from node.catalog import open_catalog
from node.cli.common import Subcommands, add_command, data_dir, print_json
from node.datadir import DataDir


async def cmd_followers(args: argparse.Namespace) -> int:
    from node.fediverse.followers import follower_json

    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        followers = [follower_json(f) for f in await catalog.fediverse_followers()]
    if args.json:
        print_json(followers)
        return 0
    if not followers:
        print("No fediverse followers yet.", file=sys.stderr)
    for f in followers:
        print(f"{f['acct'] or f['actor']}  {f['domain']}  since {f['since']}")
    return 0


async def cmd_remove(args: argparse.Namespace) -> int:
    from node.fediverse.followers import remove_follower

    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        follower = await remove_follower(catalog, args.follower)
    print(f"Removed {follower.acct or follower.actor}")
    return 0


async def cmd_block(args: argparse.Namespace) -> int:
    from node.fediverse.followers import block_domain, normalize_domain

    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        removed = await block_domain(catalog, args.domain)
    print(f"Blocked {normalize_domain(args.domain)}: {removed} follower(s) removed")
    return 0


async def cmd_unblock(args: argparse.Namespace) -> int:
    from node.fediverse.followers import unblock_domain

    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        domain = await unblock_domain(catalog, args.domain)
    print(f"Unblocked {domain}")
    return 0


async def cmd_blocked(args: argparse.Namespace) -> int:
    async with open_catalog(DataDir(data_dir(args)).catalog_path) as catalog:
        domains = await catalog.blocked_domains()
    if args.json:
        print_json(domains)
        return 0
    if not domains:
        print("No blocked domains.", file=sys.stderr)
    for domain in domains:
        print(domain)
    return 0


def register(commands: Subcommands) -> None:
    """Add `stave fediverse` and its subcommands to `stave`."""
    fediverse = commands.add_parser(
        "fediverse",
        help="see and remove fediverse followers, block domains",
        description="The artist's followers on Mastodon and other ActivityPub servers.",
    )
    area = fediverse.add_subparsers(dest="fediverse_command", required=True, metavar="COMMAND")
    followers = add_command(area, "followers", cmd_followers, "list the fediverse followers")
    followers.add_argument("--json", action="store_true")
    remove = add_command(area, "remove", cmd_remove, "remove a follower")
    remove.add_argument("follower", metavar="ACCT|ACTOR-URL", help="user@host or the actor's id")
    block = add_command(
        area, "block", cmd_block, "block a domain: its followers are removed, its requests refused"
    )
    block.add_argument("domain", metavar="DOMAIN")
    unblock = add_command(area, "unblock", cmd_unblock, "lift a domain's block")
    unblock.add_argument("domain", metavar="DOMAIN")
    blocked = add_command(area, "blocked", cmd_blocked, "list the blocked domains")
    blocked.add_argument("--json", action="store_true")

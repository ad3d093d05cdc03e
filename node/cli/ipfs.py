"""IPFS from the command line: `status` (the backend, the pin queue, the IPNS name), `pin`,
and `verify ipns://NAME`."""

from __future__ import annotations

import argparse
import sys

from node.cli.common import (
    EXIT_INVALID,
    Subcommands,
    add_command,
    data_dir,
    print_json,
    print_rows,
)
from node.datadir import open_node
from node.errors import UsageError


async def cmd_status(args: argparse.Namespace) -> int:
    from node.pinning import status

    async with open_node(data_dir(args)) as node:
        found = await status(node)
    if args.json:
        print_json(found.to_json())
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
    print_rows(rows)
    return 0


async def cmd_pin(args: argparse.Namespace) -> int:
    from node.pinning import pin_now

    async with open_node(data_dir(args)) as node:
        queue = await pin_now(node, retry_failed=args.retry_failed)
    if queue.left:
        print(f"stave: Kubo: {queue.notice()}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{queue.pinned} pinned, nothing pending")
    return 0


async def verify_ipns_name(args: argparse.Namespace) -> int:
    """`stave verify ipns://NAME`: the feed the name points to, checked against its signer,
    through this node's Kubo when there is a node, else through the default Kubo API."""
    from node.verify import verify_ipns_at

    name = args.path.removeprefix("ipns://").strip("/")
    if not name or "/" in name:
        raise UsageError(f"{args.path}: give ipns://NAME, the name alone")
    verdict = await verify_ipns_at(data_dir(args), name)
    if args.json:
        print_json(verdict.to_json())
    else:
        state = "valid" if verdict.valid else "INVALID"
        print(f"ipns://{name}: {state}: {verdict.reason}")
    return 0 if verdict.valid else EXIT_INVALID


def register(commands: Subcommands) -> None:
    """Add `status` and `pin` to `stave`."""
    status = add_command(
        commands, "status", cmd_status, "show the IPFS backend, pins pending and the IPNS name"
    )
    status.add_argument("--json", action="store_true")
    pin = add_command(
        commands, "pin", cmd_pin, "pin everything queued to Kubo now and publish the IPNS name"
    )
    pin.add_argument("--retry-failed", action="store_true", help="try refused pins again")

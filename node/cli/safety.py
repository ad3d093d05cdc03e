"""Keeping the node safe from the command line: `export` and `import` (backups), `check`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from node.cli.common import EXIT_INVALID, Subcommands, add_command, data_dir, print_json
from node.datadir import open_node
from node.errors import UsageError

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
    summary = await export_node(data_dir(args), target, key_passphrase=passphrase)
    print(f"Exported {describe(summary)}", file=sys.stderr if to_stdout else sys.stdout)
    return 0


async def cmd_import(args: argparse.Namespace) -> int:
    from node.backup import describe, import_node

    source = sys.stdin.buffer if args.file == "-" else Path(args.file)
    root = data_dir(args)
    summary = await import_node(
        source, root, archive_passphrase=lambda: _archive_passphrase(confirm=False)
    )
    print(f"Restored {describe(summary)} into {root}")
    return 0


async def cmd_check(args: argparse.Namespace) -> int:
    from node.check import check_node

    async with open_node(data_dir(args), exclusive=args.repair) as node:
        report = await check_node(node, repair=args.repair)
    if args.json:
        print_json(report.to_json())
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


def register(commands: Subcommands) -> None:
    """Add `export`, `import` and `check` to `stave`."""
    export = add_command(
        commands,
        "export",
        cmd_export,
        "write a backup archive: content, catalog, feed chain, config",
    )
    export.add_argument("file", metavar="FILE", help="the archive to write (- for stdout)")
    export.add_argument(
        "--with-key",
        action="store_true",
        help=f"include the artist's key, encrypted with a passphrase (${EXPORT_PASSPHRASE_ENV}"
        " or asked on the terminal)",
    )
    restore = add_command(
        commands, "import", cmd_import, "restore a backup archive into a new, empty data directory"
    )
    restore.add_argument("file", metavar="FILE", help="the archive to read (- for stdin)")
    check = add_command(
        commands,
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

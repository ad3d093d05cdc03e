"""The `stave` command. Each command parses, calls one library function, and prints.

Errors a user can cause print one line to stderr and exit 2; `verify` exits 1 for an invalid
file. Secrets come from the environment (`STAVE_KEY_PASSPHRASE`), never from flags.

This package holds the parser, the global options and the errors at the edge; each area's
commands live in a module of their own (`publishing`, `releases`, `renditions`, `serving`,
`following`, `fediverse`, `keys`, `ipfs`, `safety`, `terms`) that adds them to the parser with
`register`, and what they share is in `common`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from node import __version__
from node.cli import (
    fediverse,
    following,
    ipfs,
    keys,
    publishing,
    releases,
    renditions,
    safety,
    serving,
    terms,
)
from node.cli.common import EXIT_ERROR
from node.errors import StaveError


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """The one place coroutines are run from the command line."""
    return asyncio.run(coroutine)


def build_parser() -> argparse.ArgumentParser:
    """The `stave` parser: the global options, then every area's commands in help order."""
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
    areas = (
        publishing,
        releases,
        terms,
        renditions,
        serving,
        following,
        fediverse,
        keys,
        ipfs,
        safety,
    )
    for area in areas:
        area.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `stave` with `argv` (default: the process's arguments); returns the exit code."""
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

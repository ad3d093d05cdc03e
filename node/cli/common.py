"""What every area of the `stave` command shares: exit codes, adding a subcommand, the data
directory option, printing JSON and labelled rows, and the brief wait for Kubo after a publish.

Area modules import this module directly, never `node.cli`, so the package imports them and
not the other way round.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeAlias

from node.datadir import Node, default_data_dir

EXIT_ERROR = 2
EXIT_INVALID = 1

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_command(
    commands: Subcommands, name: str, handler: Command, help: str
) -> argparse.ArgumentParser:
    """Add the subcommand `name`, run by `handler`; its one-line help is also its description."""
    sub = commands.add_parser(name, help=help, description=help)
    sub.set_defaults(handler=handler)
    return sub


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory `--data-dir` names, else the default one."""
    return Path(args.data_dir) if args.data_dir else default_data_dir()


def print_json(value: Any) -> None:
    """Print `value` as indented JSON, non-ASCII kept as it is."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_rows(rows: Iterable[tuple[str, object]]) -> None:
    """Print label: value rows, the labels right-aligned."""
    for label, value in rows:
        print(f"{label:>15}: {value}")


async def pin_briefly(node: Node) -> None:
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

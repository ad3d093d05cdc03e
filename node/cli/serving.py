"""Serving the node from the command line: `run`."""

from __future__ import annotations

import argparse

from node.cli.common import Subcommands, add_command, data_dir
from node.datadir import DataDir
from node.errors import UsageError


async def cmd_run(args: argparse.Namespace) -> int:
    from node.web.runner import serve

    root = data_dir(args)
    config = DataDir(root).load_config()
    host = args.host or config["server.host"]
    port = config["server.port"] if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is not a port number from 0 to 65535")
    await serve(root, host, port, shutdown_timeout=config["server.shutdown_timeout"])
    return 0


def register(commands: Subcommands) -> None:
    """Add `run` to `stave`."""
    serve = add_command(
        commands, "run", cmd_run, "serve the node on the web until SIGTERM or Ctrl-C"
    )
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument(
        "--port", type=int, help="port to listen on, 0 for any free one (default: server.port)"
    )

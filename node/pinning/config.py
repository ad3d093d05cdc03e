"""Which Kubo a node pins to, and how: the backend switch, the client, its authorization."""

from __future__ import annotations

import os
from pathlib import Path

from node.datadir import Node
from node.errors import ConfigError
from node.kubo import KuboClient

AUTHORIZATION_ENV = "STAVE_KUBO_AUTHORIZATION"
# How long Kubo may stay silent during one call (a large add answers only at the end).
KUBO_TIMEOUT_SECONDS = 300.0


def uses_kubo(node: Node) -> bool:
    """Whether this node pins to Kubo (`[ipfs] backend = "kubo"`)."""
    return bool(node.config["ipfs.backend"] == "kubo")


def publishes_ipns(node: Node) -> bool:
    """Whether this node publishes its feed under the artist's IPNS name."""
    return uses_kubo(node) and bool(node.config["ipfs.ipns"])


def ipns_key_name(did: str) -> str:
    """The name the artist's key has in Kubo's keystore."""
    return "stave-" + did.removeprefix("did:key:")


def kubo_authorization(node: Node) -> str | None:
    """The `Authorization` header value for Kubo's API: `$STAVE_KUBO_AUTHORIZATION`, else the
    contents of `ipfs.authorization_file` (relative to the data directory), else None."""
    if secret := os.environ.get(AUTHORIZATION_ENV, "").strip():
        return secret
    configured: str = node.config["ipfs.authorization_file"]
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_absolute():
        path = node.data.root / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError(f"ipfs.authorization_file {path}: cannot read it ({reason})") from e
    if not secret:
        raise ConfigError(f"ipfs.authorization_file {path}: the file is empty")
    return secret


def kubo_client(
    node: Node, *, timeout: float = KUBO_TIMEOUT_SECONDS, connect_timeout: float = 5.0
) -> KuboClient:
    """A client for the node's Kubo (`ipfs.api`) with its authorization; use `async with`."""
    return KuboClient(
        node.config["ipfs.api"],
        kubo_authorization(node),
        timeout=timeout,
        connect_timeout=connect_timeout,
    )

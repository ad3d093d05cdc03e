"""Finding a node from a URL: its signed `/.well-known/stave` document (PROTOCOL §7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from node.errors import FederationError, UsageError, VerificationError
from node.federation.http import OutboundClient
from node.feed import NODE_TYPE, parse_json
from node.signing import verify_document

WELL_KNOWN_PATH = "/.well-known/stave"
MAX_NODE_DOCUMENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class NodeDocument:
    """What a node says about itself, signed by its artist's key."""

    artist: str
    name: str
    base_url: str
    feed_url: str
    hub_url: str | None
    document: dict[str, Any]


def node_urls(url: str) -> tuple[str, str]:
    """The base URL and the `/.well-known/stave` URL for what a user typed.

    Accepts a node's base URL, its feed URL (`…/feed.json`) or the well-known URL itself.
    """
    text = url.strip()
    if "://" not in text:
        raise UsageError(f"{url}: give the node's URL, e.g. https://ada.example/")
    parsed = URL(text).with_query(None).with_fragment(None)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"{url}: not an http(s) URL of a node")
    path = parsed.path
    for suffix in (WELL_KNOWN_PATH, "/feed.json"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    base = parsed.with_path(path.rstrip("/") + "/")
    return str(base), str(base.with_path(base.path.rstrip("/") + WELL_KNOWN_PATH))


def check_node_document(document: Any, base_url: str) -> NodeDocument:
    """The node document if it is a StaveNode signed by the artist it names; else raise why."""
    if not isinstance(document, dict) or document.get("type") != NODE_TYPE:
        raise VerificationError(f"node document is not a {NODE_TYPE}")
    artist = document.get("artist")
    if not isinstance(artist, str):
        raise VerificationError("node document names no artist")
    verify_document(document, artist)
    name, feed, hub = document.get("name"), document.get("feed"), document.get("hub")
    if not isinstance(name, str):
        raise VerificationError("node document has no name")
    if not isinstance(feed, str) or not _is_http_url(feed):
        raise VerificationError("node document has no http(s) feed URL")
    if hub is not None and not _is_http_url(hub):
        raise VerificationError("node document's hub is not an http(s) URL")
    return NodeDocument(
        artist=artist,
        name=name,
        base_url=base_url,
        feed_url=feed,
        hub_url=hub,
        document=document,
    )


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = URL(value)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


async def fetch_node_document(client: OutboundClient, url: str) -> NodeDocument:
    """Read and check the node document of the node at `url` (base, feed or well-known URL)."""
    base, well_known = node_urls(url)
    fetched = await client.get(
        well_known, max_bytes=MAX_NODE_DOCUMENT_BYTES, headers={"Accept": "application/json"}
    )
    if fetched.status != 200:
        raise FederationError(f"{well_known}: HTTP {fetched.status}, not a Stave node")
    try:
        return check_node_document(parse_json(fetched.body, "node document"), base)
    except VerificationError as e:
        raise VerificationError(f"{well_known}: {e}") from e

"""The artist's fediverse followers and blocked domains, as `stave fediverse` manages them:
list, remove one (by `acct` or actor id), block or unblock a domain.

Removing a follower, or blocking its domain, also gives up what was still queued for its
inbox unless another follower receives at the same inbox.
"""

from __future__ import annotations

import re
from typing import Any

from node.catalog import Catalog, CatalogWrite
from node.catalog.fediverse import FediverseFollower, FediverseReads
from node.errors import UsageError, excerpt

# A DNS name or an IP address literal, as blocks name them (no scheme, path or port).
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def follower_json(follower: FediverseFollower) -> dict[str, Any]:
    """A follower as `stave fediverse followers --json` prints it."""
    return {
        "actor": follower.actor,
        "acct": follower.acct,
        "domain": follower.domain,
        "inbox": follower.inbox,
        "sharedInbox": follower.shared_inbox,
        "since": follower.followed_at,
    }


def normalize_domain(domain: str) -> str:
    """`domain` lowercased, without a trailing dot; UsageError unless it is a plain host name."""
    name = domain.strip().lower().rstrip(".")
    if not _DOMAIN.match(name):
        raise UsageError(f"{excerpt(domain)} is not a domain name (give it as example.social)")
    return name


async def find_follower(catalog: FediverseReads, who: str) -> FediverseFollower:
    """The follower `who` names: its actor id, or its `acct` (`user@host`, with or without a
    leading `@`); UsageError when no follower matches."""
    by_actor = await catalog.fediverse_follower(who)
    if by_actor is not None:
        return by_actor
    wanted = who.strip().removeprefix("@").lower()
    for follower in await catalog.fediverse_followers():
        if follower.acct is not None and follower.acct.lower() == wanted:
            return follower
    raise UsageError(f"{excerpt(who)} is not a follower")


async def _drop_unused_inboxes(tx: CatalogWrite, gone: list[FediverseFollower]) -> None:
    still_used = set(await tx.follower_inboxes())
    unused = [f.delivery_inbox for f in gone if f.delivery_inbox not in still_used]
    unused += [f.inbox for f in gone if f.inbox not in still_used]
    if unused:
        await tx.drop_deliveries_to(unused)


async def remove_follower(catalog: Catalog, who: str) -> FediverseFollower:
    """Remove the follower `who` names (see `find_follower`) and return it."""
    async with catalog.transaction() as tx:
        follower = await find_follower(tx, who)
        await tx.remove_fediverse_follower(follower.actor)
        await _drop_unused_inboxes(tx, [follower])
    return follower


def _under(follower: FediverseFollower, domain: str) -> bool:
    return follower.domain == domain or follower.domain.endswith("." + domain)


async def block_domain(catalog: Catalog, domain: str) -> int:
    """Block `domain` and every domain under it: its followers are removed and its requests
    refused from now on. Returns how many followers were removed."""
    name = normalize_domain(domain)
    async with catalog.transaction() as tx:
        gone = [f for f in await tx.fediverse_followers() if _under(f, name)]
        removed = await tx.block_domain(name)
        await _drop_unused_inboxes(tx, gone)
    return removed


async def unblock_domain(catalog: Catalog, domain: str) -> str:
    """Lift the block on `domain`; UsageError when it was not blocked."""
    name = normalize_domain(domain)
    async with catalog.transaction() as tx:
        if not await tx.unblock_domain(name):
            raise UsageError(f"{name} is not blocked")
    return name

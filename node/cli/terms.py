"""The artist's terms from the command line: `terms show`, `terms offer` and
`terms withdraw-offer`, for the node's default terms or one track's (`--track`).

The node's offers live in config.toml (`terms.*`, `offers.*`), rewritten through the settings
table, and go out in the next signed feed; a track's go into its next manifest revision.
"""

from __future__ import annotations

import argparse

from node.cli.common import Subcommands, add_command, data_dir, pin_briefly, print_json
from node.datadir import open_node
from node.errors import UsageError
from node.offers import PER_VALUES, Offer, Price, check_contact, offer_url
from node.publish import Publisher, TrackChoices
from node.settings import save_config
from node.terms import DATA_MINING_USES, Terms, offer_settings


async def cmd_terms_show(args: argparse.Namespace) -> int:
    async with open_node(data_dir(args)) as node:
        if args.track:
            track = await node.catalog.find_track(args.track)
            terms = Terms.from_json(track.manifest["terms"])
        else:
            terms = Publisher(node).default_terms()
    if args.json:
        print_json(terms.to_json())
        return 0
    print(terms.in_words())
    for use in DATA_MINING_USES:
        offer = terms.offer(use)
        print(f"\n{use}: {terms.data_mining[use]}")
        if offer is not None:
            print("  " + "\n  ".join(offer.in_words(use)))
    return 0


async def cmd_terms_offer(args: argparse.Namespace) -> int:
    price = Price.parse(args.price, args.per) if args.price else None
    if args.per != "track" and price is None:
        raise UsageError("--per: give it with --price")
    return await _set_offer(args, price)


async def cmd_terms_withdraw_offer(args: argparse.Namespace) -> int:
    return await _set_offer(args, None, withdraw=True)


async def _set_offer(args: argparse.Namespace, price: Price | None, withdraw: bool = False) -> int:
    async with open_node(data_dir(args)) as node:
        track_id = (await node.catalog.find_track(args.track)).id if args.track else None

        def offer() -> Offer | None:
            if withdraw:
                return None
            return Offer(
                contact=check_contact(args.contact),
                price=price,
                attribution=args.attribution,
                conditions=args.conditions,
                url=offer_url(node.base_url, args.use, track_id),
            )

        publisher = Publisher(node)
        if track_id is not None:
            manifest = await publisher.edit(track_id, TrackChoices(offer=(args.use, offer())))
            terms = Terms.from_json(manifest["terms"])
            print(f"{manifest['id']}  revision {manifest['revision']}  {manifest['audio']['cid']}")
        else:
            config = node.config.replace(**offer_settings(args.use, offer()))
            terms = Terms.from_config(config)  # refuses a combination that cannot be signed
            save_config(node.data.config_path, config)
            node.config = config
            feed = await publisher.publish_feed()
            print(f"feed sequence {feed.sequence}  {feed.cid}")
        await pin_briefly(node)
    if args.json:
        print_json(terms.to_json())
    return 0


def register(commands: Subcommands) -> None:
    """Add `terms show|offer|withdraw-offer` to `stave`."""
    terms = add_command(commands, "terms", _no_subcommand, "show the terms; offer AI uses")
    sub = terms.add_subparsers(dest="terms_command", required=True, metavar="COMMAND")
    show = add_command(sub, "show", cmd_terms_show, "show the node's (or a track's) terms")
    show.add_argument("--track", metavar="ID", help="a track's own terms")
    show.add_argument("--json", action="store_true")
    offer = add_command(
        sub, "offer", cmd_terms_offer, "offer a licence for one use: it becomes constrained"
    )
    offer.add_argument("use", metavar="USE", choices=DATA_MINING_USES, help=_uses())
    offer.add_argument("--contact", required=True, help="mailto: address or https URL to ask at")
    offer.add_argument("--price", metavar="AMOUNT CURRENCY", help='e.g. "500 EUR" (ISO 4217)')
    offer.add_argument("--per", choices=PER_VALUES, default="track", help="what the price is for")
    offer.add_argument("--attribution", default="", help="the credit words a licensee must show")
    offer.add_argument("--conditions", default="", help="further conditions, in plain words")
    offer.add_argument("--track", metavar="ID", help="offer for one track, not the node")
    offer.add_argument("--json", action="store_true", help="print the terms now signed")
    withdraw = add_command(
        sub, "withdraw-offer", cmd_terms_withdraw_offer, "withdraw an offer: back to notAllowed"
    )
    withdraw.add_argument("use", metavar="USE", choices=DATA_MINING_USES, help=_uses())
    withdraw.add_argument("--track", metavar="ID", help="one track's offer, not the node's")
    withdraw.add_argument("--json", action="store_true", help="print the terms now signed")


def _uses() -> str:
    return "one of " + ", ".join(DATA_MINING_USES)


async def _no_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("terms: give a command: show, offer or withdraw-offer")

"""The artist's terms (PROTOCOL §4): licence, copyright, TDMRep reservation, AI-use choices.

Consent is opt-in: unless the artist says otherwise every data-mining use is `notAllowed` and
`tdmReservation` is 1. A use is `constrained` exactly when the terms carry the artist's offer
for it (node/offers.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from node.errors import ConfigError, UsageError, VerificationError
from node.offers import OFFER_PARTS, USE_WORDS, Offer, Price, offer_url
from node.settings import DATA_MINING_VALUES, OFFER_KEYS, Config

DATA_MINING_USES = ("aiTraining", "aiGenerativeTraining", "aiInference", "dataMining")
ALL_RIGHTS_RESERVED = "ARR"
_SPDX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_COPYRIGHT = re.compile(r"^\d{4} \S.*$")


# The config key of each use, as in `terms.ai_training` and `offers.ai_training_price`.
USE_KEYS = dict(zip(DATA_MINING_USES, OFFER_KEYS, strict=True))


def _opt_in() -> dict[str, str]:
    return dict.fromkeys(DATA_MINING_USES, "notAllowed")


def check_license(value: str, option: str = "--license") -> str:
    """An SPDX id, `ARR` or an http(s) URL; UsageError naming `option` otherwise."""
    value = value.strip()
    if value == ALL_RIGHTS_RESERVED or _SPDX_ID.match(value):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    raise UsageError(f"{option}: {value!r} is not an SPDX licence id, ARR, or an http(s) URL")


def check_copyright(value: str, option: str = "--copyright") -> str:
    value = value.strip()
    if not _COPYRIGHT.match(value):
        raise UsageError(f"{option}: {value!r} must be a year, a space and the holder")
    return value


def check_use(value: str, option: str = "--ai-training") -> str:
    if value not in DATA_MINING_VALUES:
        choices = ", ".join(DATA_MINING_VALUES)
        raise UsageError(f"{option}: {value!r} is not one of {choices}")
    return value


def license_url_for(license_id: str) -> str:
    """The canonical URL of a licence: itself for a URL, the CC deed or SPDX page for an id."""
    if license_id == ALL_RIGHTS_RESERVED:
        return ""
    if license_id.startswith(("http://", "https://")):
        return license_id
    match = re.match(r"^CC-(BY(?:-NC)?(?:-ND|-SA)?)-(\d\.\d)$", license_id, re.IGNORECASE)
    if match:
        kind, version = match.group(1).lower(), match.group(2)
        return f"https://creativecommons.org/licenses/{kind}/{version}/"
    if license_id.upper() == "CC0-1.0":
        return "https://creativecommons.org/publicdomain/zero/1.0/"
    return f"https://spdx.org/licenses/{license_id}.html"


def _no_offer(use: str) -> UsageError:
    return UsageError(
        f"{use} is constrained but has no offer; set one with `stave terms offer {use}`"
    )


def _check_offers(data_mining: dict[str, str], offers: dict[str, Offer]) -> None:
    """Every offer is for a use that is `constrained`. The converse (a `constrained` use has an
    offer) is required only of what this node signs (`from_config`, `with_choices`): PROTOCOL
    §4 allows `constrained` alone, so signed terms from peers, and this node's own tracks from
    before offers, are read as they are."""
    for use in offers:
        if use not in DATA_MINING_USES:
            raise UsageError(f"offers: {use!r} is not one of {', '.join(DATA_MINING_USES)}")
        if data_mining[use] != "constrained":
            raise UsageError(f"offers.{use}: an offer needs {use} set to constrained")


def _offer_from_config(config: Config, use: str) -> Offer | None:
    key = "offers." + USE_KEYS[use]
    values = {part: config[f"{key}_{part}"] for part in OFFER_PARTS}
    if not any(values[part] for part in OFFER_PARTS if part != "per"):
        return None
    try:
        price = None
        if values["price"]:
            price = Price.parse(values["price"], values["per"] or "track", f"{key}_price")
        return Offer(
            contact=values["contact"],
            price=price,
            attribution=values["attribution"],
            conditions=values["conditions"],
            url=offer_url(config["node.url"].rstrip("/") + "/", use),
        )
    except UsageError as e:
        raise ConfigError(f"config key {key}_*: {e}") from e


def offer_settings(use: str, offer: Offer | None) -> dict[str, Any]:
    """The `Config.replace` changes that make `offer` the node's offer for `use`, or (None)
    withdraw it: the use back to `notAllowed` and its offer settings to their defaults."""
    if use not in DATA_MINING_USES:
        raise UsageError(f"{use!r} is not one of {', '.join(DATA_MINING_USES)}")
    key = USE_KEYS[use]
    price = offer.price if offer is not None else None
    values = {
        "price": f"{price.amount} {price.currency}" if price else "",
        "per": price.per if price else "track",
        "attribution": offer.attribution if offer else "",
        "contact": offer.contact if offer else "",
        "conditions": offer.conditions if offer else "",
    }
    changes: dict[str, Any] = {f"offers__{key}_{part}": values[part] for part in OFFER_PARTS}
    changes[f"terms__{key}"] = "notAllowed" if offer is None else "constrained"
    return changes


@dataclass(frozen=True)
class Terms:
    """One set of terms, as carried by a manifest or a feed."""

    license: str = ALL_RIGHTS_RESERVED
    license_url: str = ""
    copyright: str = ""
    tdm_reservation: int = 1
    tdm_policy: str = ""
    data_mining: dict[str, str] = field(default_factory=_opt_in)
    offers: dict[str, Offer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_offers(self.data_mining, self.offers)

    def offer(self, use: str) -> Offer | None:
        """The artist's offer for `use`, or None: nothing is offered unless the artist set it."""
        return self.offers.get(use)

    @classmethod
    def from_config(cls, config: Config) -> Terms:
        license_id = check_license(config["terms.license"], "config key terms.license")
        copyright_line = config["terms.copyright"]
        if copyright_line:
            check_copyright(copyright_line, "config key terms.copyright")
        offers = {
            use: offer
            for use in DATA_MINING_USES
            if (offer := _offer_from_config(config, use)) is not None
        }
        for use in DATA_MINING_USES:
            if config["terms." + USE_KEYS[use]] == "constrained" and use not in offers:
                raise ConfigError(f"config keys terms.* and offers.*: {_no_offer(use)}")
        try:
            return cls(
                license=license_id,
                license_url=config["terms.license_url"] or license_url_for(license_id),
                copyright=copyright_line,
                tdm_reservation=config["terms.tdm_reservation"],
                tdm_policy=config["terms.tdm_policy"],
                data_mining={use: config["terms." + USE_KEYS[use]] for use in DATA_MINING_USES},
                offers=offers,
            )
        except UsageError as e:
            raise ConfigError(f"config keys terms.* and offers.*: {e}") from e

    def with_choices(
        self,
        *,
        license: str | None = None,
        copyright: str | None = None,
        ai_training: str | None = None,
        offer: tuple[str, Offer | None] | None = None,
    ) -> Terms:
        """These terms with a track's own choices applied and validated. `offer` is a use and
        its new offer (the use becomes `constrained`) or None (withdrawn: `notAllowed`)."""
        terms = self
        if license is not None:
            license_id = check_license(license)
            terms = replace(terms, license=license_id, license_url=license_url_for(license_id))
        if copyright is not None:
            terms = replace(terms, copyright=check_copyright(copyright))
        if ai_training is not None:
            terms = terms._with_use("aiTraining", check_use(ai_training), terms.offer("aiTraining"))
        if offer is not None:
            use, new_offer = offer
            if use not in DATA_MINING_USES:
                raise UsageError(f"{use!r} is not one of {', '.join(DATA_MINING_USES)}")
            value = "notAllowed" if new_offer is None else "constrained"
            terms = terms._with_use(use, value, new_offer)
        return terms

    def _with_use(self, use: str, value: str, offer: Offer | None) -> Terms:
        offers = {u: o for u, o in self.offers.items() if u != use}
        if value == "constrained":
            if offer is None:
                raise _no_offer(use)
            offers[use] = offer
        return replace(self, data_mining=dict(self.data_mining, **{use: value}), offers=offers)

    @property
    def ai_training(self) -> str:
        return self.data_mining["aiTraining"]

    @property
    def reserves_mining(self) -> bool:
        """True when crawlers must be told no (TDMRep reservation or any use not allowed)."""
        return self.tdm_reservation == 1 or any(
            value != "allowed" for value in self.data_mining.values()
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"license": self.license}
        if self.license_url:
            document["licenseUrl"] = self.license_url
        if self.copyright:
            document["copyright"] = self.copyright
        document["tdmReservation"] = self.tdm_reservation
        if self.tdm_policy:
            document["tdmPolicy"] = self.tdm_policy
        document["dataMining"] = dict(self.data_mining)
        if self.offers:
            document["offers"] = {
                use: self.offers[use].to_json() for use in DATA_MINING_USES if use in self.offers
            }
        return document

    @classmethod
    def from_json(cls, document: Any) -> Terms:
        """Terms read from a signed document; VerificationError when malformed."""
        if not isinstance(document, dict):
            raise VerificationError("terms are not a JSON object")
        try:
            uses = document.get("dataMining", {})
            if not isinstance(uses, dict) or any(
                uses.get(use, "notAllowed") not in DATA_MINING_VALUES for use in DATA_MINING_USES
            ):
                raise VerificationError("terms.dataMining has an unknown value")
            offers = document.get("offers", {})
            if not isinstance(offers, dict):
                raise VerificationError("terms.offers is not a JSON object")
            reservation = document.get("tdmReservation", 1)
            if reservation not in (0, 1) or isinstance(reservation, bool):
                raise VerificationError("terms.tdmReservation must be 0 or 1")
            return cls(
                license=str(document["license"]),
                license_url=str(document.get("licenseUrl", "")),
                copyright=str(document.get("copyright", "")),
                tdm_reservation=int(reservation),
                tdm_policy=str(document.get("tdmPolicy", "")),
                data_mining={use: str(uses.get(use, "notAllowed")) for use in DATA_MINING_USES},
                offers={str(use): Offer.from_json(offer) for use, offer in offers.items()},
            )
        except KeyError as e:
            raise VerificationError(f"terms lack {e.args[0]}") from e
        except UsageError as e:
            raise VerificationError(f"terms: {e}") from e

    def license_in_words(self) -> str:
        if self.license == ALL_RIGHTS_RESERVED:
            return "All rights reserved"
        return f"Licensed under {self.license}"

    def in_words(self) -> str:
        """The terms as one plain-English paragraph, for listeners and for the USER frame."""
        sentences = []
        if self.copyright:
            sentences.append(f"© {self.copyright}.")
        sentences.append(self.license_in_words() + ".")
        refused = [USE_WORDS[u] for u, v in self.data_mining.items() if v == "notAllowed"]
        constrained = [USE_WORDS[u] for u, v in self.data_mining.items() if v == "constrained"]
        allowed = [USE_WORDS[u] for u, v in self.data_mining.items() if v == "allowed"]
        if refused:
            sentences.append(
                "Not allowed without the artist's permission: " + ", ".join(refused) + "."
            )
        if constrained:
            sentences.append(
                "Allowed only on the artist's conditions: " + ", ".join(constrained) + "."
            )
        if allowed:
            sentences.append("Allowed by the artist: " + ", ".join(allowed) + ".")
        for use in DATA_MINING_USES:
            if (offer := self.offer(use)) is not None:
                words = USE_WORDS[use][0].upper() + USE_WORDS[use][1:]
                price = f" for {offer.price.in_words()}" if offer.price else ""
                sentences.append(f"{words} is offered{price}: {offer.url or offer.contact}.")
        if self.tdm_reservation == 1:
            sentences.append("Text and data mining rights are reserved (TDMRep).")
        return " ".join(sentences)

"""Offers (docs/protocol-extensions.md, "Offers"): what an artist asks for a use of the music
set to `constrained` — a price in an ISO 4217 currency per track or for the catalog, the credit
words, a contact, conditions — validated, as JSON, and in plain words. node/terms.py carries
them in the terms; nothing is offered unless the artist set it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from node.errors import UsageError

USE_WORDS = {
    "aiTraining": "training AI models",
    "aiGenerativeTraining": "training generative AI models",
    "aiInference": "use as input to AI models",
    "dataMining": "text and data mining",
}
PER_VALUES = ("track", "catalog")
# ISO 4217 active currency codes (fund, metal and test codes left out), as of 2026.
CURRENCIES = frozenset(
    re.findall(
        "[A-Z]{3}",
        """AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
        BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
        ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD
        IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
        MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD
        OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP
        SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD
        UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG""",
    )
)
MAX_CONTACT = 500
MAX_ATTRIBUTION = 300
MAX_CONDITIONS = 2000
MAX_URL = 1000
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The settings of each use's offer: `offers.ai_training_price`, `offers.ai_training_per`, …
OFFER_PARTS = ("price", "per", "attribution", "contact", "conditions")
_PER_WORDS = {"track": "for each track", "catalog": "for the whole catalog"}


def check_amount(value: str, option: str = "--price") -> str:
    """A decimal amount such as `500` or `12.50`, written with at least two decimals."""
    value = value.strip()
    if not _AMOUNT.match(value):
        raise UsageError(f"{option}: {value!r} is not a decimal amount such as 500 or 12.50")
    if "." not in value or len(value.split(".")[1]) < 2:
        return f"{Decimal(value):.2f}"
    return value


def check_currency(value: str, option: str = "--price") -> str:
    if value not in CURRENCIES:
        raise UsageError(f"{option}: {value!r} is not an ISO 4217 currency code such as EUR")
    return value


def _check_text(value: str, option: str, limit: int, *, lines: bool = False) -> str:
    value = value.strip()
    if len(value) > limit:
        raise UsageError(f"{option}: longer than {limit} characters")
    if _CONTROL.search(value.replace("\n", "") if lines else value):
        raise UsageError(f"{option}: must not hold control characters")
    return value


def check_contact(value: str, option: str = "--contact") -> str:
    """A `mailto:` address or an https URL."""
    value = _check_text(value, option, MAX_CONTACT)
    parts = urlsplit(value)
    if parts.scheme == "mailto" and re.fullmatch(r"[^@\s/]+@[^@\s/]+\.[^@\s/]+", parts.path):
        return value
    if parts.scheme == "https" and parts.netloc and " " not in value:
        return value
    raise UsageError(f"{option}: {value!r} is not a mailto: address or an https URL")


def _check_url(value: str, option: str) -> str:
    value = _check_text(value, option, MAX_URL)
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and " " not in value:
        return value
    raise UsageError(f"{option}: {value!r} is not an http(s) URL")


def offer_url(base_url: str, use: str, track_id: str | None = None) -> str:
    """Where the offer is explained: the node's /terms page, at the offer's (or the track's
    offer's) anchor."""
    if track_id is None:
        return f"{base_url}terms#offer-{use}"
    return f"{base_url}terms#{track_anchor(track_id)}-offer-{use}"


def track_anchor(track_id: str) -> str:
    """The /terms page's anchor of a track with terms of its own."""
    return "track-" + track_id.removeprefix("urn:uuid:")


def terms_page_url(base_url: str, track_id: str) -> str:
    """The page a track's files link to when it has no licence URL (WCOP, PROTOCOL §10)."""
    return f"{base_url}terms#{track_anchor(track_id)}"


@dataclass(frozen=True)
class Price:
    amount: str  # a decimal string, never a float
    currency: str  # ISO 4217
    per: str = "track"  # track | catalog

    def __post_init__(self) -> None:
        check_amount(self.amount, "price.amount")
        check_currency(self.currency, "price.currency")
        if self.per not in PER_VALUES:
            raise UsageError(f"price.per: {self.per!r} is not one of {', '.join(PER_VALUES)}")

    @classmethod
    def parse(cls, text: str, per: str = "track", option: str = "--price") -> Price:
        """`500 EUR` (or `EUR 500`) as a price."""
        words = text.split()
        if len(words) == 2 and words[0].isalpha():
            words.reverse()
        if len(words) != 2:
            raise UsageError(f"{option}: {text!r} is not an amount and a currency, e.g. 500 EUR")
        if per not in PER_VALUES:
            raise UsageError(f"--per: {per!r} is not one of {', '.join(PER_VALUES)}")
        return cls(check_amount(words[0], option), check_currency(words[1].upper(), option), per)

    def in_words(self) -> str:
        return f"{self.amount} {self.currency} {_PER_WORDS[self.per]}"


@dataclass(frozen=True)
class Offer:
    """What the artist asks for one use set to `constrained` (docs/protocol-extensions.md)."""

    contact: str
    price: Price | None = None
    attribution: str = ""
    conditions: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact", check_contact(self.contact, "offer.contact"))
        attribution = _check_text(self.attribution, "offer.attribution", MAX_ATTRIBUTION)
        object.__setattr__(self, "attribution", attribution)
        conditions = _check_text(self.conditions, "offer.conditions", MAX_CONDITIONS, lines=True)
        object.__setattr__(self, "conditions", conditions)
        if self.url:
            object.__setattr__(self, "url", _check_url(self.url, "offer.url"))

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.price is not None:
            price = self.price
            document["price"] = {
                "amount": price.amount,
                "currency": price.currency,
                "per": price.per,
            }
        if self.attribution:
            document["attribution"] = self.attribution
        document["contact"] = self.contact
        if self.conditions:
            document["conditions"] = self.conditions
        if self.url:
            document["url"] = self.url
        return document

    @classmethod
    def from_json(cls, document: Any) -> Offer:
        """An offer read from signed terms; UsageError when malformed."""
        if not isinstance(document, dict):
            raise UsageError("offer is not a JSON object")
        price = document.get("price")
        if price is not None:
            if not isinstance(price, dict) or not all(
                isinstance(price.get(k), str) for k in ("amount", "currency", "per")
            ):
                raise UsageError("offer.price needs amount, currency and per as strings")
            price = Price(price["amount"], price["currency"], price["per"])
        texts = {k: document.get(k, "") for k in ("contact", "attribution", "conditions", "url")}
        if not all(isinstance(v, str) for v in texts.values()):
            raise UsageError("offer: contact, attribution, conditions and url must be strings")
        return cls(price=price, **texts)

    def in_words(self, use: str) -> list[str]:
        """The offer as sentences a listener and a lawyer can both read."""
        sentences = [f"The artist offers a licence for {USE_WORDS[use]}."]
        if self.price is None:
            sentences.append("The price is agreed with the artist.")
        else:
            sentences.append(f"Price: {self.price.in_words()}.")
        if self.attribution:
            sentences.append(
                _sentence(f"Attribution is required, in these words: {self.attribution}")
            )
        else:
            sentences.append("No attribution is required.")
        if self.conditions:
            sentences.append(_sentence(f"Conditions: {self.conditions}"))
        sentences.append(f"To accept or ask, contact {self.contact.removeprefix('mailto:')}.")
        sentences.append("Nothing is licensed until the artist grants it in writing.")
        return sentences


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."

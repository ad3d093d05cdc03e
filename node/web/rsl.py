"""`/license.xml`: the artist's terms as an RSL 1.0 document (https://rslstandard.org/rsl).

One `<content>` for the whole node and one for each URL of a track whose terms differ from the
node's (its page and `/ipfs/{cid}` of its audio and listening copies). The CAWG uses map onto
RSL's usage vocabulary (RSL 1.0 §3.4.1): `aiTraining` and `aiGenerativeTraining` to `ai-train`,
`aiInference` to `ai-input`, and `dataMining` to `ai-index` (RSL has no token for text and data
mining as a whole: `all` would also forbid search, which the node allows; the TDMRep signals
carry the general reservation). A token takes the most restrictive choice of its uses.

Every AI use is prohibited by default (`ai-all`). A use the artist set to `constrained` with an
offer (`terms.offers`) gets a license of its own: that token permitted, with `<payment>` and
`<amount currency=…>` when the offer names a price and `<custom>` pointing at the offer's page.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RSL_NAMESPACE = "https://rslstandard.org/rsl"
RSL_MEDIA_TYPE = "application/rsl+xml"
LICENSE_PATH = "license.xml"

# RSL 1.0 §3.4.1.1 usage tokens for the CAWG uses (PROTOCOL §4).
RSL_USAGE = {
    "aiTraining": "ai-train",
    "aiGenerativeTraining": "ai-train",
    "aiInference": "ai-input",
    "dataMining": "ai-index",
}
RSL_TOKENS = ("ai-train", "ai-input", "ai-index")
_STRICTNESS = {"notAllowed": 0, "constrained": 1, "allowed": 2}


@dataclass(frozen=True)
class LicensedAsset:
    """URLs that share one set of terms (a track's page and its files), as terms JSON."""

    urls: tuple[str, ...]
    terms: Mapping[str, Any]


def token_choices(terms: Mapping[str, Any]) -> dict[str, str]:
    """Each RSL token's choice: the most restrictive of the CAWG uses that map onto it."""
    uses = terms.get("dataMining") or {}
    choices: dict[str, str] = {}
    for use, token in RSL_USAGE.items():
        value = uses.get(use, "notAllowed") if isinstance(uses, Mapping) else "notAllowed"
        value = value if value in _STRICTNESS else "notAllowed"
        if token not in choices or _STRICTNESS[value] < _STRICTNESS[choices[token]]:
            choices[token] = value
    return choices


def _offers(terms: Mapping[str, Any]) -> Mapping[str, Any]:
    offers = terms.get("offers")
    return offers if isinstance(offers, Mapping) else {}


def _offer_for(token: str, terms: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The offer behind a constrained token: the first of its constrained uses with one."""
    uses = terms.get("dataMining") or {}
    for use, mapped in RSL_USAGE.items():
        offer = _offers(terms).get(use)
        if mapped == token and uses.get(use) == "constrained" and isinstance(offer, Mapping):
            return offer
    return None


def _element(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, f"{{{RSL_NAMESPACE}}}{name}", attrs)
    child.text = text
    return child


def _contact_url(contact: str) -> str:
    contact = contact.strip()
    if "@" in contact and not contact.startswith(("mailto:", "http://", "https://")):
        return "mailto:" + contact
    return contact


def _licenses(content: ET.Element, terms: Mapping[str, Any], contact: str) -> None:
    choices = token_choices(terms)
    allowed = [token for token in RSL_TOKENS if choices[token] == "allowed"]
    free = _element(content, "license")
    if allowed:
        _element(free, "permits", " ".join(allowed), type="usage")
        refused = [token for token in RSL_TOKENS if token not in allowed]
        if refused:
            _element(free, "prohibits", " ".join(refused), type="usage")
    else:
        _element(free, "prohibits", "ai-all", type="usage")
    _element(free, "legal", contact, type="contact")
    for token in RSL_TOKENS:
        offer = _offer_for(token, terms) if choices[token] == "constrained" else None
        if offer is None:
            continue  # nothing is offered unless the artist set it
        offered = _element(content, "license")
        _element(offered, "permits", token, type="usage")
        # §3.7: `training` is paid per training use; any other use is a one-time licence.
        payment = _element(
            offered, "payment", type="training" if token == "ai-train" else "purchase"
        )
        _element(payment, "custom", str(offer.get("url") or contact))
        price = offer.get("price")
        if isinstance(price, Mapping) and price.get("amount") and price.get("currency"):
            _element(payment, "amount", str(price["amount"]), currency=str(price["currency"]))
        _element(
            offered, "legal", _contact_url(str(offer.get("contact") or contact)), type="contact"
        )


def _copyright(content: ET.Element, terms: Mapping[str, Any], contact: str) -> None:
    line = str(terms.get("copyright") or "")
    holder = line.split(" ", 1)[1] if " " in line else line
    if not holder:
        return
    attrs: dict[str, str] = {}
    if contact.startswith("mailto:"):
        attrs["contactEmail"] = contact.removeprefix("mailto:")
    elif contact.startswith(("http://", "https://")):
        attrs["contactUrl"] = contact
    _element(content, "copyright", holder, **attrs)


def license_xml(
    node_terms: Mapping[str, Any],
    base_url: str,
    contact: str = "",
    assets: Sequence[LicensedAsset] = (),
) -> bytes:
    """The RSL document for a node at `base_url` with these default terms (terms JSON).

    `contact` is where to ask (`node.contact`); the node's `/terms` page when empty.
    """
    terms_url = base_url + "terms"
    contact = _contact_url(contact) or terms_url
    root = ET.Element(f"{{{RSL_NAMESPACE}}}rsl")
    scopes = [LicensedAsset((base_url,), node_terms), *assets]
    for scope in scopes:
        for url in scope.urls:
            content = _element(root, "content", url=url)
            _licenses(content, scope.terms, contact)
            _copyright(content, scope.terms, contact)
            _element(content, "terms", terms_url)
    ET.register_namespace("", RSL_NAMESPACE)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"

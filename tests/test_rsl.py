"""`/license.xml`: the node's terms as an RSL 1.0 document (https://rslstandard.org/rsl),
parsed with xml.etree and checked against the spec's elements and vocabularies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from node.publish import TrackChoices
from node.terms import Terms
from node.web import create_app
from node.web.rsl import RSL_NAMESPACE, license_xml
from node.web.state import PUBLISHER
from tests.support.node import WEB_URL, write_node_config
from tests.support.shared import AUDIO_FIXTURES

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]

NS = {"rsl": RSL_NAMESPACE}
# RSL 1.0 §3: every element of the namespace; §3.4.1.1 usage, §3.7 payment, §3.13 legal types.
RSL_ELEMENTS = {
    "rsl", "content", "license", "permits", "prohibits", "payment", "standard", "custom",
    "amount", "accepts", "reporting", "legal", "alternate", "schema", "copyright", "terms",
}  # fmt: skip
USAGE_TOKENS = {"all", "ai-all", "ai-train", "ai-input", "ai-index", "search"}
PAYMENT_TYPES = {
    "purchase", "subscription", "training", "crawl", "use", "contribution", "attribution", "free",
}  # fmt: skip
LEGAL_TYPES = {"warranty", "disclaimer", "attestation", "contact", "proof"}


def parse_rsl(body: bytes) -> ET.Element:
    """The document's root, after checking it only uses RSL 1.0's elements and values."""
    root = ET.fromstring(body)
    assert root.tag == f"{{{RSL_NAMESPACE}}}rsl"
    for element in root.iter():
        namespace, _, name = element.tag[1:].partition("}")
        assert namespace == RSL_NAMESPACE and name in RSL_ELEMENTS, element.tag
    contents = root.findall("rsl:content", NS)
    assert contents and all(content.get("url") for content in contents)
    for content in contents:
        licenses = content.findall("rsl:license", NS)
        assert licenses
        for license in licenses:
            for kind in ("permits", "prohibits"):
                usage = license.findall(f"rsl:{kind}[@type='usage']", NS)
                assert len(usage) <= 1  # §3.5: at most one per type
                for element in usage:
                    assert set((element.text or "").split()) <= USAGE_TOKENS
            payments = license.findall("rsl:payment", NS)
            assert len(payments) <= 1
            for payment in payments:
                assert payment.get("type", "free") in PAYMENT_TYPES
            for legal in license.findall("rsl:legal", NS):
                assert legal.get("type") in LEGAL_TYPES
        assert len(content.findall("rsl:copyright", NS)) <= 1
        assert len(content.findall("rsl:terms", NS)) <= 1
    return root


def usage(license: ET.Element, kind: str) -> set[str]:
    element = license.find(f"rsl:{kind}[@type='usage']", NS)
    return set() if element is None else set((element.text or "").split())


async def test_default_node_prohibits_every_ai_use(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(web_data_dir, node__contact="licensing@ada.example")
    client = await aiohttp_client(create_app(web_data_dir))
    response = await client.get("/license.xml")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/rsl+xml; charset=utf-8"
    root = parse_rsl(await response.read())

    [content] = root.findall("rsl:content", NS)
    assert content.get("url") == WEB_URL
    [license] = content.findall("rsl:license", NS)
    assert usage(license, "prohibits") == {"ai-all"} and usage(license, "permits") == set()
    assert license.find("rsl:payment", NS) is None  # nothing is offered
    assert license.findtext("rsl:legal[@type='contact']", namespaces=NS) == (
        "mailto:licensing@ada.example"
    )
    copyright = content.find("rsl:copyright", NS)
    assert copyright is not None and copyright.get("contactEmail") == "licensing@ada.example"
    assert copyright.text and copyright.text.strip()
    assert content.findtext("rsl:terms", namespaces=NS) == WEB_URL + "terms"


def priced_training_offer(generative: str) -> dict[str, object]:
    terms = Terms().to_json()
    terms["dataMining"].update(aiTraining="constrained", aiGenerativeTraining=generative)
    terms["offers"] = {
        "aiTraining": {
            "price": {"amount": "500.00", "currency": "EUR", "per": "track"},
            "contact": "mailto:ada@example.org",
            "url": WEB_URL + "terms#offer-aiTraining",
        }
    }
    return terms


def test_priced_training_offer_is_a_license_of_its_own() -> None:
    root = parse_rsl(license_xml(priced_training_offer("constrained"), WEB_URL))

    [content] = root.findall("rsl:content", NS)
    free, offered = content.findall("rsl:license", NS)
    # Without the offer's terms, no AI use: training is not free.
    assert usage(free, "prohibits") == {"ai-all"} and free.find("rsl:payment", NS) is None
    assert usage(offered, "permits") == {"ai-train"} and usage(offered, "prohibits") == set()
    payment = offered.find("rsl:payment", NS)
    assert payment is not None and payment.get("type") == "training"
    amount = payment.find("rsl:amount", NS)
    assert amount is not None and (amount.text, amount.get("currency")) == ("500.00", "EUR")
    assert payment.findtext("rsl:custom", namespaces=NS) == WEB_URL + "terms#offer-aiTraining"
    legal = offered.findtext("rsl:legal[@type='contact']", namespaces=NS)
    assert legal == "mailto:ada@example.org"


def test_training_offer_is_not_made_while_generative_training_is_refused() -> None:
    # RSL's ai-train covers both CAWG training uses; it takes the stricter choice.
    root = parse_rsl(license_xml(priced_training_offer("notAllowed"), WEB_URL))
    [license] = root.findall("rsl:content/rsl:license", NS)
    assert usage(license, "prohibits") == {"ai-all"}


def test_constrained_use_without_an_offer_offers_nothing() -> None:
    terms = Terms().to_json()
    terms["dataMining"]["aiInference"] = "constrained"
    root = parse_rsl(license_xml(terms, WEB_URL))
    [license] = root.findall("rsl:content/rsl:license", NS)
    assert usage(license, "prohibits") == {"ai-all"}


def test_allowed_uses_are_permitted_and_the_rest_prohibited() -> None:
    terms = Terms().to_json()
    terms["dataMining"].update(aiInference="allowed", aiTraining="allowed")
    root = parse_rsl(license_xml(terms, WEB_URL))
    [license] = root.findall("rsl:content/rsl:license", NS)
    # aiGenerativeTraining stays notAllowed, so ai-train (either training use) does too.
    assert usage(license, "permits") == {"ai-input"}
    assert usage(license, "prohibits") == {"ai-train", "ai-index"}


async def test_track_with_its_own_terms_has_its_own_content(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(
        web_data_dir, terms__ai_training="allowed", terms__ai_generative_training="allowed"
    )
    client = await aiohttp_client(create_app(web_data_dir))
    publisher = client.server.app[PUBLISHER]
    shared = await publisher.add(AUDIO_FIXTURES[0])
    closed = await publisher.add(AUDIO_FIXTURES[0], TrackChoices(ai_training="notAllowed"))

    root = parse_rsl(await (await client.get("/license.xml")).read())
    by_url = {content.get("url"): content for content in root.findall("rsl:content", NS)}
    track_urls = {
        WEB_URL + f"tracks/{closed['id'].removeprefix('urn:uuid:')}",
        WEB_URL + f"ipfs/{closed['audio']['cid']}",
    }
    renditions = {WEB_URL + f"ipfs/{ref['cid']}" for ref in closed.get("renditions") or []}
    assert track_urls <= set(by_url) <= track_urls | renditions | {WEB_URL}
    assert (
        WEB_URL + f"tracks/{shared['id'].removeprefix('urn:uuid:')}" not in by_url
    )  # the node's terms cover it
    [node_license] = by_url[WEB_URL].findall("rsl:license", NS)
    assert usage(node_license, "permits") == {"ai-train"}
    assert usage(node_license, "prohibits") == {"ai-input", "ai-index"}
    for url in track_urls:
        [license] = by_url[url].findall("rsl:license", NS)
        assert usage(license, "prohibits") == {"ai-all"}, url


async def test_node_with_a_priced_training_offer(
    aiohttp_client: ClientFactory, web_data_dir: Path
) -> None:
    write_node_config(
        web_data_dir,
        terms__ai_training="constrained",
        terms__ai_generative_training="constrained",
        offers__ai_training_price="500.00 EUR",
        offers__ai_training_contact="mailto:ada@example.org",
        offers__ai_generative_training_contact="mailto:ada@example.org",
    )
    client = await aiohttp_client(create_app(web_data_dir))
    root = parse_rsl(await (await client.get("/license.xml")).read())

    [content] = root.findall("rsl:content", NS)
    free, offered = content.findall("rsl:license", NS)
    assert usage(free, "prohibits") == {"ai-all"} and free.find("rsl:payment", NS) is None
    assert usage(offered, "permits") == {"ai-train"}
    payment = offered.find("rsl:payment", NS)
    assert payment is not None and payment.get("type") == "training"
    amount = payment.find("rsl:amount", NS)
    assert amount is not None and (amount.text, amount.get("currency")) == ("500.00", "EUR")
    assert (payment.findtext("rsl:custom", namespaces=NS) or "").startswith(WEB_URL)
    legal = offered.findtext("rsl:legal[@type='contact']", namespaces=NS)
    assert legal == "mailto:ada@example.org"

"""Offers for a `constrained` use (docs/protocol-extensions.md, "Offers"): the model and its
refusals, `stave terms offer|withdraw-offer|show` for the node and one track, the signed feed
and manifest carrying them, the files pointing to their terms, and the /terms page."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import mutagen
import pytest

from node import media
from node.cid import import_path
from node.errors import ConfigError, UsageError, VerificationError
from node.feed import FollowState, verify_feed
from node.manifest import verify_manifest
from node.media.terms import EmbeddedTerms
from node.offers import CURRENCIES, Offer, Price, offer_url, terms_page_url
from node.settings import Config
from node.terms import Terms, offer_settings
from node.web.app import create_app
from tests.support.cli import ok, stave
from tests.support.net import loopback_socket, serving
from tests.support.node import write_node_config
from tests.support.shared import AUDIO_FIXTURES

FORMATS = {p.suffix.lstrip("."): p for p in AUDIO_FIXTURES}
ID3_FORMATS = ("mp3", "wav", "aiff")
CONTACT = "mailto:ada@example.org"
CREDIT = "Ada Example, “Night Drive” (2026)"
TRACK = "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
BASE = "http://127.0.0.1:8080/"


def offer(**changes: Any) -> Offer:
    values: dict[str, Any] = {
        "contact": CONTACT,
        "price": Price("500.00", "EUR", "track"),
        "attribution": CREDIT,
        "url": offer_url(BASE, "aiTraining"),
    }
    return Offer(**{**values, **changes})


# --- the model ---------------------------------------------------------------------------------


def test_a_price_is_read_from_words() -> None:
    assert Price.parse("500 EUR") == Price("500.00", "EUR", "track")
    assert Price.parse("eur 12.5", "catalog") == Price("12.50", "EUR", "catalog")
    assert Price.parse("0.0125 USD") == Price("0.0125", "USD", "track")
    assert {"EUR", "USD", "JPY", "GBP", "CHF"} <= CURRENCIES
    assert not {"XAU", "XTS", "XXX", "HRK"} & CURRENCIES  # metals, tests, withdrawn


@pytest.mark.parametrize(
    ("text", "per", "reason"),
    [
        ("500", "track", "is not an amount and a currency"),
        ("500 EURO", "track", "'EURO' is not an ISO 4217 currency code"),
        ("500 XAU", "track", "'XAU' is not an ISO 4217 currency code"),
        ("5,00 EUR", "track", "'5,00' is not a decimal amount"),
        ("-5 EUR", "track", "'-5' is not a decimal amount"),
        ("1e3 EUR", "track", "'1e3' is not a decimal amount"),
        ("0500 EUR", "track", "'0500' is not a decimal amount"),
        ("1.23456 EUR", "track", "'1.23456' is not a decimal amount"),
        ("1" * 13 + " EUR", "track", "is not a decimal amount"),
        ("500 EUR", "release", "--per: 'release' is not one of track, catalog"),
    ],
    ids=["no-currency", "word", "metal", "comma", "negative", "exponent", "zero-led", "digits",
         "huge", "per"],
)  # fmt: skip
def test_bad_prices_are_refused(text: str, per: str, reason: str) -> None:
    with pytest.raises(UsageError) as refused:
        Price.parse(text, per)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"contact": "ada@example.org"}, "is not a mailto: address or an https URL"),
        ({"contact": "http://ada.example/licensing"}, "is not a mailto: address or an https URL"),
        ({"contact": "javascript:alert(1)"}, "is not a mailto: address or an https URL"),
        ({"contact": "mailto:nobody"}, "is not a mailto: address or an https URL"),
        ({"contact": "https://" + "a" * 500 + ".example"}, "longer than 500 characters"),
        ({"attribution": "x" * 301}, "offer.attribution: longer than 300 characters"),
        ({"attribution": "Ada\x00"}, "offer.attribution: must not hold control characters"),
        ({"conditions": "y" * 2001}, "offer.conditions: longer than 2000 characters"),
        ({"url": "ftp://ada.example/terms"}, "offer.url: 'ftp://ada.example/terms' is not"),
    ],
    ids=["bare-address", "http", "javascript", "no-domain", "long-contact", "long-credit",
         "control", "long-conditions", "ftp-url"],
)  # fmt: skip
def test_bad_offers_are_refused(changes: dict[str, str], reason: str) -> None:
    with pytest.raises(UsageError) as refused:
        offer(**changes)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_an_offer_exists_exactly_when_its_use_is_constrained() -> None:
    assert Terms().offers == {} and Terms().offer("aiTraining") is None
    # PROTOCOL §4 allows `constrained` alone: a peer's (or an older track's) terms are read as
    # they are; only what this node signs needs the offer (with_choices, from_config below).
    bare = Terms(data_mining={**Terms().data_mining, "aiTraining": "constrained"})
    assert bare.offer("aiTraining") is None
    assert Terms.from_json(bare.to_json()) == bare
    with pytest.raises(UsageError, match="an offer needs aiTraining set to constrained"):
        Terms(offers={"aiTraining": offer()})
    with pytest.raises(UsageError, match="constrained but has no offer"):
        Terms().with_choices(ai_training="constrained")
    offered = Terms().with_choices(offer=("aiTraining", offer()))
    assert offered.data_mining["aiTraining"] == "constrained"
    assert offered.offer("aiTraining") == offer()
    # choosing notAllowed (or allowed) takes the offer away; withdrawing it does the same
    assert offered.with_choices(ai_training="notAllowed") == Terms()
    assert offered.with_choices(offer=("aiTraining", None)) == Terms()
    assert offered.with_choices(ai_training="allowed").offers == {}


def test_terms_carry_offers_as_json_and_back() -> None:
    terms = Terms().with_choices(offer=("aiTraining", offer(conditions="No voice cloning.")))
    document = terms.to_json()
    assert document["offers"] == {
        "aiTraining": {
            "price": {"amount": "500.00", "currency": "EUR", "per": "track"},
            "attribution": CREDIT,
            "contact": CONTACT,
            "conditions": "No voice cloning.",
            "url": "http://127.0.0.1:8080/terms#offer-aiTraining",
        }
    }
    assert Terms.from_json(json.loads(json.dumps(document))) == terms
    assert "offers" not in Terms().to_json()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"offers": []}, "terms.offers is not a JSON object"),
        ({"offers": {"aiTraining": offer().to_json(), "aiInference": {"contact": CONTACT}}},
         "needs aiInference set to constrained"),
        ({"offers": {"aiTraining": {"contact": 1}}}, "must be strings"),
        ({"offers": {"aiTraining": {"contact": "mailto:a@b.c", "price": {"amount": "5"}}}},
         "offer.price needs amount, currency and per"),
        ({"offers": {"aiTraining": {"contact": "mailto:a@b.c",
                                    "price": {"amount": 5, "currency": "EUR", "per": "track"}}}},
         "offer.price needs amount, currency and per as strings"),
    ],
    ids=["not-object", "not-constrained", "contact-type", "price-parts", "float"],
)  # fmt: skip
def test_malformed_offers_in_signed_terms_are_refused(change: dict[str, Any], reason: str) -> None:
    document = Terms().with_choices(offer=("aiTraining", offer())).to_json()
    document.update(change)
    with pytest.raises(VerificationError) as refused:
        Terms.from_json(document)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_node_offers_come_from_the_settings() -> None:
    config = Config({"node.url": "https://ada.example"}).replace(
        **offer_settings("aiTraining", offer(price=Price("12.50", "USD", "catalog")))
    )
    assert config["terms.ai_training"] == "constrained"
    assert config["offers.ai_training_price"] == "12.50 USD"
    assert config["offers.ai_training_per"] == "catalog"
    terms = Terms.from_config(config)
    assert terms.offer("aiTraining") == offer(
        price=Price("12.50", "USD", "catalog"), url="https://ada.example/terms#offer-aiTraining"
    )
    withdrawn = config.replace(**offer_settings("aiTraining", None))
    assert Terms.from_config(withdrawn) == Terms.from_config(Config())
    with pytest.raises(ConfigError, match=r"offers\.ai_training_\*: .*'XYZ' is not an ISO 4217"):
        Terms.from_config(config.replace(offers__ai_training_price="5 XYZ"))
    with pytest.raises(ConfigError, match="an offer needs aiTraining set to constrained"):
        Terms.from_config(config.replace(terms__ai_training="notAllowed"))
    with pytest.raises(ConfigError, match="aiInference is constrained but has no offer"):
        Terms.from_config(Config({"terms.ai_inference": "constrained"}))
    with pytest.raises(ConfigError, match=r"offers\.ai_training_per: must be one of track"):
        Config({"offers.ai_training_per": "release"})


# --- the command line --------------------------------------------------------------------------


def latest_feed(data_dir: Path) -> dict[str, Any]:
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:
        (cid,) = db.execute("SELECT cid FROM feeds ORDER BY sequence DESC LIMIT 1").fetchone()
    path = data_dir / "store" / "files" / cid
    assert str(import_path(path).root) == cid
    body = path.read_bytes()
    return verify_feed(body, FollowState(artist=json.loads(body)["artist"]), max_bytes=1 << 24)


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "node"
    ok(stave(data_dir, "init", "--name", "Ada Example", "--url", "https://ada.example/"))
    return data_dir


def test_the_node_offers_and_withdraws_through_the_cli(node_dir: Path) -> None:
    first = latest_feed(node_dir)
    args = ("--price", "500 EUR", "--attribution", CREDIT, "--contact", CONTACT)
    out = ok(stave(node_dir, "terms", "offer", "aiTraining", *args, "--conditions", "No cloning."))
    assert out.startswith("feed sequence 2 ")
    feed = latest_feed(node_dir)  # verified: signed by the artist, the chain intact
    assert feed["sequence"] == first["sequence"] + 1
    assert feed["terms"]["dataMining"]["aiTraining"] == "constrained"
    assert feed["terms"]["offers"] == {
        "aiTraining": {
            "price": {"amount": "500.00", "currency": "EUR", "per": "track"},
            "attribution": CREDIT,
            "contact": CONTACT,
            "conditions": "No cloning.",
            "url": "https://ada.example/terms#offer-aiTraining",
        }
    }
    config = (node_dir / "config.toml").read_text()
    assert 'ai_training = "constrained"' in config and 'ai_training_price = "500.00 EUR"' in config
    shown = json.loads(ok(stave(node_dir, "terms", "show", "--json")))
    assert shown == feed["terms"]
    words = ok(stave(node_dir, "terms", "show"))
    assert "Price: 500.00 EUR for each track." in words and "contact ada@example.org" in words

    ok(stave(node_dir, "terms", "withdraw-offer", "aiTraining"))
    feed = latest_feed(node_dir)
    assert feed["terms"]["dataMining"]["aiTraining"] == "notAllowed"
    assert "offers" not in feed["terms"]
    assert 'ai_training_price = ""' in (node_dir / "config.toml").read_text()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("aiTraining", "--contact", "ada@example.org"), "--contact: 'ada@example.org' is not a"),
        (("aiTraining", "--contact", CONTACT, "--price", "500 ECU"), "'ECU' is not an ISO 4217"),
        (("aiTraining", "--contact", CONTACT, "--per", "catalog"), "--per: give it with --price"),
        (("aiTraining", "--contact", CONTACT, "--attribution", "x" * 301), "longer than 300"),
        (("aiTraining", "--contact", CONTACT, "--track", "nope"), "nope"),
    ],
    ids=["contact", "currency", "per-alone", "credit", "unknown-track"],
)
def test_refused_offers_change_nothing(node_dir: Path, args: tuple[str, ...], reason: str) -> None:
    config = (node_dir / "config.toml").read_bytes()
    feed = latest_feed(node_dir)
    result = stave(node_dir, "terms", "offer", *args)
    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("stave: ") and reason in line
    assert (node_dir / "config.toml").read_bytes() == config
    assert latest_feed(node_dir) == feed


def test_a_track_gets_an_offer_of_its_own(node_dir: Path) -> None:
    (manifest,) = json.loads(ok(stave(node_dir, "add", str(FORMATS["flac"]), "--json")))
    args = ("--price", "80 GBP", "--per", "catalog", "--contact", "https://ada.example/ask")
    out = ok(stave(node_dir, "terms", "offer", "aiInference", *args, "--track", manifest["id"]))
    assert "revision 2" in out
    feed = latest_feed(node_dir)
    (track,) = feed["tracks"]
    verify_manifest(track, feed["artist"])
    bare = manifest["id"].removeprefix("urn:uuid:")
    assert track["terms"]["dataMining"]["aiInference"] == "constrained"
    assert track["terms"]["offers"]["aiInference"] == {
        "price": {"amount": "80.00", "currency": "GBP", "per": "catalog"},
        "contact": "https://ada.example/ask",
        "url": f"https://ada.example/terms#track-{bare}-offer-aiInference",
    }
    assert "offers" not in feed["terms"]  # the node's own terms are untouched
    shown = json.loads(ok(stave(node_dir, "terms", "show", "--track", manifest["id"], "--json")))
    assert shown == track["terms"]
    ok(stave(node_dir, "terms", "withdraw-offer", "aiInference", "--track", manifest["id"]))
    (track,) = latest_feed(node_dir)["tracks"]
    assert track["revision"] == 3 and "offers" not in track["terms"]
    assert track["terms"]["dataMining"]["aiInference"] == "notAllowed"


def test_a_track_offered_for_ai_training_says_so_in_its_file(node_dir: Path) -> None:
    ok(stave(node_dir, "terms", "offer", "aiTraining", "--contact", CONTACT))
    (manifest,) = json.loads(ok(stave(node_dir, "add", str(FORMATS["mp3"]), "--json")))
    assert manifest["terms"]["offers"]["aiTraining"]["contact"] == CONTACT
    tags = media.read_terms(node_dir / "store" / "files" / manifest["audio"]["cid"])
    assert tags["AI_TRAINING"] == "constrained"
    assert tags["AI_TRAINING_OFFER"] == "https://ada.example/terms#offer-aiTraining"
    bare = manifest["id"].removeprefix("urn:uuid:")
    assert tags["LICENSE_URL"] == f"https://ada.example/terms#track-{bare}"


# --- in the files ------------------------------------------------------------------------------


def embedded(**changes: Any) -> EmbeddedTerms:
    values: dict[str, Any] = {
        "copyright": "2026 Ada Example",
        "license": "ARR",
        "license_url": "",
        "terms_in_words": "All rights reserved.",
        "tdm_reservation": 1,
        "ai_training": "constrained",
        "artist_did": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "track_id": TRACK,
        "feed_url": BASE + "feed.json",
        "terms_url": terms_page_url(BASE, TRACK),
        "offer_url": offer_url(BASE, "aiTraining"),
    }
    return EmbeddedTerms(**{**values, **changes})


def raw_links(path: Path, audio_format: str) -> dict[str, list[str]]:
    """The link back and the offer URL as mutagen reads them, whatever Stave's reader says."""
    tags = mutagen.File(path).tags
    if audio_format in ID3_FORMATS:
        txxx = {frame.desc: list(frame.text) for frame in tags.getall("TXXX")}
        return {
            "link": [frame.url for frame in tags.getall("WCOP")],
            "offer": txxx.get("AI_TRAINING_OFFER", []),
            "ai": txxx.get("AI_TRAINING", []),
        }
    if audio_format == "m4a":
        freeform = "----:com.apple.iTunes:"

        def atom(name: str) -> list[str]:
            return [bytes(value).decode() for value in tags.get(freeform + name, [])]

        return {"link": atom("LICENSE_URL"), "offer": atom("AI_TRAINING_OFFER"),
                "ai": atom("AI_TRAINING")}  # fmt: skip
    return {
        "link": tags.get("LICENSE_URL", []),
        "offer": tags.get("AI_TRAINING_OFFER", []),
        "ai": tags.get("AI_TRAINING", []),
    }


@pytest.mark.parametrize("audio_format", sorted(FORMATS))
def test_every_file_points_to_its_terms(audio_format: str, tmp_path: Path) -> None:
    copy = tmp_path / FORMATS[audio_format].name
    shutil.copyfile(FORMATS[audio_format], copy)
    media.write_terms(copy, embedded())
    terms_url = f"{BASE}terms#track-{TRACK.removeprefix('urn:uuid:')}"
    assert raw_links(copy, audio_format) == {
        "link": [terms_url],
        "offer": [BASE + "terms#offer-aiTraining"],
        "ai": ["constrained"],
    }
    found = media.read_terms(copy)
    assert found["LICENSE_URL"] == terms_url
    assert found["AI_TRAINING_OFFER"] == BASE + "terms#offer-aiTraining"
    # a licence URL wins over the terms page, and written again nothing is duplicated
    licence = "https://creativecommons.org/licenses/by/4.0/"
    relicensed = {"license": "CC-BY-4.0", "license_url": licence, "ai_training": "allowed"}
    media.write_terms(copy, embedded(**relicensed, offer_url=""))
    assert raw_links(copy, audio_format) == {"link": [licence], "offer": [], "ai": ["allowed"]}
    if exiftool := shutil.which("exiftool"):
        import subprocess

        out = subprocess.run(
            [exiftool, "-j", "-G1", "-a", str(copy)], capture_output=True, text=True, check=True
        ).stdout
        assert licence in out


def test_an_offer_url_needs_constrained() -> None:
    with pytest.raises(UsageError, match="an offer URL needs aiTraining set to constrained"):
        embedded(ai_training="notAllowed")


# --- the terms page ----------------------------------------------------------------------------


async def page_text(root: Path, path: str = "/terms") -> str:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}{path}"
    async with (
        serving(create_app(root), sock),
        aiohttp.ClientSession() as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_the_terms_page_explains_each_offer(web_data_dir: Path) -> None:
    write_node_config(
        web_data_dir,
        **offer_settings(
            "aiTraining",
            offer(conditions="Not for voice models <script>.", price=Price("500.00", "EUR")),
        ),
    )
    html = await page_text(web_data_dir)
    assert 'id="offer-aiTraining"' in html
    for words in (
        "The artist offers a licence for training AI models.",
        "Price: 500.00 EUR for each track.",
        f"Attribution is required, in these words: {CREDIT}",
        "Conditions: Not for voice models &lt;script&gt;.",
        "To accept or ask, contact ada@example.org.",
        "Nothing is licensed until the artist grants it in writing.",
        "<dt>Per</dt>\n    <dd>Each track</dd>",
        f'<a href="{CONTACT}">ada@example.org</a>',
    ):
        assert words in html, words
    assert "<script>." not in html
    for use in ("aiGenerativeTraining", "aiInference", "dataMining"):
        section = html.split(f'id="offer-{use}"')[1].split("</article>")[0]
        assert "Not offered. Not allowed without permission." in section


async def test_the_terms_page_says_not_offered_by_default(web_data_dir: Path) -> None:
    html = await page_text(web_data_dir)
    assert html.count("Not offered. Not allowed without permission.") == 4
    assert "The artist offers" not in html

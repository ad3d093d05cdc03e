"""Signals to crawlers (PROTOCOL §9): response headers, `<meta>` tags, robots.txt, TDMRep, ai.txt.

When the node's default terms reserve data mining (`Terms.reserves_mining`), every response
carries `tdm-reservation: 1` and `tdm-policy` (W3C TDMRep, Final CG Report 2024), `X-Robots-Tag:
noai, noimageai`, and `Content-Usage` (IETF AIPREF: draft-ietf-aipref-attach-05 attaches a
draft-ietf-aipref-vocab-08 statement, an RFC 9651 dictionary such as `train-ai=n, ai-use=n`). The
same choice is published site-wide in `/robots.txt` (with a `License:` line pointing at the RSL
document, node/web/rsl.py), `/.well-known/tdmrep.json`, `/ai.txt` (Spawning's format) and a
machine-readable TDMRep policy (an ODRL 2.2 profile) at `/terms/tdm-policy.json`.

This module works out what they say from the terms; node/web/crawlers.py sends and serves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.terms import Terms
from node.web.rsl import LICENSE_PATH

# Crawlers that gather training data for AI models. Ordinary search engines stay allowed.
AI_CRAWLERS: tuple[str, ...] = (
    "GPTBot",
    "ChatGPT-User",
    "OAI-SearchBot",
    "ClaudeBot",
    "Claude-Web",
    "anthropic-ai",
    "CCBot",
    "Google-Extended",
    "GoogleOther",
    "Applebot-Extended",
    "meta-externalagent",
    "meta-externalfetcher",
    "FacebookBot",
    "Bytespider",
    "PerplexityBot",
    "cohere-ai",
    "cohere-training-data-crawler",
    "Amazonbot",
    "Diffbot",
    "AI2Bot",
    "Ai2Bot-Dolma",
    "Timpibot",
    "ImagesiftBot",
    "Omgilibot",
    "omgili",
    "YouBot",
    "PetalBot",
    "img2dataset",
    "Webzio-Extended",
    "DeepSeekBot",
)

# Spawning's ai.txt names media by file extension: every kind of file this node can serve.
AI_TXT_EXTENSIONS: tuple[str, ...] = (
    "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac", "wav", "aiff", "aif", "wma", "amr",
    "jpg", "jpeg", "png", "gif", "webp", "bmp", "svg", "tif", "tiff",
    "json", "txt", "html", "xml", "rss", "car",
)  # fmt: skip

POLICY_PATH = "terms/tdm-policy.json"
TDMREP_CONTEXT = ["http://www.w3.org/ns/odrl.jsonld", {"tdm": "http://www.w3.org/ns/tdmrep#"}]


@dataclass(frozen=True)
class CrawlerSignals:
    """What this node tells crawlers, worked out once from its default terms."""

    reserved: bool
    policy_url: str
    headers: tuple[tuple[str, str], ...]


def policy_url(terms: Terms, base_url: str) -> str:
    """The TDMRep policy URL: the configured `terms.tdm_policy`, else the node's own."""
    return terms.tdm_policy or base_url + POLICY_PATH


def content_usage(terms: Terms) -> str:
    """The AIPREF statement for these terms (draft-ietf-aipref-vocab-08 §6).

    `train-ai` (training generative AI models) is `y` only when both CAWG training uses are
    `allowed`, `ai-use` (input to generative AI models) only when `aiInference` is; anything
    else, an offer included, is `n` until a licence says otherwise. `search` is left unstated:
    the artist chooses nothing about search, and vocab-08 §4.3 lets `search=y` override the rest.
    """
    uses = terms.data_mining
    training = uses["aiTraining"] == uses["aiGenerativeTraining"] == "allowed"
    inference = uses["aiInference"] == "allowed"
    return f"train-ai={'y' if training else 'n'}, ai-use={'y' if inference else 'n'}"


def crawler_signals(terms: Terms, base_url: str) -> CrawlerSignals:
    """The signals for a node with these default terms at `base_url`."""
    url = policy_url(terms, base_url)
    if not terms.reserves_mining:
        return CrawlerSignals(reserved=False, policy_url=url, headers=())
    headers = (
        ("tdm-reservation", "1"),
        ("tdm-policy", url),
        ("X-Robots-Tag", "noai, noimageai"),
        ("Content-Usage", content_usage(terms)),
    )
    return CrawlerSignals(reserved=True, policy_url=url, headers=headers)


def meta_tags(terms: Terms, base_url: str) -> list[tuple[str, str]]:
    """`(name, content)` pairs for `<meta name=… content=…>` in every HTML page's head.

    The HTML forms of the response headers: TDMRep's `tdm-reservation` and `tdm-policy`,
    `robots: noai, noimageai` and AIPREF's `content-usage`. Empty when the terms reserve nothing.
    """
    signals = crawler_signals(terms, base_url)
    if not signals.reserved:
        return []
    return [
        ("tdm-reservation", "1"),
        ("tdm-policy", signals.policy_url),
        ("robots", "noai, noimageai"),
        ("content-usage", content_usage(terms)),
    ]


def robots_txt(terms: Terms, base_url: str, own_terms: Sequence[tuple[str, Terms]] = ()) -> str:
    """robots.txt (RFC 9309): AI-training crawlers kept out, every other crawler let in.

    `License:` names the RSL document (RSL 1.0, robots.txt discovery); `Content-Usage` rules
    (attach-05 §3) give the node's statement for every path and each of `own_terms`, `(path,
    terms)` of a track whose terms differ, its own (the longest matching path wins).
    """
    lines = [f"# Stave node at {base_url}", f"License: {base_url}{LICENSE_PATH}", ""]
    if terms.reserves_mining:
        lines.append("# The artist does not allow their music to be used to train AI models.")
        lines.extend(f"User-agent: {name}" for name in AI_CRAWLERS)
        lines += ["Disallow: /", ""]
        lines += ["User-agent: *", f"Content-Usage: {content_usage(terms)}"]
        lines.extend(f"Content-Usage: {path} {content_usage(own)}" for path, own in own_terms)
        lines += ["Allow: /", ""]
    else:
        lines += ["User-agent: *", "Allow: /", ""]
    return "\n".join(lines)


def tdmrep_json(terms: Terms, base_url: str) -> list[dict[str, Any]]:
    """The `/.well-known/tdmrep.json` array: one rule covering the whole site."""
    if not terms.reserves_mining:
        return [{"location": "/", "tdm-reservation": 0}]
    return [{"location": "/", "tdm-reservation": 1, "tdm-policy": policy_url(terms, base_url)}]


def ai_txt(terms: Terms) -> str:
    """`/ai.txt` in Spawning's robots-like format: which files datasets may not use."""
    lines = ["# Spawning AI", "# Prevent datasets from using the following file types", ""]
    lines.append("User-Agent: *")
    if terms.reserves_mining:
        lines.extend(f"Disallow: *.{ext}" for ext in AI_TXT_EXTENSIONS)
        lines += ["Disallow: /", "Disallow: *"]
    else:
        lines.append("Allow: /")
    return "\n".join(lines) + "\n"


def tdm_policy(terms: Terms, base_url: str, name: str, contact: str) -> dict[str, Any]:
    """The TDMRep policy: an ODRL `Offer` under the TDMRep profile (TDMRep §5).

    Mining needs the artist's consent (an `obtainConsent` duty) unless every use is allowed;
    the assigner is the artist, with `node.contact` as where to ask when it is configured.
    """
    assigner: dict[str, Any] = {"uid": base_url}
    if name:
        assigner["vcard:fn"] = name
    contact = contact.strip()
    if contact.startswith(("http://", "https://")):
        assigner["vcard:hasURL"] = contact
    elif contact.startswith("mailto:"):
        assigner["vcard:hasEmail"] = contact
    elif "@" in contact:
        assigner["vcard:hasEmail"] = "mailto:" + contact
    if "vcard:hasURL" not in assigner:
        assigner["vcard:hasURL"] = base_url + "terms"
    permission: dict[str, Any] = {"target": base_url, "action": "tdm:mine"}
    if terms.reserves_mining:
        permission["duty"] = [{"action": "obtainConsent"}]
    return {
        "@context": TDMREP_CONTEXT,
        "@type": "Offer",
        "profile": "http://www.w3.org/ns/tdmrep",
        "uid": base_url + POLICY_PATH,
        "assigner": assigner,
        "permission": [permission],
    }

"""The crawler signals on the web (PROTOCOL §9; node/web/signals.py says what they are): the
headers on every response (`/ipfs/{cid}` of a track with its own terms says that track's
`Content-Usage`), and `/robots.txt`, `/ai.txt`, `/.well-known/tdmrep.json`, the TDMRep policy at
`/terms/tdm-policy.json` and the RSL document at `/license.xml` (node/web/rsl.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from node.errors import VerificationError
from node.terms import Terms
from node.web.rsl import LICENSE_PATH, RSL_MEDIA_TYPE, LicensedAsset, license_xml
from node.web.rss import track_url
from node.web.signals import (
    POLICY_PATH,
    ai_txt,
    content_usage,
    robots_txt,
    tdm_policy,
    tdmrep_json,
)
from node.web.state import CRAWLER_SIGNALS, NODE, PUBLISHER

_PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def signal_headers_hook(app: web.Application) -> _PrepareHook:
    """on_response_prepare for `app`: the §9 headers on every response, errors and 304s too."""

    async def add_signal_headers(request: web.Request, response: web.StreamResponse) -> None:
        signals = app.get(CRAWLER_SIGNALS)
        if signals is not None:
            for header, value in signals.headers:
                response.headers[header] = value
            if request.path.startswith("/ipfs/"):
                own = await _audio_terms(request, request.path.removeprefix("/ipfs/"))
                if own is not None:
                    response.headers["Content-Usage"] = content_usage(own)

    return add_signal_headers


async def _audio_terms(request: web.Request, cid: str) -> Terms | None:
    """The terms of the track whose audio is `cid` (its latest revision), if there is one."""
    manifests = await request.config_dict[NODE].catalog.manifests_for_audio(cid)
    try:
        return Terms.from_json(manifests[0].get("terms")) if manifests else None
    except VerificationError:
        return None


async def _own_terms(request: web.Request, default: Terms) -> list[LicensedAsset]:
    """The URLs and terms JSON of each published track whose terms are not the node's."""
    node_json, base_url = default.to_json(), request.config_dict[NODE].base_url
    own = []
    for track in await request.config_dict[NODE].catalog.tracks():
        terms = track.manifest.get("terms")
        if isinstance(terms, dict) and terms != node_json:
            own.append(LicensedAsset(_track_urls(base_url, track.id, track.manifest), terms))
    return own


def _track_urls(base_url: str, track_id: str, manifest: dict[str, Any]) -> tuple[str, ...]:
    cids = [manifest.get("audio", {}).get("cid")]
    cids += [ref.get("cid") for ref in manifest.get("renditions") or []]
    return (track_url(base_url, track_id), *(f"{base_url}ipfs/{cid}" for cid in cids if cid))


def _terms(request: web.Request) -> tuple[Terms, str]:
    node = request.config_dict[NODE]
    return request.config_dict[PUBLISHER].default_terms(), node.base_url


_TEXT_CACHE = "public, max-age=3600"


async def robots_handler(request: web.Request) -> web.Response:
    terms, base_url = _terms(request)
    own: list[tuple[str, Terms]] = []
    for asset in await _own_terms(request, terms):
        try:
            track_terms = Terms.from_json(asset.terms)
        except VerificationError:
            continue
        own.extend((urlsplit(url).path, track_terms) for url in asset.urls)
    text = robots_txt(terms, base_url, own)
    return web.Response(text=text, headers={"Cache-Control": _TEXT_CACHE})


async def ai_txt_handler(request: web.Request) -> web.Response:
    terms, _ = _terms(request)
    return web.Response(text=ai_txt(terms), headers={"Cache-Control": _TEXT_CACHE})


async def tdmrep_handler(request: web.Request) -> web.Response:
    terms, base_url = _terms(request)
    body = json.dumps(tdmrep_json(terms, base_url), indent=2)
    return web.Response(
        text=body + "\n", content_type="application/json", headers={"Cache-Control": _TEXT_CACHE}
    )


async def tdm_policy_handler(request: web.Request) -> web.Response:
    terms, base_url = _terms(request)
    config = request.config_dict[NODE].config
    policy = tdm_policy(terms, base_url, config["node.name"], config["node.contact"])
    body = json.dumps(policy, indent=2, ensure_ascii=False)
    return web.Response(
        text=body + "\n",
        content_type="application/ld+json",
        headers={"Cache-Control": _TEXT_CACHE},
    )


async def license_xml_handler(request: web.Request) -> web.Response:
    """`GET /license.xml`: the RSL 1.0 document."""
    terms, base_url = _terms(request)
    assets = await _own_terms(request, terms)
    contact = request.config_dict[NODE].config["node.contact"]
    body = license_xml(terms.to_json(), base_url, contact, assets)
    return web.Response(
        body=body,
        content_type=RSL_MEDIA_TYPE,
        charset="utf-8",
        headers={"Cache-Control": _TEXT_CACHE},
    )


def setup(app: web.Application) -> None:
    """Add the signal headers to every response of `app` and the site-wide signal files."""
    app.on_response_prepare.append(signal_headers_hook(app))
    app.router.add_get("/robots.txt", robots_handler)
    app.router.add_get("/ai.txt", ai_txt_handler)
    app.router.add_get("/.well-known/tdmrep.json", tdmrep_handler)
    app.router.add_get("/" + POLICY_PATH, tdm_policy_handler)
    app.router.add_get("/" + LICENSE_PATH, license_xml_handler)

"""The crawler signals on the web (PROTOCOL §9; node/web/signals.py says what they are): the
headers on every response, and `/robots.txt`, `/ai.txt`, `/.well-known/tdmrep.json` and the
TDMRep policy at `/terms/tdm-policy.json`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.terms import Terms
from node.web.signals import POLICY_PATH, ai_txt, robots_txt, tdm_policy, tdmrep_json
from node.web.state import CRAWLER_SIGNALS, NODE, PUBLISHER

_PrepareHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def signal_headers_hook(app: web.Application) -> _PrepareHook:
    """on_response_prepare for `app`: the §9 headers on every response, errors and 304s too."""

    async def add_signal_headers(request: web.Request, response: web.StreamResponse) -> None:
        signals = app.get(CRAWLER_SIGNALS)
        if signals is not None:
            for header, value in signals.headers:
                response.headers[header] = value

    return add_signal_headers


def _terms(request: web.Request) -> tuple[Terms, str]:
    node = request.config_dict[NODE]
    return request.config_dict[PUBLISHER].default_terms(), node.base_url


_TEXT_CACHE = "public, max-age=3600"


async def robots_handler(request: web.Request) -> web.Response:
    terms, base_url = _terms(request)
    text = robots_txt(terms, base_url)
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


def setup(app: web.Application) -> None:
    """Add the signal headers to every response of `app` and the site-wide signal files."""
    app.on_response_prepare.append(signal_headers_hook(app))
    app.router.add_get("/robots.txt", robots_handler)
    app.router.add_get("/ai.txt", ai_txt_handler)
    app.router.add_get("/.well-known/tdmrep.json", tdmrep_handler)
    app.router.add_get("/" + POLICY_PATH, tdm_policy_handler)

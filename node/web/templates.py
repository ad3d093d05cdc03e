"""Rendering the node's HTML pages: one Jinja environment over the `web` package's templates.

Autoescaping is always on, so anything an artist or a tag wrote (a title, a name) is text,
never markup. Every page gets the crawler signals of PROTOCOL §9 as `<meta>` tags when the
node's terms reserve data mining.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

import web as web_package
from node import __version__
from node.terms import Terms
from node.web.signals import meta_tags
from node.web.state import NODE, PUBLISHER

if TYPE_CHECKING:
    import jinja2

TEMPLATES_PACKAGE = "web"
STATIC_PREFIX = "/static/"
STYLESHEET = "stave.css"


def static_dir() -> Path:
    """The directory of the CSS and other assets served under /static/.

    Found from the `web` package's own file (it is installed as files, never zipped):
    `importlib.resources` would import zipfile, 0.6 MB more resident in every running node.
    """
    return Path(web_package.__file__).parent / "static"


@cache
def _asset_version(name: str) -> str:
    """A short digest of an asset, so its URL changes whenever its bytes do."""
    digest = hashlib.sha256((static_dir() / name).read_bytes()).hexdigest()
    return digest[:12]


def static_url(name: str) -> str:
    """The URL of a file under web/static/, with a version that busts caches on change."""
    return f"{STATIC_PREFIX}{name}?v={_asset_version(name)}"


def duration(seconds: float | int | None) -> str:
    """A duration as m:ss, or h:mm:ss from an hour on; an em dash when unknown."""
    if seconds is None:
        return "—"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def duration_iso(seconds: float | int | None) -> str:
    """A duration as an ISO 8601 / HTML `<time datetime>` value such as PT3M3S."""
    total = round(float(seconds or 0))
    minutes, secs = divmod(total, 60)
    return f"PT{minutes}M{secs}S"


def crawler_meta(terms: Terms, base_url: str) -> list[tuple[str, str]]:
    """The `<meta name content>` pairs of PROTOCOL §9 for terms that reserve mining, else none.

    Every §9 header has its `<meta>` twin, Content-Usage (IETF AIPREF) included.
    """
    tags = meta_tags(terms, base_url)
    if tags and not any(name == "content-usage" for name, _ in tags):
        tags.append(("content-usage", "train-ai=n"))
    return tags


@cache
def environment() -> jinja2.Environment:
    """The one Jinja environment: the `web` package's templates, autoescaped, strict.

    Jinja is imported with it, when the first page is rendered: a node that only serves feeds
    and files never loads it.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATES_PACKAGE, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    env.filters["duration_iso"] = duration_iso
    env.globals["static_url"] = static_url
    env.globals["version"] = __version__
    return env


def page_context(request: web.Request) -> dict[str, Any]:
    """What every page shows: the node's name and did, and the crawler signals of its terms."""
    node = request.config_dict.get(NODE)
    if node is None:
        return {"artist_name": "Stave", "did": "", "crawler_meta": crawler_meta(Terms(), "/")}
    publisher = request.config_dict.get(PUBLISHER)
    terms = publisher.default_terms() if publisher is not None else Terms.from_config(node.config)
    return {
        "artist_name": node.config["node.name"] or "Stave",
        "did": node.identity.did,
        "crawler_meta": crawler_meta(terms, node.base_url),
    }


def render_html(name: str, context: Mapping[str, Any]) -> str:
    """The template `name` rendered with `context`."""
    return environment().get_template(name).render(context)


def render(
    request: web.Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """An HTML response of the template `name`, with the page context every page shares."""
    full = page_context(request)
    full.update(context or {})
    return web.Response(
        text=render_html(name, full), status=status, content_type="text/html", charset="utf-8"
    )


def render_error(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """The HTML error page for browsers: a status, a short title and a one-line reason."""
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "message": message},
        status=status,
    )

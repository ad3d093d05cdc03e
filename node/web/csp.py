"""What browsers are told about the node's pages: Content-Security-Policy, framing, caching of
the static assets.

Every HTML page gets a policy that lets it load only what the node itself serves (no CDN, no
third-party request: `'self'` everywhere, no inline script) and may not be framed
(`frame-ancestors 'none'` and `X-Frame-Options: DENY`, against clickjacking). Two exceptions:
`/embed/{id}` may be framed by any site (`allow_framing`), and the listener's `/timeline`
plays audio and shows covers from the followed artists' own nodes, so its media and images may
come from any http(s) origin.

Assets under /static/ linked with a `?v=<digest>` (templates.static_url) never change under that
URL and are cached for a year; the ES modules they import by plain relative URL are revalidated
on every load, so an upgrade never mixes old and new modules.
"""

from __future__ import annotations

from aiohttp import web

from node.web.templates import STATIC_PREFIX

_BASE = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "media-src": "'self'",
    "connect-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
# The listener's timeline plays followed artists' tracks from their own nodes.
_FOLLOWED_NODES = {"img-src": "'self' data: http: https:", "media-src": "'self' http: https:"}
_PATH_POLICIES = {"/timeline": _FOLLOWED_NODES}
POLICY_HEADER = "Content-Security-Policy"
IMMUTABLE = "public, max-age=31536000, immutable"


def policy(**directives: str) -> str:
    """The Content-Security-Policy value of the base policy with `directives` replaced
    (names with underscores for dashes: `frame_ancestors="*"`)."""
    merged = dict(_BASE)
    merged.update({name.replace("_", "-"): value for name, value in directives.items()})
    return "; ".join(f"{name} {value}" for name, value in merged.items())


def allow_framing(response: web.StreamResponse) -> None:
    """Let any site frame this response (the embeddable player)."""
    response.headers[POLICY_HEADER] = policy(frame_ancestors="*")


async def add_page_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the policy and framing headers on HTML, caching on static assets."""
    if request.path.startswith(STATIC_PREFIX) and response.status in (200, 206, 304):
        versioned = "v" in request.query
        response.headers["Cache-Control"] = IMMUTABLE if versioned else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return
    if response.content_type != "text/html":
        return
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if POLICY_HEADER not in response.headers:
        overrides = _PATH_POLICIES.get(request.path, {})
        response.headers[POLICY_HEADER] = policy(
            **{name.replace("-", "_"): value for name, value in overrides.items()}
        )
        response.headers["X-Frame-Options"] = "DENY"


def setup(app: web.Application) -> None:
    """Send the headers above on every response of `app`."""
    app.on_response_prepare.append(add_page_headers)

"""What the admin's page modules share: an admin page's response (never cached, never indexed,
no referrer) and the 303 every admin form answers with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from node.web.templates import render

ADMIN = "/admin"
STALE_FORM = "This form is out of date (its CSRF token). Reload the page and try again."


def see_other(location: str) -> web.Response:
    """A 303 to `location`: what every admin form answers, so a reload never posts again."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def admin_render(
    request: web.Request, name: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """An admin page: never cached, never indexed, never sent to another site as a referrer."""
    response = render(request, name, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def message_of(error: Exception) -> str:
    """What an error says to the artist: an HTTP error's text, else the error's one line."""
    if isinstance(error, web.HTTPException):
        return (error.text or error.reason).strip()
    return str(error)

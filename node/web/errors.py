"""Errors at the web edge: every StaveError mapped to an HTTP status in one place, and one shape.

Under `/api/` an error is JSON `{"error": {"code", "message"}}`; a browser (Accept: text/html)
gets a small HTML page; anything else plain text. No traceback ever reaches a client: a 5xx
says only that something failed, and its cause is logged here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from html import escape

from aiohttp import web

from node.errors import (
    CatalogError,
    ConfigError,
    ContentNotFound,
    FederationError,
    IdentityError,
    InvalidCID,
    KuboError,
    ReleaseNotFound,
    SignatureError,
    StaveError,
    StoreError,
    TrackNotFound,
    UnsupportedMedia,
    UsageError,
    VerificationError,
)

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
STATUS_OF_ERROR: tuple[tuple[type[StaveError], int, str], ...] = (
    (TrackNotFound, 404, "track_not_found"),
    (ReleaseNotFound, 404, "release_not_found"),
    (ContentNotFound, 404, "content_not_found"),
    (InvalidCID, 400, "invalid_cid"),
    (UsageError, 400, "bad_request"),
    (UnsupportedMedia, 415, "unsupported_media"),
    (SignatureError, 401, "signature_refused"),
    (VerificationError, 422, "verification_failed"),
    (KuboError, 502, "upstream_failed"),
    (FederationError, 502, "upstream_failed"),
    (StoreError, 500, "internal_error"),
    (CatalogError, 500, "internal_error"),
    (ConfigError, 500, "internal_error"),
    (IdentityError, 500, "internal_error"),
    (StaveError, 500, "internal_error"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(error: StaveError) -> tuple[int, str]:
    """The HTTP status and error code a StaveError is answered with."""
    for kind, status, code in STATUS_OF_ERROR:
        if isinstance(error, kind):
            return status, code
    return 500, "internal_error"  # pragma: no cover - StaveError is the last row


def wants_json(request: web.BaseRequest) -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def wants_html(request: web.BaseRequest) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def error_response(
    request: web.BaseRequest,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error answer in the shape the client asked for (JSON for /api/, HTML, or text)."""
    if wants_json(request):
        body = json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)
        response = web.Response(
            status=status, text=body, content_type="application/json", headers=headers
        )
    elif wants_html(request):
        response = web.Response(
            status=status,
            text=_html_page(status, message),
            content_type="text/html",
            headers=headers,
        )
    else:
        response = web.Response(status=status, text=message + "\n", headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _html_page(status: int, message: str) -> str:
    title = f"{status} {escape(_reason(status))}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>"
        f"<body><main><h1>{title}</h1><p>{escape(message)}</p>"
        '<p><a href="/">Back to the artist page</a></p></main></body></html>\n'
    )


def _reason(status: int) -> str:
    try:
        from http import HTTPStatus

        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _code_of(status: int) -> str:
    return _reason(status).lower().replace(" ", "_").replace("-", "_")


def _message_of(error: web.HTTPException) -> str:
    # aiohttp's default text is "404: Not Found"; a handler's own text is kept.
    text = error.text or ""
    if not text or text == f"{error.status}: {error.reason}":
        return error.reason
    return text.strip()


# Headers an HTTP error carries that the client needs (Allow on 405, WWW-Authenticate on 401, …).
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After", "Content-Range", "Location")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every error a handler raises into an answer; log each 5xx with its cause."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status >= 500:
            log.error("%s %s: %s", request.method, request.path, e.reason)
        kept = {name: e.headers[name] for name in _KEPT_HEADERS if name in e.headers}
        return error_response(request, e.status, _code_of(e.status), _message_of(e), kept)
    except StaveError as e:
        status, code = status_of(e)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, e, exc_info=e)
            return error_response(request, status, code, _reason(status))
        return error_response(request, status, code, str(e))
    except (ConnectionResetError, BrokenPipeError):
        raise  # the client went away; nothing to answer
    except Exception as e:  # the outermost handler: log the cause, tell the client nothing
        log.error("%s %s failed", request.method, request.path, exc_info=e)
        return error_response(request, 500, "internal_error", _reason(500))

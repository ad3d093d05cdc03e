"""The admin token: read from its file (again whenever the file changes), compared in constant
time, and wrong ones counted against the client (node/web/limits.py). `AdminToken.authorize`
checks the admin API's bearer credential, `Authorization: Bearer <admin token>`.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from aiohttp import web

from node.errors import IdentityError
from node.web.limits import limits_of
from node.web.state import NODE


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=message, headers={"WWW-Authenticate": 'Bearer realm="stave"'})


class AdminToken:
    """The admin token of one app, re-read when its file changes, and the credential checks."""

    def __init__(self) -> None:
        self._token: bytes | None = None
        self._token_path: Path | None = None
        self._token_stamp: tuple[int, int, int] | None = None

    async def on_startup(self, app: web.Application) -> None:
        """Read the admin token once: a node without one cannot start."""
        node = app[NODE]
        self._token_path = node.data.token_path
        if self.admin_token() is None:
            raise IdentityError(f"{node.data.token_path}: the admin token is empty")

    def admin_token(self) -> bytes | None:
        """The admin token as its file holds it now (one stat per call; read when it changed).

        A file that cannot be read or is empty leaves no valid token: every credential fails.
        """
        if self._token_path is None:
            return None
        try:
            status = os.stat(self._token_path)
            stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
            if stamp != self._token_stamp:
                token = self._token_path.read_text(encoding="utf-8").strip()
                self._token, self._token_stamp = token.encode("utf-8") or None, stamp
        except OSError:
            self._token, self._token_stamp = None, None
        return self._token

    def token_accepted(self, request: web.Request, candidate: str) -> bool:
        """Whether `candidate` is the admin token; a wrong one counts against the client, and
        a client over its limit of wrong ones gets 429 (HTTPTooManyRequests) whatever it sent."""
        limits = limits_of(request)
        if limits is not None:
            limits.refuse_if_throttled(request)
        token = self.admin_token()
        if token is not None and hmac.compare_digest(candidate.strip().encode("utf-8"), token):
            return True
        if limits is not None:
            limits.failed(request)
        return False

    def authorize(self, request: web.Request) -> None:
        """Return if the request carries the admin token; raise 401 (429 when throttled)."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("this route needs the admin token: Authorization: Bearer <token>")
        if not self.token_accepted(request, credentials):
            raise _unauthorized("the admin token is not valid")

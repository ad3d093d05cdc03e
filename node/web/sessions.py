"""Admin sessions for the /admin pages: a login by admin token becomes a session cookie.

- The session id is 32 random bytes (`secrets.token_urlsafe`), sent only as the cookie
  `stave_admin` (HttpOnly, SameSite=Strict, Path=/admin, Secure when the request came over
  HTTPS). The server keeps, in memory, only the SHA-256 of each id, with an absolute expiry of
  `SESSION_SECONDS`; a restart of the node logs everyone out.
- Each session has its own CSRF token, which every admin form carries in a hidden field (or an
  XHR in the `X-CSRF-Token` header); every POST is checked with `hmac.compare_digest`.
- The login form itself carries a token too, matched against a short-lived `stave_login`
  cookie (a double-submit token: there is no session yet to hold it), so another site cannot
  log a browser in to this node with credentials of its choosing.

"Came over HTTPS": the connection was TLS, or a reverse proxy said so with
`X-Forwarded-Proto: https` (docs/vps.md's nginx and Caddy set it). Trusting that header can
only add the Secure flag to the sender's own cookie, never remove it, so it needs no list of
trusted proxies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

SESSION_COOKIE = "stave_admin"
LOGIN_COOKIE = "stave_login"
COOKIE_PATH = "/admin"
SESSION_SECONDS = 12 * 3600
LOGIN_SECONDS = 3600
# Only a correct admin token makes a session, so this only bounds memory if one leaks.
MAX_SESSIONS = 256
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass
class Session:
    """One logged-in browser: its CSRF token, when it ends, and notices for its next page."""

    csrf: str
    expires: float
    notices: list[tuple[str, str]] = field(default_factory=list)

    def notify(self, text: str, kind: str = "done") -> None:
        """Show `text` on the next admin page this browser loads (`kind`: done or error)."""
        self.notices.append((kind, text))

    def take_notices(self) -> list[tuple[str, str]]:
        notices, self.notices = self.notices, []
        return notices

    def csrf_matches(self, candidate: str | None) -> bool:
        """Whether `candidate` is this session's CSRF token (constant-time)."""
        return candidate is not None and hmac.compare_digest(
            candidate.encode("utf-8"), self.csrf.encode("utf-8")
        )


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


def came_over_https(request: web.BaseRequest) -> bool:
    """Whether the browser reached the node over HTTPS (TLS here, or a proxy saying so)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


class Sessions:
    """The admin sessions of one running node, in memory."""

    def __init__(self, lifetime: float = SESSION_SECONDS) -> None:
        self.lifetime = lifetime
        self._sessions: dict[bytes, Session] = {}

    def start(self, response: web.StreamResponse, request: web.BaseRequest) -> Session:
        """A new session, its cookie set on `response`."""
        self._forget_expired()
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].expires)
            del self._sessions[oldest]
        session_id = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), expires=time.time() + self.lifetime)
        self._sessions[_key(session_id)] = session
        _set_cookie(response, request, SESSION_COOKIE, session_id, int(self.lifetime))
        return session

    def of(self, request: web.BaseRequest) -> Session | None:
        """The live session whose cookie `request` carries, or None."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is not None and session.expires <= time.time():
            del self._sessions[key]
            return None
        return session

    def end(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """End the session of `request`, if any, and clear its cookie on `response`."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self._sessions.pop(_key(session_id), None)
        response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)

    def _forget_expired(self) -> None:
        now = time.time()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)


def login_token(request: web.BaseRequest) -> str:
    """The token the login form carries: the one in the browser's login cookie, or a new one."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if len(current) >= 32 else secrets.token_urlsafe(32)


def set_login_cookie(response: web.StreamResponse, request: web.BaseRequest, token: str) -> None:
    _set_cookie(response, request, LOGIN_COOKIE, token, LOGIN_SECONDS)


def login_token_matches(request: web.BaseRequest, candidate: str | None) -> bool:
    """Whether the login form's token is the one in the browser's login cookie."""
    cookie = request.cookies.get(LOGIN_COOKIE)
    return (
        cookie is not None
        and candidate is not None
        and hmac.compare_digest(cookie.encode("utf-8"), candidate.encode("utf-8"))
    )


def _set_cookie(
    response: web.StreamResponse, request: web.BaseRequest, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=came_over_https(request),
    )

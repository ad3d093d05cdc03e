"""The artist's admin pages under /admin: log in with the admin token, publish, edit, withdraw,
follow other nodes, and see what Kubo has pinned; the release pages are node/web/release_admin.py.

Every page works without JavaScript (web/static/admin.js only adds the upload progress bar and
drag and drop). A login becomes a session cookie and every form carries the session's CSRF
token (node/web/sessions.py). Uploads go through the admin API's own handler
(`TrackUploads.add_tracks` in node/web/tracks.py: the same streaming, size cap and
all-or-nothing publishing), with the session and its CSRF token, sent in the `X-CSRF-Token`
header by the script or in the form's `?csrf=` by a plain form post, in place of the bearer
token. Follows use the running node's
federation service (node/federation/follows.py); fediverse followers and blocked domains
go through node/fediverse/followers.py, as `stave fediverse` does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from node import pinning
from node.catalog import TrackRecord
from node.errors import FederationError, StaveError, UsageError, VerificationError
from node.federation.outcomes import follow_json
from node.fediverse.followers import block_domain, follower_json, remove_follower, unblock_domain
from node.web.admin_common import ADMIN, STALE_FORM, admin_render, message_of, see_other
from node.web.release_admin import RELEASES, ReleaseAdmin
from node.web.requests import track_id_from_path
from node.web.sessions import (
    COOKIE_PATH,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    Session,
    Sessions,
    login_token,
    login_token_matches,
    set_login_cookie,
)
from node.web.state import FEDERATION, NODE, PUBLISHER
from node.web.tracks import TRACK_FIELDS, track_choices
from node.web.views import TrackView

FOLLOWS = ADMIN + "/follows"
FOLLOWERS = ADMIN + "/followers"
AI_TRAINING_CHOICES = (
    ("notAllowed", "Not allowed without my permission"),
    ("constrained", "Only on my conditions"),
    ("allowed", "Allowed"),
)
PIN_WORDS = {"pending": "Pinning…", "failed": "Pinning failed", "done": "Pinned"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PageHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
FormHandler = Callable[[web.Request, Session, Mapping[str, str]], Awaitable[web.StreamResponse]]


class AdminPages(ReleaseAdmin):
    """The admin use cases behind a browser session instead of a bearer token."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = Sessions()

    # --- credentials ------------------------------------------------------------------------

    def authorize(self, request: web.Request) -> None:
        """Return if `request` has a live session and its CSRF token (header or `?csrf=`)."""
        session = self.sessions.of(request)
        if session is None:
            raise web.HTTPUnauthorized(text="log in at /admin first")
        candidate = request.headers.get(CSRF_HEADER) or request.query.get(CSRF_FIELD)
        if not session.csrf_matches(candidate):
            raise web.HTTPForbidden(text="the form is out of date (CSRF token); reload the page")

    def page(self, handler: PageHandler) -> Handler:
        """`handler` behind the session: without one, the login page (GET) or back to it."""

        async def with_session(request: web.Request) -> web.StreamResponse:
            session = self.sessions.of(request)
            if session is None:
                if request.method == "GET":
                    return self.login_page(request)
                return see_other(ADMIN)
            return await handler(request, session)

        return with_session

    def form(self, handler: FormHandler) -> Handler:
        """`handler` for a POSTed admin form: session required, CSRF token checked first."""

        async def checked(request: web.Request, session: Session) -> web.StreamResponse:
            posted = await request.post()
            fields = {k: v for k, v in posted.items() if isinstance(v, str)}
            if not session.csrf_matches(fields.get(CSRF_FIELD)):
                return self.refused(request, STALE_FORM)
            return await handler(request, session, fields)

        return self.page(checked)

    def refused(self, request: web.Request, message: str) -> web.Response:
        return admin_render(request, "admin_refused.html", {"message": message}, status=403)

    # --- logging in and out ---------------------------------------------------------------------

    def login_page(
        self, request: web.Request, error: str | None = None, status: int = 200
    ) -> web.Response:
        token = login_token(request)
        response = admin_render(
            request, "admin_login.html", {"login_csrf": token, "error": error}, status=status
        )
        set_login_cookie(response, request, token)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        """`POST /admin/login`: the admin token in, a session cookie out."""
        posted = await request.post()
        fields = {k: v for k, v in posted.items() if isinstance(v, str)}
        if not login_token_matches(request, fields.get(CSRF_FIELD)):
            return self.login_page(
                request, "That login form was out of date. Please try again.", status=403
            )
        if not self.token_accepted(request, fields.get("token", "")):
            return self.login_page(
                request,
                "That is not this node’s admin token. `stave admin-token` prints it.",
                status=401,
            )
        response = see_other(ADMIN)
        self.sessions.start(response, request)
        response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
        return response

    async def logout(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/logout`: end the session."""
        response = see_other(ADMIN)
        self.sessions.end(request, response)
        return response

    # --- the dashboard and uploads ----------------------------------------------------------

    async def dashboard(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin`: the node at a glance, the upload form, every track."""
        node = request.config_dict[NODE]
        records = await node.catalog.tracks(include_withdrawn=True)
        live = [r for r in records if r.withdrawn_at is None]
        feed = await node.catalog.latest_feed()
        kubo = pinning.uses_kubo(node)
        pins = {r.id: await _pin_words(node.catalog, r) for r in live} if kubo else {}
        queue = await pinning.queue_state(node.catalog) if kubo else None
        follows = await request.config_dict[FEDERATION].federation.catalog.follows()
        return admin_render(
            request,
            "admin_dashboard.html",
            {
                "session": session,
                "notices": session.take_notices(),
                "tracks": [TrackView.of(r) for r in live],
                "withdrawn": [r for r in records if r.withdrawn_at is not None],
                "feed": feed,
                "base_url": node.base_url,
                "kubo": kubo,
                "pins": pins,
                "pin_queue": queue.notice() if queue and queue.left else None,
                "follow_count": len(follows),
                "max_upload_mib": node.config["server.max_upload_bytes"] // (1024 * 1024),
                "ai_choices": AI_TRAINING_CHOICES,
                "default_terms": request.config_dict[PUBLISHER].default_terms(),
            },
        )

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """`POST /admin/upload`: publish uploaded files. A script gets the API's JSON answer;
        a plain form post is sent back to the dashboard with what happened."""
        if request.headers.get("X-Requested-With") == "XMLHttpRequest":
            return await self.add_tracks(request)
        session = self.sessions.of(request)
        if session is None:
            return see_other(ADMIN)
        try:
            self.authorize(request)
        except web.HTTPForbidden:
            return self.refused(request, STALE_FORM)
        try:
            response = await self.add_tracks(request)
        except (StaveError, web.HTTPClientError) as e:
            session.notify(f"Nothing was published: {message_of(e)}", "error")
            return see_other(ADMIN)
        assert isinstance(response, web.Response) and response.text is not None
        titles = [t["title"] for t in json.loads(response.text)["tracks"]]
        session.notify("Published " + ", ".join(f"“{t}”" for t in titles) + ".")
        return see_other(ADMIN)

    # --- editing and withdrawing ----------------------------------------------------------------

    async def edit_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin/tracks/{id}`: the form to change a track's title and terms."""
        track = await self._live_track(request)
        return self._edit_form(request, session, track, None, {})

    def _edit_form(
        self,
        request: web.Request,
        session: Session,
        track: TrackRecord,
        error: str | None,
        fields: Mapping[str, str],
        status: int = 200,
    ) -> web.Response:
        view = TrackView.of(track)
        values = _form_values(view)
        values.update({k: v for k, v in fields.items() if k in values})
        return admin_render(
            request,
            "admin_edit.html",
            {
                "session": session,
                "track": view,
                "values": values,
                "error": error,
                "ai_choices": AI_TRAINING_CHOICES,
            },
            status=status,
        )

    async def edit(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/tracks/{id}`: publish the next revision with what the form changed."""
        track = await self._live_track(request)
        view = TrackView.of(track)
        current = _form_values(view)
        changed = {
            name: fields[name].strip()
            for name in TRACK_FIELDS
            if name in fields and fields[name].strip() != current[name]
        }
        if not changed:
            session.notify(f"“{view.title}”: nothing changed.")
            return see_other(ADMIN)
        try:
            choices = track_choices(changed, empty_is_absent=False)
            async with self._writing:
                await request.config_dict[PUBLISHER].edit(track.id, choices)
        except UsageError as e:
            return self._edit_form(request, session, track, str(e), fields, status=400)
        title = changed.get("title", view.title)
        session.notify(f"Published revision {track.revision + 1} of “{title}”.")
        return see_other(ADMIN)

    async def withdraw_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin/tracks/{id}/withdraw`: are you sure?"""
        track = await self._live_track(request)
        return admin_render(
            request, "admin_withdraw.html", {"session": session, "track": TrackView.of(track)}
        )

    async def withdraw(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/tracks/{id}/withdraw`: withdraw the track (after the confirmation)."""
        track = await self._live_track(request)
        async with self._writing:
            await request.config_dict[PUBLISHER].withdraw(track.id)
        session.notify(f"Withdrew “{track.title}”. Followers remove it at their next sync.")
        return see_other(ADMIN)

    async def _live_track(self, request: web.Request) -> TrackRecord:
        track_id = track_id_from_path(request.match_info["id"])
        track = await request.config_dict[NODE].catalog.track(track_id)
        if track.withdrawn_at is not None:
            raise web.HTTPGone(text=f"“{track.title}” was withdrawn on {track.withdrawn_at[:10]}")
        return track

    # --- follows ----------------------------------------------------------------------------

    async def follows_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin/follows`: the artists this node follows, how their syncs went."""
        catalog = request.config_dict[FEDERATION].federation.catalog
        follows = [follow_json(f) for f in await catalog.follows()]
        return admin_render(
            request,
            "admin_follows.html",
            {"session": session, "notices": session.take_notices(), "follows": follows},
        )

    async def follow(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/follows`: follow the node at a URL (and mirror it, when ticked)."""
        runtime = request.config_dict[FEDERATION]
        url = fields.get("url", "").strip()
        if not url:
            return _to_follows(session, "Give the address of the node to follow.", "error")
        try:
            outcome = await runtime.follows.follow(url, mirror=fields.get("mirror") == "on")
        except (UsageError, FederationError, VerificationError) as e:
            return _to_follows(session, f"Could not follow {url}: {e}", "error")
        runtime.wake()
        name = outcome.follow.name or outcome.follow.artist
        if outcome.sync.verdict == "rejected":
            reason = outcome.sync.reason
            return _to_follows(
                session, f"Following {name}, but its feed was refused: {reason}", "error"
            )
        return _to_follows(session, f"Following {name}: {outcome.follow.track_count} tracks.")

    async def set_mirror(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/follows/mirror`: turn mirroring of a followed artist on or off."""
        runtime = request.config_dict[FEDERATION]
        mirror = fields.get("mirror") == "on"
        try:
            follow = await runtime.follows.find(fields.get("did", ""))
            errors = await runtime.follows.set_mirror(follow.artist, mirror)
        except (UsageError, FederationError) as e:
            return _to_follows(session, str(e), "error")
        name = follow.name or follow.artist
        if errors:
            failed = f"{len(errors)} file(s) could not be fetched: {errors[0]}"
            return _to_follows(session, f"Mirroring {name}, but {failed}", "error")
        return _to_follows(session, f"Mirroring of {name} is {'on' if mirror else 'off'}.")

    async def unfollow(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/follows/unfollow`: stop following an artist."""
        runtime = request.config_dict[FEDERATION]
        try:
            follow = await runtime.follows.unfollow(fields.get("did", ""))
        except (UsageError, FederationError) as e:
            return _to_follows(session, str(e), "error")
        return _to_follows(session, f"No longer following {follow.name or follow.artist}.")

    # --- fediverse followers ------------------------------------------------------------------

    async def followers_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin/followers`: who follows the artist on the fediverse; blocked domains."""
        catalog = request.config_dict[NODE].catalog
        context = {
            "session": session,
            "notices": session.take_notices(),
            "followers": [follower_json(f) for f in await catalog.fediverse_followers()],
            "blocked": await catalog.blocked_domains(),
        }
        return admin_render(request, "admin_followers.html", context)

    async def remove_follower(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/followers/remove`: stop delivering to one follower."""
        try:
            follower = await remove_follower(
                request.config_dict[NODE].catalog, fields.get("actor", "")
            )
        except UsageError as e:
            return _to_followers(session, str(e), "error")
        return _to_followers(session, f"Removed {follower.acct or follower.actor}.")

    async def block_domain(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/followers/block`: remove a domain's followers and refuse its requests."""
        domain = fields.get("domain", "")
        try:
            removed = await block_domain(request.config_dict[NODE].catalog, domain)
        except UsageError as e:
            return _to_followers(session, str(e), "error")
        return _to_followers(
            session, f"Blocked {domain.strip().lower()}: {removed} follower(s) removed."
        )

    async def unblock_domain(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/followers/unblock`: take a domain's requests again."""
        try:
            domain = await unblock_domain(
                request.config_dict[NODE].catalog, fields.get("domain", "")
            )
        except UsageError as e:
            return _to_followers(session, str(e), "error")
        return _to_followers(session, f"Unblocked {domain}.")


def _to_followers(session: Session, text: str, kind: str = "done") -> web.Response:
    session.notify(text, kind)
    return see_other(FOLLOWERS)


def _form_values(view: TrackView) -> dict[str, str]:
    """What the edit form shows of a track now, by field name (`TRACK_FIELDS`)."""
    return {
        "title": view.title,
        "license": view.terms.license,
        "copyright": view.terms.copyright,
        "aiTraining": view.terms.ai_training,
    }


def _to_follows(session: Session, text: str, kind: str = "done") -> web.Response:
    """Back to the follows page, where every follows form returns, with `text` shown there."""
    session.notify(text, kind)
    return see_other(FOLLOWS)


async def _pin_words(catalog: Any, track: TrackRecord) -> str:
    record = await catalog.pin(track.audio_cid)
    if record is None:
        return "Not queued"
    if record.want == "unpinned":
        return "Unpinning"
    words = PIN_WORDS.get(record.state, record.state)
    if record.last_error and record.state != "done":
        words += f" ({record.last_error})"
    return str(words)


def setup(app: web.Application) -> None:
    """Add the /admin pages to `app`; the admin token is read when it starts."""
    pages = AdminPages()
    app.on_startup.append(pages.on_startup)
    router = app.router
    router.add_get(ADMIN, pages.page(pages.dashboard))
    router.add_post(ADMIN + "/login", pages.login)
    router.add_post(ADMIN + "/logout", pages.form(pages.logout))
    router.add_post(ADMIN + "/upload", pages.upload)
    router.add_get(ADMIN + "/tracks/{id}", pages.page(pages.edit_page))
    router.add_post(ADMIN + "/tracks/{id}", pages.form(pages.edit))
    router.add_get(ADMIN + "/tracks/{id}/withdraw", pages.page(pages.withdraw_page))
    router.add_post(ADMIN + "/tracks/{id}/withdraw", pages.form(pages.withdraw))
    router.add_get(RELEASES, pages.page(pages.releases_page))
    router.add_post(RELEASES + "/upload", pages.upload_release)
    router.add_get(RELEASES + "/{id}", pages.page(pages.release_page))
    router.add_post(RELEASES + "/{id}", pages.form(pages.edit_release))
    router.add_post(RELEASES + "/{id}/withdraw", pages.form(pages.withdraw_release))
    router.add_get(FOLLOWS, pages.page(pages.follows_page))
    router.add_post(FOLLOWS, pages.form(pages.follow))
    router.add_post(ADMIN + "/follows/mirror", pages.form(pages.set_mirror))
    router.add_post(ADMIN + "/follows/unfollow", pages.form(pages.unfollow))
    router.add_get(FOLLOWERS, pages.page(pages.followers_page))
    router.add_post(FOLLOWERS + "/remove", pages.form(pages.remove_follower))
    router.add_post(FOLLOWERS + "/block", pages.form(pages.block_domain))
    router.add_post(FOLLOWERS + "/unblock", pages.form(pages.unblock_domain))

"""The admin's release pages under /admin/releases: upload several files or a zip as one
release, then change its title, kind, date, credits, description, UPC and track order (each
save signs its next revision), or withdraw it.

`ReleaseAdmin` is a part of the admin pages (node/web/admin.py's `AdminPages` derives from
it): the handlers here run behind its session and CSRF checks, which `AdminPages.page` and
`AdminPages.form` add when the routes are registered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from node.catalog import ReleaseRecord
from node.errors import ReleaseNotFound, StaveError, TrackNotFound, UsageError
from node.release import RELEASE_KINDS
from node.releases import ReleaseChoices, ReleasePublisher
from node.web.admin_common import ADMIN, STALE_FORM, admin_render, message_of, see_other
from node.web.release_uploads import RELEASE_FIELDS, ReleaseUploads, release_form_choices
from node.web.sessions import Session, Sessions
from node.web.state import NODE, PUBLISHER

RELEASES = ADMIN + "/releases"


class ReleaseAdmin(ReleaseUploads):
    """The release pages of the admin; `sessions` is the admin's (see `AdminPages`)."""

    sessions: Sessions

    async def releases_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin/releases`: the upload form and every release, newest first."""
        node = request.config_dict[NODE]
        records = await node.catalog.releases(include_withdrawn=True)
        return admin_render(
            request,
            "admin_releases.html",
            {
                "session": session,
                "notices": session.take_notices(),
                "releases": [r for r in records if r.withdrawn_at is None],
                "withdrawn": [r for r in records if r.withdrawn_at is not None],
                "kinds": RELEASE_KINDS,
                "max_upload_mib": node.config["server.max_upload_bytes"] // (1024 * 1024),
                "default_terms": request.config_dict[PUBLISHER].default_terms(),
            },
        )

    async def upload_release(self, request: web.Request) -> web.StreamResponse:
        """`POST /admin/releases/upload`: publish the upload as one release. A script gets the
        JSON answer; a plain form post goes to the new release's page, or back with why not."""
        if request.headers.get("X-Requested-With") == "XMLHttpRequest":
            return await self.add_release(request)
        session = self.sessions.of(request)
        if session is None:
            return see_other(ADMIN)
        try:
            self.authorize(request)
        except web.HTTPForbidden:
            return admin_render(request, "admin_refused.html", {"message": STALE_FORM}, status=403)
        try:
            response = await self.add_release(request)
        except (StaveError, web.HTTPClientError) as e:
            session.notify(f"Nothing was published: {message_of(e)}", "error")
            return see_other(RELEASES)
        assert isinstance(response, web.Response) and response.text is not None
        release = json.loads(response.text)["release"]
        count = len(release["tracks"])
        session.notify(f"Published “{release['title']}”, {release['kind']}, {count} track(s).")
        return see_other(f"{RELEASES}/{release['id'].removeprefix('urn:uuid:')}")

    async def release_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        """`GET /admin/releases/{id}`: the form to change a release and its track order."""
        record = await self._live_release(request)
        return await self._release_form(request, session, record, None, {})

    async def _release_form(
        self,
        request: web.Request,
        session: Session,
        record: ReleaseRecord,
        error: str | None,
        fields: Mapping[str, str],
        status: int = 200,
    ) -> web.Response:
        catalog = request.config_dict[NODE].catalog
        tracks = []
        for entry in record.document["tracks"]:
            try:
                title = (await catalog.track(entry["id"])).title
            except TrackNotFound:
                title = entry["id"]
            uuid = entry["id"].removeprefix("urn:uuid:")
            tracks.append(
                {
                    "uuid": uuid,
                    "title": title,
                    "disc": fields.get(f"disc-{uuid}", entry["disc"]),
                    "number": fields.get(f"number-{uuid}", entry["number"]),
                }
            )
        values = _form_values(record)
        values.update({k: v for k, v in fields.items() if k in values})
        return admin_render(
            request,
            "admin_release.html",
            {
                "session": session,
                "notices": session.take_notices(),
                "release": record,
                "uuid": record.id.removeprefix("urn:uuid:"),
                "values": values,
                "tracks": tracks,
                "kinds": RELEASE_KINDS,
                "error": error,
            },
            status=status,
        )

    async def edit_release(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/releases/{id}`: sign the next revision with what the form changed."""
        record = await self._live_release(request)
        current = _form_values(record)
        # Browsers send a textarea's lines ended by CRLF (HTML: form submission).
        given = {n: fields[n].replace("\r\n", "\n").strip() for n in RELEASE_FIELDS if n in fields}
        changed = {name: value for name, value in given.items() if value != current[name]}
        here = f"{RELEASES}/{record.id.removeprefix('urn:uuid:')}"
        try:
            choices = _changes(changed)
            places = _places(record, fields)
            if places is not None:
                choices = replace(choices, places=places)
            if choices == ReleaseChoices():
                session.notify(f"“{record.title}”: nothing changed.")
                return see_other(here)
            async with self._writing:
                release = await ReleasePublisher(request.config_dict[NODE]).edit_release(
                    record.id, choices
                )
        except UsageError as e:
            return await self._release_form(request, session, record, str(e), fields, 400)
        session.notify(f"Published revision {release['revision']} of “{release['title']}”.")
        return see_other(here)

    async def withdraw_release(
        self, request: web.Request, session: Session, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """`POST /admin/releases/{id}/withdraw`: withdraw it, and its tracks unless kept."""
        record = await self._live_release(request)
        keep = fields.get("keepTracks") == "on"
        async with self._writing:
            _, tracks = await ReleasePublisher(request.config_dict[NODE]).withdraw_release(
                record.id, keep_tracks=keep
            )
        session.notify(
            f"Withdrew “{record.title}” and {len(tracks)} track(s)."
            " Followers remove them at their next sync."
        )
        return see_other(RELEASES)

    async def _live_release(self, request: web.Request) -> ReleaseRecord:
        wanted = request.match_info["id"]
        try:
            record: ReleaseRecord = await request.config_dict[NODE].catalog.release(
                "urn:uuid:" + wanted
            )
        except ReleaseNotFound as e:
            raise web.HTTPNotFound(text=str(e)) from e
        if record.withdrawn_at is not None:
            raise web.HTTPGone(text=f"“{record.title}” was withdrawn on {record.withdrawn_at[:10]}")
        return record


def _form_values(record: ReleaseRecord) -> dict[str, str]:
    """What the edit form shows of a release now, by field name (`RELEASE_FIELDS`)."""
    document = record.document
    return {
        "title": record.title,
        "kind": record.kind,
        "released": record.released,
        "credits": "\n".join(f"{c['role']}: {c['name']}" for c in document.get("credits", [])),
        "description": document.get("description", ""),
        "upc": document.get("upc", ""),
    }


def _changes(changed: Mapping[str, str]) -> ReleaseChoices:
    """The choices for the fields the form changed; a field emptied removes what it held."""
    choices = release_form_choices(changed)
    removed: dict[str, Any] = {}
    if changed.get("credits") == "":
        removed["credits"] = ()
    for name in ("description", "upc"):
        if changed.get(name) == "":
            removed[name] = ""
    for name in ("title", "kind", "released"):
        if changed.get(name) == "":
            raise UsageError(f"{name}: must not be empty")
    return replace(choices, **removed)


def _places(
    record: ReleaseRecord, fields: Mapping[str, str]
) -> tuple[tuple[str, int, int], ...] | None:
    """The tracks' places from the form's disc and number fields, None if none moved."""
    places = []
    moved = False
    for entry in record.document["tracks"]:
        uuid = entry["id"].removeprefix("urn:uuid:")
        try:
            disc = int(fields.get(f"disc-{uuid}", entry["disc"]))
            number = int(fields.get(f"number-{uuid}", entry["number"]))
        except ValueError as e:
            raise UsageError("order: disc and number must be whole numbers") from e
        moved |= (disc, number) != (entry["disc"], entry["number"])
        places.append((entry["id"], disc, number))
    return tuple(places) if moved else None

"""What the pages show of releases (`ReleaseView`): the artist page's releases and singles, and
one release's tracks in play order with its credits and terms.

Read from the catalog's current releases (node/catalog/releases.py) and tracks; a release's
entries are shown with the track's current signed manifest, and an entry whose track is gone
(withdrawn since) is left out rather than shown without its manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.catalog import TrackRecord
from node.terms import Terms
from node.web.views import TrackView, no_ai_words

if TYPE_CHECKING:
    from node.catalog import Catalog

KIND_WORDS = {"album": "Album", "ep": "EP", "single": "Single", "compilation": "Compilation"}


@dataclass(frozen=True)
class ReleaseTrack:
    """One track of a release: where it stands (disc, number) and what its card shows."""

    disc: int
    number: int
    track: TrackView


@dataclass(frozen=True)
class ReleaseView:
    """What a page shows of one current release."""

    id: str
    uuid: str
    url: str
    feed_url: str
    title: str
    kind: str
    kind_words: str
    released: str
    published: str
    revision: int
    artist: str
    cover_cid: str | None
    cover_type: str
    credits: list[tuple[str, str]]
    description: str
    upc: str
    own_terms: Terms | None
    tracks: list[ReleaseTrack]
    discs: int
    duration_seconds: float | None
    document_json: str
    document_compact: str

    @classmethod
    def of(cls, document: Mapping[str, Any], tracks: Mapping[str, TrackRecord]) -> ReleaseView:
        """The view of a signed release `document`, its entries shown with `tracks` by id."""
        bare = str(document["id"]).removeprefix("urn:uuid:")
        shown = [
            ReleaseTrack(e["disc"], e["number"], TrackView.of(tracks[e["id"]]))
            for e in document["tracks"]  # in play order, as signed
            if e["id"] in tracks
        ]
        durations = [t.track.duration_seconds for t in shown]
        cover: Mapping[str, Any] = document.get("cover") or {}
        return cls(
            id=str(document["id"]),
            uuid=bare,
            url=f"/releases/{bare}",
            feed_url=f"/releases/{bare}/feed.rss",
            title=str(document["title"]),
            kind=str(document["kind"]),
            kind_words=KIND_WORDS.get(str(document["kind"]), str(document["kind"])),
            released=str(document["released"]),
            published=str(document["published"]),
            revision=int(document["revision"]),
            artist=str(document["artist"]),
            cover_cid=cover.get("cid"),
            cover_type=str(cover.get("mediaType", "")),
            credits=[(str(c["role"]), str(c["name"])) for c in document.get("credits", [])],
            description=str(document.get("description", "")),
            upc=str(document.get("upc", "")),
            own_terms=Terms.from_json(document["terms"]) if "terms" in document else None,
            tracks=shown,
            discs=len({t.disc for t in shown}),
            duration_seconds=(
                sum(d for d in durations if d is not None) if all(durations) and shown else None
            ),
            document_json=json.dumps(document, indent=2, ensure_ascii=False),
            document_compact=json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        )

    @property
    def kind_noun(self) -> str:
        """The kind inside a sentence: "album", "EP", "single", "compilation"."""
        return self.kind_words if self.kind == "ep" else self.kind_words.lower()

    def terms(self, feed_terms: Terms) -> Terms:
        """The terms this release is under: its own, else the feed's."""
        return self.own_terms if self.own_terms is not None else feed_terms

    def no_ai_words(self, feed_terms: Terms) -> str:
        return no_ai_words(self.terms(feed_terms))


@dataclass(frozen=True)
class ReleaseLink:
    """How a track page names the release it is on."""

    title: str
    kind_words: str
    url: str

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> ReleaseLink:
        kind = str(document["kind"])
        bare = str(document["id"]).removeprefix("urn:uuid:")
        return cls(str(document["title"]), KIND_WORDS.get(kind, kind), f"/releases/{bare}")


async def current_tracks(catalog: Catalog) -> dict[str, TrackRecord]:
    """The published (not withdrawn) tracks by id."""
    return {track.id: track for track in await catalog.tracks()}


async def discography(catalog: Catalog) -> tuple[list[ReleaseView], list[TrackView]]:
    """The artist page's two lists: current releases newest first, and the singles — the
    published tracks in no current release — newest first."""
    records = await catalog.tracks()
    by_id = {track.id: track for track in records}
    documents = [record.document for record in await catalog.releases()]
    in_release = {entry["id"] for document in documents for entry in document["tracks"]}
    singles = [TrackView.of(t) for t in records if t.id not in in_release]
    return [ReleaseView.of(document, by_id) for document in documents], singles

"""The catalog's releases: each release's current signed document, every revision of it, the
tracks it lists, and withdrawn releases (docs/protocol-extensions.md, "Releases")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.catalog.db import Area, compact_json, with_json
from node.errors import ReleaseNotFound


@dataclass(frozen=True)
class ReleaseRecord:
    id: str
    revision: int
    title: str
    kind: str
    released: str
    published: str
    cover_cid: str | None
    document: dict[str, Any]
    withdrawn_at: str | None


# In the order of ReleaseRecord's fields; the document is column 7.
_COLUMNS = "id, revision, title, kind, released, published, cover_cid, document, withdrawn_at"
_NEWEST_FIRST = "ORDER BY released DESC, published DESC, added_order DESC"


def _record(row: Any) -> ReleaseRecord:
    return ReleaseRecord(*with_json(row, 7))


class ReleaseReads(Area):
    """Reading releases."""

    async def releases(self, *, include_withdrawn: bool = False) -> list[ReleaseRecord]:
        """Releases newest first: by release date, then publication time, then the order they
        were added."""
        where = "" if include_withdrawn else "WHERE withdrawn_at IS NULL"
        sql = f"SELECT {_COLUMNS} FROM releases {where} {_NEWEST_FIRST}"
        return [_record(row) for row in await self._rows(sql)]

    async def release(self, release_id: str) -> ReleaseRecord:
        row = await self._row(f"SELECT {_COLUMNS} FROM releases WHERE id = ?", (release_id,))
        if row is None:
            raise ReleaseNotFound(f"release {release_id}: no such release in the catalog")
        return _record(row)

    async def find_release(self, prefix: str) -> ReleaseRecord:
        """A release by its full id, its UUID, or an unambiguous prefix of its UUID."""
        wanted = prefix if prefix.startswith("urn:uuid:") else "urn:uuid:" + prefix
        escaped = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql = f"SELECT {_COLUMNS} FROM releases WHERE id LIKE ? ESCAPE '\\' LIMIT 2"
        rows = await self._rows(sql, (escaped + "%",))
        if not rows or not prefix:
            raise ReleaseNotFound(f"release {prefix}: no such release in the catalog")
        if len(rows) > 1 and rows[0][0] != wanted:
            raise ReleaseNotFound(f"release {prefix}: more than one release starts with that id")
        return _record(rows[0])

    async def release_revision(self, release_id: str, revision: int) -> dict[str, Any] | None:
        """The signed document of one revision of a release, None if there is none."""
        sql = "SELECT document FROM release_revisions WHERE release_id = ? AND revision = ?"
        row = await self._row(sql, (release_id, revision))
        return None if row is None else dict(json.loads(row[0]))

    async def withdrawn_releases(self) -> list[dict[str, str]]:
        """The feed's `withdrawnReleases`: each withdrawn release's id and when, newest first."""
        sql = (
            "SELECT id, withdrawn_at FROM releases WHERE withdrawn_at IS NOT NULL"
            " ORDER BY withdrawn_at DESC, id"
        )
        return [{"id": row[0], "at": row[1]} for row in await self._rows(sql)]

    async def release_of_track(self, track_id: str) -> ReleaseRecord | None:
        """The current (not withdrawn) release listing this track, the newest if several do."""
        sql = (
            f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))} FROM releases r"
            " JOIN release_tracks t ON t.release_id = r.id"
            " WHERE t.track_id = ? AND r.withdrawn_at IS NULL"
            " ORDER BY r.released DESC, r.published DESC, r.added_order DESC LIMIT 1"
        )
        row = await self._row(sql, (track_id,))
        return None if row is None else _record(row)

    async def referenced_cids(self) -> set[str]:
        """What the other areas need, and the covers of current releases."""
        cids = await super().referenced_cids()
        sql = "SELECT cover_cid FROM releases WHERE withdrawn_at IS NULL AND cover_cid IS NOT NULL"
        cids.update(row[0] for row in await self._rows(sql))
        return cids


class ReleaseWrites(ReleaseReads):
    """Adding, revising and withdrawing releases."""

    async def put_release(self, document: dict[str, Any]) -> None:
        """Insert a new signed release or its next revision, keeping every earlier revision."""
        body = compact_json(document)
        cover = document["cover"]["cid"] if document.get("cover") else None
        await self._db.execute(
            "INSERT INTO releases (id, revision, title, kind, released, published, cover_cid,"
            " document, added_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " (SELECT COALESCE(MAX(added_order), 0) + 1 FROM releases))"
            " ON CONFLICT(id) DO UPDATE SET revision = excluded.revision,"
            " title = excluded.title, kind = excluded.kind, released = excluded.released,"
            " cover_cid = excluded.cover_cid, document = excluded.document",
            (
                document["id"],
                document["revision"],
                document["title"],
                document["kind"],
                document["released"],
                document["published"],
                cover,
                body,
            ),
        )
        await self._db.execute(
            "INSERT INTO release_revisions (release_id, revision, document) VALUES (?, ?, ?)",
            (document["id"], document["revision"], body),
        )
        await self._db.execute("DELETE FROM release_tracks WHERE release_id = ?", (document["id"],))
        await self._db.executemany(
            "INSERT INTO release_tracks (release_id, position, track_id) VALUES (?, ?, ?)",
            [(document["id"], n, entry["id"]) for n, entry in enumerate(document["tracks"])],
        )

    async def withdraw_release(self, release_id: str, at: str) -> None:
        """Withdraw a release (its tracks stay as they are); ReleaseNotFound if there is none."""
        await self.release(release_id)
        await self._db.execute(
            "UPDATE releases SET withdrawn_at = ? WHERE id = ? AND withdrawn_at IS NULL",
            (at, release_id),
        )

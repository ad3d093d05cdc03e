"""What the pages show of a published track (`TrackView`), and the words for its terms."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.catalog import TrackRecord
from node.terms import DATA_MINING_USES, Terms

USE_LABELS = {
    "aiTraining": "Training AI models",
    "aiGenerativeTraining": "Training generative AI models",
    "aiInference": "Use as input to AI models",
    "dataMining": "Text and data mining",
}
USE_VALUES = {
    "allowed": "Allowed",
    "notAllowed": "Not allowed without permission",
    "constrained": "Only on the artist's conditions",
}


def no_ai_words(terms: Terms) -> str:
    """The uses the terms refuse, as one sentence beside the "Not for AI training" mark."""
    refused = [
        USE_LABELS[use][0].lower() + USE_LABELS[use][1:]
        for use in DATA_MINING_USES
        if terms.data_mining[use] == "notAllowed"
    ]
    return (
        "Without the artist's permission this recording may not be used for "
        + ", ".join(refused)
        + ". These terms are also written into the file and signed by the artist."
    )


def _size_in_words(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} bytes"


@dataclass(frozen=True)
class TrackView:
    """What a page shows of one published track."""

    id: str
    uuid: str
    url: str
    title: str
    artist: str
    revision: int
    published: str
    published_date: str
    duration_seconds: float | None
    album: str | None
    audio_cid: str
    media_type: str
    size_words: str
    cover_cid: str | None
    cover_type: str
    license_words: str
    license_url: str
    copyright: str
    no_ai_training: bool
    no_ai_words: str
    terms: Terms
    terms_words: str
    manifest_json: str
    manifest_compact: str
    # The smallest listening rendition (Opus in Ogg, node/renditions.py), which the player
    # streams on phones and slow links; the original stays the download.
    rendition_cid: str | None = None
    rendition_type: str = ""
    rendition_words: str = ""

    @classmethod
    def of(cls, track: TrackRecord) -> TrackView:
        manifest: dict[str, Any] = track.manifest
        terms = Terms.from_json(manifest["terms"])
        bare = track.id.removeprefix("urn:uuid:")
        return cls(
            id=track.id,
            uuid=bare,
            url=f"/tracks/{bare}",
            title=track.title,
            artist=str(manifest["artist"]),
            revision=track.revision,
            published=track.published,
            published_date=track.published[:10],
            duration_seconds=manifest.get("durationSeconds"),
            album=manifest.get("album"),
            audio_cid=track.audio_cid,
            media_type=str(manifest["audio"]["mediaType"]),
            size_words=_size_in_words(int(manifest["audio"]["size"])),
            cover_cid=track.cover_cid,
            cover_type=str((manifest.get("cover") or {}).get("mediaType", "")),
            license_words=terms.license_in_words(),
            license_url=terms.license_url,
            copyright=terms.copyright,
            no_ai_training=terms.ai_training == "notAllowed",
            no_ai_words=no_ai_words(terms),
            terms=terms,
            terms_words=terms.in_words(),
            manifest_json=json.dumps(manifest, indent=2, ensure_ascii=False),
            manifest_compact=json.dumps(manifest, separators=(",", ":"), ensure_ascii=False),
            **_rendition(manifest),
        )


def _rendition(manifest: dict[str, Any]) -> dict[str, Any]:
    """TrackView's rendition fields: the manifest's lowest-bitrate rendition, if any."""
    renditions = [r for r in manifest.get("renditions") or [] if isinstance(r, dict)]
    if not renditions:
        return {}
    smallest = min(renditions, key=lambda r: int(r.get("bitrate") or 0))
    kbps = int(smallest.get("bitrate") or 0) // 1000
    media_type = str(smallest["mediaType"])
    codec = "Opus" if "opus" in media_type else media_type
    return {
        "rendition_cid": str(smallest["cid"]),
        "rendition_type": media_type,
        "rendition_words": f"{codec}, {kbps} kb/s, {_size_in_words(int(smallest['size']))}",
    }

"""The artist's terms as Stave embeds them in a file (PROTOCOL §4, §10)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.errors import UsageError

AI_TRAINING_VALUES: Final = ("allowed", "notAllowed", "constrained")
# The names read_terms answers with: the Vorbis comment names of PROTOCOL §10, with
# LICENSE_URL (ID3 `WCOP`: the licence URL, else the track's terms page) and AI_TRAINING_OFFER
# (the offer's URL when AI training is `constrained`) of docs/protocol-extensions.md.
TERMS_FIELDS: Final = (
    "COPYRIGHT",
    "LICENSE",
    "LICENSE_URL",
    "TDM_RESERVATION",
    "AI_TRAINING",
    "AI_TRAINING_OFFER",
    "STAVE_ARTIST",
    "STAVE_TRACK",
    "STAVE_FEED",
)
TAGGED_FIELDS: Final = TERMS_FIELDS
# Fields without a native atom: freeform atoms in MP4.
CUSTOM_FIELDS: Final = tuple(name for name in TAGGED_FIELDS if name != "COPYRIGHT")
# Fields without a native ID3 frame: TXXX frames.
ID3_CUSTOM_FIELDS: Final = tuple(name for name in CUSTOM_FIELDS if name != "LICENSE_URL")


@dataclass(frozen=True)
class EmbeddedTerms:
    """The artist's terms as they are written into a file's tags (PROTOCOL §4, §10)."""

    copyright: str
    license: str
    license_url: str
    terms_in_words: str
    tdm_reservation: int
    ai_training: str
    artist_did: str
    track_id: str
    feed_url: str
    # Where the track's terms are explained, linked when there is no licence URL.
    terms_url: str = ""
    # The aiTraining offer's page, only when aiTraining is `constrained`.
    offer_url: str = ""

    def __post_init__(self) -> None:
        if self.ai_training not in AI_TRAINING_VALUES:
            raise UsageError(
                f"terms: aiTraining must be one of {', '.join(AI_TRAINING_VALUES)}, "
                f"not {self.ai_training!r}"
            )
        if self.tdm_reservation not in (0, 1) or isinstance(self.tdm_reservation, bool):
            raise UsageError(f"terms: tdmReservation must be 0 or 1, not {self.tdm_reservation!r}")
        if self.offer_url and self.ai_training != "constrained":
            raise UsageError("terms: an offer URL needs aiTraining set to constrained")

    @property
    def link(self) -> str:
        """The URL a copy of the file points back with: the licence, else the terms page."""
        return self.license_url or self.terms_url

    def fields(self) -> dict[str, str]:
        """The non-empty terms under their PROTOCOL §10 Vorbis comment names."""
        values = {
            "COPYRIGHT": self.copyright,
            "LICENSE": self.license,
            "LICENSE_URL": self.link,
            "TDM_RESERVATION": str(self.tdm_reservation),
            "AI_TRAINING": self.ai_training,
            "AI_TRAINING_OFFER": self.offer_url,
            "STAVE_ARTIST": self.artist_did,
            "STAVE_TRACK": self.track_id,
            "STAVE_FEED": self.feed_url,
        }
        return {name: value for name, value in values.items() if value}

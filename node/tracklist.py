"""A release's track list from files: which files of a folder are its tracks and its cover, the
play order from their disc and track tags (then their names), and the release's title, date and
kind when the tags agree.

Nothing here reads audio; the caller probes the files (`node.media.probe`) and hands over what
it found, so the rules can be read, and tested, on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Final

from node.errors import UsageError

if TYPE_CHECKING:
    from node.media import MediaInfo

# Files an artist keeps beside the audio: pictures, notes, playlists, rip logs and checksums.
# Every other file in a folder is taken for a track, so one Stave cannot publish is refused by
# name (a .wma says "detected ASF/WMA container") rather than silently left out.
IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp"})
BESIDE_AUDIO: Final = IMAGE_SUFFIXES | {
    ".bmp",
    ".tif",
    ".tiff",
    ".txt",
    ".md",
    ".rtf",
    ".nfo",
    ".pdf",
    ".cue",
    ".log",
    ".m3u",
    ".m3u8",
    ".pls",
    ".sfv",
    ".md5",
    ".ffp",
    ".accurip",
    ".json",
    ".xml",
    ".ini",
    ".db",
}
# In order of preference: `cover.jpg` before `folder.jpg` before `front.png`.
COVER_STEMS: Final = ("cover", "folder", "front")
# Single: one track. EP: up to six tracks, under 30 minutes in all. Album: anything longer.
# The rule the big stores use (Spotify's and Apple's guidance for artists); `--kind` overrides.
EP_TRACKS: Final = 6
EP_SECONDS: Final = 30 * 60


@dataclass(frozen=True)
class FolderContents:
    """The tracks of a folder (subfolders such as `CD1/` included) and its cover file."""

    tracks: list[Path]
    cover: Path | None


@dataclass(frozen=True)
class PlacedTrack:
    """A probed file at its place in the release."""

    source: Path
    info: MediaInfo
    disc: int
    number: int


def read_folder(folder: Path) -> FolderContents:
    """The files of `folder` a release is made from; hidden files and folders are left out."""
    tracks: list[Path] = []
    covers: list[Path] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
            continue
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if len(relative.parts) == 1 and suffix in IMAGE_SUFFIXES:
            if path.stem.lower() in COVER_STEMS:
                covers.append(path)
        elif suffix not in BESIDE_AUDIO:
            tracks.append(path)
    if not tracks:
        raise UsageError(f"{folder}: no audio files in the folder")
    covers.sort(key=lambda p: (COVER_STEMS.index(p.stem.lower()), p.suffix.lower() != ".jpg"))
    return FolderContents(tracks, covers[0] if covers else None)


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts `2 Song` before `10 Song`, as a file manager does; case does not matter."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", text.casefold())
        if part
    )


def place_tracks(probed: Sequence[tuple[Path, MediaInfo]], root: Path | None) -> list[PlacedTrack]:
    """The files in play order, each with its disc and its number on that disc.

    Order: disc tag, then track tag, then file name. A file without a disc tag takes its
    subfolder's place among the folder's subfolders (`CD1/`, `CD2/`), else disc 1. Numbers are
    given again from 1 on every disc, so that the release never has gaps or a number twice.
    """

    def relative(source: Path) -> Path:
        return source.relative_to(root) if root is not None else Path(source.name)

    folders = sorted({relative(s).parent for s, _ in probed}, key=lambda p: natural_key(str(p)))
    discs = {folder: index + 1 for index, folder in enumerate(folders)}  # the top folder first

    def disc_of(source: Path, info: MediaInfo) -> int:
        return info.disc or discs[relative(source).parent]

    ordered = sorted(
        probed,
        key=lambda item: (
            disc_of(*item),
            item[1].track or 1_000_000,
            natural_key(str(relative(item[0]))),
        ),
    )
    placed: list[PlacedTrack] = []
    numbers: dict[int, int] = {}
    for source, info in ordered:
        disc = disc_of(source, info)
        numbers[disc] = numbers.get(disc, 0) + 1
        placed.append(PlacedTrack(source, info, disc, numbers[disc]))
    return placed


def agreed(values: Iterable[str | None]) -> str | None:
    """The value every file that has one agrees on; None if none has one or they differ."""
    found = {value for value in values if value}
    return found.pop() if len(found) == 1 else None


def release_title(placed: Sequence[PlacedTrack], folder: Path | None) -> str:
    """The album tag the tracks agree on, else the folder's name, else a single's own title."""
    title = agreed(p.info.album for p in placed)
    if title:
        return title
    if folder is not None:
        return folder.resolve().name
    if len(placed) == 1:
        return placed[0].info.title or placed[0].source.stem
    albums = sorted({p.info.album for p in placed if p.info.album})
    why = f"the album tags differ ({', '.join(albums[:3])})" if albums else "no album tags"
    raise UsageError(f"release title: {why}; give --title")


def release_date(placed: Sequence[PlacedTrack], today: date) -> str:
    """The date tag the tracks agree on as `YYYY-MM-DD` (a year alone is its 1 January, a
    month its first day), else `today`."""
    tagged = agreed(p.info.date for p in placed)
    if tagged is None:
        return today.isoformat()
    return (tagged + "-01-01")[:10]


def default_kind(placed: Sequence[PlacedTrack]) -> str:
    """single, ep or album, from the number of tracks and their length (see `EP_TRACKS`)."""
    if len(placed) == 1:
        return "single"
    seconds = sum(p.info.duration_seconds for p in placed)
    return "ep" if len(placed) <= EP_TRACKS and seconds < EP_SECONDS else "album"


def check_released(value: str, prefix: str = "--") -> str:
    """A `--released` date as the release document takes it (YYYY-MM-DD), or UsageError."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise UsageError(f"{prefix}released: {value!r} is not a date (YYYY-MM-DD)")

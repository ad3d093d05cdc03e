"""What `probe` reads from a file's tags: title, artist, album, album artist, date, disc and
track numbers, and the cover — in ID3 (MP3, WAV, AIFF), Vorbis comments (FLAC, Ogg, Opus), MP4
atoms (M4A) and a WAV's RIFF INFO chunk."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import IO, Any, Final

from mutagen.flac import Picture

from node.media.formats import READ_FAILURES, Constructor

_PICTURE: Final[Constructor] = Picture


@dataclass(frozen=True)
class Cover:
    """An embedded picture: its bytes and the media type its magic bytes show."""

    data: bytes = field(repr=False)
    media_type: str


def cover_media_type(data: bytes) -> str | None:
    """The media type of a picture from its magic bytes, or None when browsers cannot show it."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Names:
    """The names in a file's tags; `date` is `YYYY-MM-DD`, `YYYY-MM` or `YYYY` (see `tag_date`),
    `disc` and `track` are positive numbers."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    cover: Cover | None = None
    album_artist: str | None = None
    date: str | None = None
    disc: int | None = None
    track: int | None = None


_NUMBER: Final = re.compile(r"\s*0*([0-9]{1,4})\s*(?:/.*)?")
_DATE: Final = re.compile(r"\s*([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")


def tag_number(text: object) -> int | None:
    """A track or disc number from tag text: `3`, `03` and `3/12` are 3; anything else None."""
    match = _NUMBER.fullmatch(str(text)) if text is not None else None
    number = int(match.group(1)) if match else 0
    return number if number > 0 else None


def tag_date(text: object) -> str | None:
    """The date at the start of a tag's text (`2026-11-26`, `2026-11-26T10:00`, `2026`), as far
    as it is valid: `YYYY-MM-DD`, `YYYY-MM` or `YYYY`; None when it does not start with a year."""
    match = _DATE.match(str(text)) if text is not None else None
    if match is None:
        return None
    year, month, day = match.groups()
    if month is None or not 1 <= int(month) <= 12:
        return year
    if day is not None:
        try:
            return date(int(year), int(month), int(day)).isoformat()
        except ValueError:
            pass
    return f"{year}-{month}"


def tag_text(values: Iterable[object] | None) -> str | None:
    for value in values or ():
        text = str(value).strip()
        if text:
            return text
    return None


def first_cover(pictures: Iterable[tuple[int, bytes]]) -> Cover | None:
    """The front cover (picture type 3) if there is one, else the first picture browsers show."""
    for _, data in sorted(pictures, key=lambda picture: picture[0] != 3):
        media_type = cover_media_type(data)
        if media_type:
            return Cover(bytes(data), media_type)
    return None


def id3_names(tags: Any) -> Names:
    if tags is None:
        return Names()

    def text(frame_id: str) -> str | None:
        frame = tags.get(frame_id)
        return tag_text(frame.text) if frame is not None else None

    pictures = [(apic.type, apic.data) for apic in tags.getall("APIC")]
    return Names(
        text("TIT2"),
        text("TPE1"),
        text("TALB"),
        first_cover(pictures),
        album_artist=text("TPE2"),
        # mutagen reads ID3v2.3's TYER and TDAT into v2.4's TDRC
        date=tag_date(text("TDRC") or text("TDRL") or text("TDOR")),
        disc=tag_number(text("TPOS")),
        track=tag_number(text("TRCK")),
    )


def vorbis_names(tags: Any, pictures: Iterable[Any]) -> Names:
    if tags is None:
        return Names(cover=first_cover((p.type, p.data) for p in pictures))
    found = [(p.type, p.data) for p in pictures]
    for encoded in tags.get("metadata_block_picture", []):
        try:
            picture = _PICTURE(base64.b64decode(encoded, validate=True))
        except (binascii.Error, *READ_FAILURES):
            continue  # a broken picture is no reason to refuse the audio
        found.append((picture.type, picture.data))
    return Names(
        tag_text(tags.get("title")),
        tag_text(tags.get("artist")),
        tag_text(tags.get("album")),
        first_cover(found),
        album_artist=tag_text(tags.get("albumartist") or tags.get("album artist")),
        date=tag_date(tag_text(tags.get("date") or tags.get("originaldate"))),
        disc=tag_number(tag_text(tags.get("discnumber"))),
        track=tag_number(tag_text(tags.get("tracknumber"))),
    )


def mp4_names(tags: Any) -> Names:
    if tags is None:
        return Names()

    def number(key: str) -> int | None:
        pairs = tags.get(key) or [(0, 0)]  # (number, total)
        return tag_number(pairs[0][0])

    return Names(
        tag_text(tags.get("\xa9nam")),
        tag_text(tags.get("\xa9ART")),
        tag_text(tags.get("\xa9alb")),
        first_cover((3, bytes(cover)) for cover in tags.get("covr", [])),
        album_artist=tag_text(tags.get("aART")),
        date=tag_date(tag_text(tags.get("\xa9day"))),
        disc=number("disk"),
        track=number("trkn"),
    )


def read_chunk(f: IO[bytes], where: tuple[int, int], limit: int = 1 << 20) -> bytes:
    start, length = where
    f.seek(start)
    return f.read(min(length, limit))


def text_chunk(data: bytes) -> str | None:
    data = data.split(b"\0", 1)[0]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.strip() or None


def riff_info_names(f: IO[bytes], where: tuple[int, int], names: Names) -> Names:
    """`names` completed from a RIFF LIST/INFO chunk, where many WAV writers put them."""
    data = read_chunk(f, where)
    if data[:4] != b"INFO":
        return names
    info: dict[bytes, str | None] = {}
    pos = 4
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        info[data[pos : pos + 4]] = text_chunk(data[pos + 8 : pos + 8 + length])
        pos += 8 + length + (length & 1)
    return replace(
        names,
        title=names.title or info.get(b"INAM"),
        artist=names.artist or info.get(b"IART"),
        album=names.album or info.get(b"IPRD"),
        date=names.date or tag_date(info.get(b"ICRD")),
        track=names.track or tag_number(info.get(b"ITRK") or info.get(b"IPRT")),
    )

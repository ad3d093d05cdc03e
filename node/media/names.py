"""The title, artist, album and cover `probe` reads from a file's tags."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    cover: Cover | None = None


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
    return Names(text("TIT2"), text("TPE1"), text("TALB"), first_cover(pictures))


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
    return Names(
        names.title or info.get(b"INAM"),
        names.artist or info.get(b"IART"),
        names.album or info.get(b"IPRD"),
        names.cover,
    )

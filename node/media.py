"""Audio files: what they are, and the artist's terms inside their tags (PROTOCOL §10).

`probe` decides a file's format from its bytes, never its name, and refuses with
`UnsupportedMedia` anything Stave would not publish: empty, foreign, truncated or corrupt files.
`write_terms` writes the terms into the tags of a file in place (the caller hands it a copy);
`read_terms` reads them back. Files are read a header at a time, never whole.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import string
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal, get_args
from urllib.parse import quote
from xml.sax.saxutils import escape

from mutagen import MutagenError
from mutagen.aiff import AIFF
from mutagen.flac import FLAC, Picture
from mutagen.id3 import PRIV, TCOP, TXXX, USER, WCOP, Encoding
from mutagen.mp3 import MP3, HeaderNotFoundError
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from node.errors import StoreError, UnsupportedMedia, UsageError

AudioFormat = Literal["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]
SUPPORTED_FORMATS: Final[tuple[AudioFormat, ...]] = get_args(AudioFormat)

# RFC 7845 §9 registers Ogg Opus files as audio/ogg, like Ogg Vorbis.
_MEDIA_TYPES: Final[dict[AudioFormat, str]] = {
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "aiff": "audio/aiff",
}
AI_TRAINING_VALUES: Final = ("allowed", "notAllowed", "constrained")
# The names read_terms answers with: the Vorbis comment names of PROTOCOL §10, plus the licence
# URL that only ID3 (WCOP) carries.
TERMS_FIELDS: Final = (
    "COPYRIGHT",
    "LICENSE",
    "LICENSE_URL",
    "TDM_RESERVATION",
    "AI_TRAINING",
    "STAVE_ARTIST",
    "STAVE_TRACK",
    "STAVE_FEED",
)
_TAGGED_FIELDS: Final = tuple(name for name in TERMS_FIELDS if name != "LICENSE_URL")
# Fields without a native frame/atom: TXXX frames in ID3, freeform atoms in MP4.
_CUSTOM_FIELDS: Final = tuple(name for name in _TAGGED_FIELDS if name != "COPYRIGHT")
_MP4_FREEFORM: Final = "----:com.apple.iTunes:"
_PLUS_VOCAB: Final = "http://ns.useplus.org/ldf/vocab/"

# mutagen signals hostile input with more than MutagenError: a short read inside a struct, a bad
# index or an impossible value surface as these. Anything else is a bug and should be seen.
_READ_FAILURES: Final = (
    MutagenError,
    OSError,
    EOFError,
    ValueError,
    LookupError,
    ArithmeticError,
    struct.error,
)


# mutagen's annotations are partial and strict mypy refuses calls into the unannotated parts,
# so its constructors are called through these names.
_Constructor = Callable[..., Any]
_FILE_TYPES: Final[dict[AudioFormat, _Constructor]] = {
    "mp3": MP3,
    "flac": FLAC,
    "ogg": OggVorbis,
    "opus": OggOpus,
    "m4a": MP4,
    "wav": WAVE,
    "aiff": AIFF,
}
_ID3_FRAMES: Final[dict[str, _Constructor]] = {
    "TCOP": TCOP,
    "WCOP": WCOP,
    "USER": USER,
    "TXXX": TXXX,
    "PRIV": PRIV,
}
_PICTURE: Final[_Constructor] = Picture
_FREEFORM: Final[_Constructor] = MP4FreeForm


@dataclass(frozen=True)
class Cover:
    """An embedded picture: its bytes and the media type its magic bytes show."""

    data: bytes = field(repr=False)
    media_type: str


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found in an audio file."""

    format: AudioFormat
    media_type: str
    codec: str
    duration_seconds: float
    title: str | None
    artist: str | None
    album: str | None
    cover: Cover | None


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

    def __post_init__(self) -> None:
        if self.ai_training not in AI_TRAINING_VALUES:
            raise UsageError(
                f"terms: aiTraining must be one of {', '.join(AI_TRAINING_VALUES)}, "
                f"not {self.ai_training!r}"
            )
        if self.tdm_reservation not in (0, 1) or isinstance(self.tdm_reservation, bool):
            raise UsageError(f"terms: tdmReservation must be 0 or 1, not {self.tdm_reservation!r}")

    def fields(self) -> dict[str, str]:
        """The non-empty terms under their PROTOCOL §10 Vorbis comment names."""
        values = {
            "COPYRIGHT": self.copyright,
            "LICENSE": self.license,
            "TDM_RESERVATION": str(self.tdm_reservation),
            "AI_TRAINING": self.ai_training,
            "STAVE_ARTIST": self.artist_did,
            "STAVE_TRACK": self.track_id,
            "STAVE_FEED": self.feed_url,
        }
        return {name: value for name, value in values.items() if value}


def media_type_for(audio_format: str) -> str:
    """The media type Stave serves a file of this format with."""
    if audio_format not in _MEDIA_TYPES:
        raise UnsupportedMedia(f"{audio_format}: not a supported audio format")
    return _MEDIA_TYPES[audio_format]


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


# --- probing ---------------------------------------------------------------------------------


def probe(path: Path) -> MediaInfo:
    """Describe a supported audio file, or raise `UnsupportedMedia` naming the file and why.

    The format comes from the content. The stream must be whole: a truncated file, one without
    audio frames or with zero duration is refused.
    """
    with _open(path) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            audio_format, offset = _sniff(path.name, f, size)
            return _PROBES[audio_format](path.name, f, size, offset)
        except _READ_FAILURES as e:
            raise _refuse(path.name, f"truncated or corrupt file ({_one_line(e)})") from e


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as e:
        raise UnsupportedMedia(f"{path.name}: cannot be read ({e.strerror or e})") from e


def _refuse(name: str, reason: str) -> UnsupportedMedia:
    return UnsupportedMedia(_one_line(f"{name}: {reason}"))


def _one_line(message: object) -> str:
    return " ".join(str(message).split()) or type(message).__name__


_FOREIGN_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM container"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMA container"),
    (b"MThd", "MIDI file"),
    (b"wvpk", "WavPack audio"),
    (b"MAC ", "Monkey's Audio"),
    (b"caff", "Core Audio file"),
    (b".snd", "Sun/NeXT audio"),
    (b"#!AMR", "AMR audio"),
    (b"RF64", "RF64 (64-bit WAV) file"),
)


def _sniff(name: str, f: IO[bytes], size: int) -> tuple[AudioFormat, int]:
    """The format of the file and where its own data starts, past leading ID3v2 tags."""
    if size == 0:
        raise _refuse(name, "empty file")
    offset = _skip_id3v2(name, f, size)
    f.seek(offset)
    head = f.read(512)
    if offset:
        # Anything after an ID3v2 tag is FLAC or an MPEG stream; the MP3 probe looks for frames.
        return ("flac" if head.startswith(b"fLaC") else "mp3"), offset
    if head.startswith(b"fLaC"):
        return "flac", 0
    if head.startswith(b"OggS"):
        return _ogg_codec(name, head), 0
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav", 0
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff", 0
    if head[4:8] == b"ftyp":
        return "m4a", 0
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        raise _refuse(name, "not a supported audio format (detected a raw AAC/ADTS stream)")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3", 0
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise _refuse(name, f"not a supported audio format (detected {what})")
    if head[:4] == b"RIFF":
        form = head[8:12].decode("latin-1").strip()
        raise _refuse(name, f"not a supported audio format (detected a RIFF {form!r} file)")
    if _looks_like_text(head):
        raise _refuse(name, "not an audio file (it is text)")
    raise _refuse(name, "not an audio file")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the end of the read
            return False
        text = head[: e.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _skip_id3v2(name: str, f: IO[bytes], size: int) -> int:
    offset = 0
    while True:  # some taggers stack several ID3v2 tags
        f.seek(offset)
        header = f.read(10)
        if len(header) < 10 or header[:3] != b"ID3":
            return offset
        if any(b & 0x80 for b in header[6:10]):
            raise _refuse(name, "corrupt ID3v2 tag (bad size)")
        body = 0
        for byte in header[6:10]:  # a "synchsafe" integer: 7 bits a byte
            body = body << 7 | byte
        offset += 10 + body + (10 if header[5] & 0x10 else 0)
        if offset > size:
            raise _refuse(name, "truncated file (its ID3v2 tag runs past the end of the file)")


def _ogg_codec(name: str, head: bytes) -> AudioFormat:
    packet = head[27 + head[26] :] if len(head) > 27 else b""
    if packet.startswith(b"\x01vorbis"):
        return "ogg"
    if packet.startswith(b"OpusHead"):
        return "opus"
    for magic, codec in (
        (b"\x7fFLAC", "FLAC in Ogg (use a native .flac file)"),
        (b"Speex   ", "Speex"),
        (b"\x80theora", "Theora video"),
    ):
        if packet.startswith(magic):
            raise _refuse(name, f"unsupported codec {codec}")
    raise _refuse(name, "unsupported codec (the Ogg stream is neither Vorbis nor Opus)")


def _load(name: str, kind: _Constructor, f: IO[bytes], label: str) -> Any:
    f.seek(0)
    try:
        return kind(f)
    except _READ_FAILURES as e:
        raise _refuse(name, f"truncated or corrupt {label} file ({_one_line(e)})") from e


def _duration(name: str, seconds: float) -> float:
    if not math.isfinite(seconds) or seconds <= 0:
        raise _refuse(name, "no audio (its duration is zero)")
    return float(seconds)


@dataclass(frozen=True)
class _Names:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    cover: Cover | None = None


def _info(audio_format: AudioFormat, codec: str, duration: float, names: _Names) -> MediaInfo:
    return MediaInfo(
        format=audio_format,
        media_type=_MEDIA_TYPES[audio_format],
        codec=codec,
        duration_seconds=duration,
        title=names.title,
        artist=names.artist,
        album=names.album,
        cover=names.cover,
    )


def _text(values: Iterable[object] | None) -> str | None:
    for value in values or ():
        text = str(value).strip()
        if text:
            return text
    return None


def _first_cover(pictures: Iterable[tuple[int, bytes]]) -> Cover | None:
    """The front cover (picture type 3) if there is one, else the first picture browsers show."""
    for _, data in sorted(pictures, key=lambda picture: picture[0] != 3):
        media_type = cover_media_type(data)
        if media_type:
            return Cover(bytes(data), media_type)
    return None


def _id3_names(tags: Any) -> _Names:
    if tags is None:
        return _Names()

    def text(frame_id: str) -> str | None:
        frame = tags.get(frame_id)
        return _text(frame.text) if frame is not None else None

    pictures = [(apic.type, apic.data) for apic in tags.getall("APIC")]
    return _Names(text("TIT2"), text("TPE1"), text("TALB"), _first_cover(pictures))


def _vorbis_names(tags: Any, pictures: Iterable[Any]) -> _Names:
    if tags is None:
        return _Names(cover=_first_cover((p.type, p.data) for p in pictures))
    found = [(p.type, p.data) for p in pictures]
    for encoded in tags.get("metadata_block_picture", []):
        try:
            picture = _PICTURE(base64.b64decode(encoded, validate=True))
        except (binascii.Error, *_READ_FAILURES):
            continue  # a broken picture is no reason to refuse the audio
        found.append((picture.type, picture.data))
    return _Names(
        _text(tags.get("title")),
        _text(tags.get("artist")),
        _text(tags.get("album")),
        _first_cover(found),
    )


# --- MP3 ---


def _probe_mp3(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    f.seek(0)
    try:
        audio = _FILE_TYPES["mp3"](f)
    except HeaderNotFoundError as e:
        raise _refuse(name, "no audio frames found") from e
    except _READ_FAILURES as e:
        raise _refuse(name, f"truncated or corrupt MP3 file ({_one_line(e)})") from e
    info = audio.info
    if info.sketchy:
        raise _refuse(name, "no audio frames found (no run of valid MPEG frames)")
    if info.layer != 3:
        raise _refuse(name, f"unsupported codec MPEG audio layer {'I' * info.layer}")
    _check_mp3_length(name, f, size, info)
    return _info("mp3", "mp3", _duration(name, info.length), _id3_names(audio.tags))


def _check_mp3_length(name: str, f: IO[bytes], size: int, info: Any) -> None:
    """Compare the byte count an encoder's Xing/Info header records with what the file holds."""
    stereo = info.mode != 3
    side_info = (36 if stereo else 21) if info.version == 1 else (21 if stereo else 13)
    f.seek(info.frame_offset + side_info)
    header = f.read(16)
    if header[:4] not in (b"Xing", b"Info") or len(header) < 16:
        return  # no such header: an MPEG stream is playable to whatever frame it ends on
    flags = int.from_bytes(header[4:8], "big")
    if not flags & 2:
        return
    expected = int.from_bytes(header[12:16] if flags & 1 else header[8:12], "big")
    held = size - info.frame_offset
    if held < expected:
        raise _refuse(
            name, f"truncated MP3 stream (holds {held} of the {expected} bytes its header records)"
        )


# --- FLAC ---


def _crc_table(poly: int, width: int) -> tuple[int, ...]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly if crc & top else crc << 1) & mask
        table.append(crc)
    return tuple(table)


_CRC8: Final = _crc_table(0x07, 8)  # FLAC frame header
_CRC16: Final = _crc_table(0x8005, 16)  # FLAC frame
_CRC32: Final = _crc_table(0x04C11DB7, 32)  # Ogg page


def _crc(table: tuple[int, ...], width: int, data: bytes) -> int:
    mask, shift = (1 << width) - 1, width - 8
    crc = 0
    for byte in data:
        crc = ((crc << 8) & mask) ^ table[((crc >> shift) ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True)
class _FlacFrame:
    number: int  # frame number (fixed block size) or first sample (variable block size)
    variable: bool
    block_size: int


_FLAC_BLOCK_SIZES: Final = {1: 192, **{c: 576 << (c - 2) for c in range(2, 6)}}
_FLAC_BLOCK_SIZES.update({c: 256 << (c - 8) for c in range(8, 16)})


def _flac_frame(buf: bytes, i: int) -> _FlacFrame | None:
    """The FLAC frame header at buf[i] if there is a valid one (CRC-8 included)."""
    if i + 6 > len(buf) or buf[i] != 0xFF or buf[i + 1] & 0xFE != 0xF8:
        return None
    size_code, rate_code = buf[i + 2] >> 4, buf[i + 2] & 0x0F
    if size_code == 0 or rate_code == 15 or buf[i + 3] >> 4 > 10 or buf[i + 3] & 1:
        return None
    # The frame or sample number, coded like UTF-8 in up to 7 bytes.
    lead = buf[i + 4]
    ones = 8 - (~lead & 0xFF).bit_length()
    if ones in (1, 8):
        return None
    extra = max(ones - 1, 0)
    number = lead & (0xFF >> (ones + 1)) if ones else lead
    j = i + 5
    for _ in range(extra):
        if j >= len(buf) or buf[j] & 0xC0 != 0x80:
            return None
        number = number << 6 | buf[j] & 0x3F
        j += 1
    size_bytes = {6: 1, 7: 2}.get(size_code, 0)
    rate_bytes = {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if j + size_bytes + rate_bytes >= len(buf):
        return None
    if size_bytes:
        block_size = int.from_bytes(buf[j : j + size_bytes], "big") + 1
    else:
        block_size = _FLAC_BLOCK_SIZES[size_code]
    j += size_bytes + rate_bytes
    if _crc(_CRC8, 8, buf[i:j]) != buf[j]:
        return None
    return _FlacFrame(number, bool(buf[i + 1] & 1), block_size)


def _probe_flac(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    _check_flac_stream(name, f, size, offset)
    audio = _load(name, FLAC, f, "FLAC")
    names = _vorbis_names(audio.tags, audio.pictures)
    return _info("flac", "flac", _duration(name, audio.info.length), names)


def _check_flac_stream(name: str, f: IO[bytes], size: int, offset: int) -> None:
    """Require audio frames after the metadata, and a last frame that is whole and ends where
    STREAMINFO says the stream ends (https://www.rfc-editor.org/rfc/rfc9639)."""

    def corrupt(why: str) -> UnsupportedMedia:
        return _refuse(name, f"truncated or corrupt FLAC stream ({why})")

    pos = offset + 4
    streaminfo = b""
    last = False
    while not last:
        f.seek(pos)
        header = f.read(4)
        if len(header) < 4:
            raise corrupt("the metadata ends early")
        last, kind, length = bool(header[0] & 0x80), header[0] & 0x7F, int.from_bytes(header[1:])
        if not streaminfo:
            if kind != 0 or length < 34:
                raise corrupt("no STREAMINFO block")
            streaminfo = f.read(34)
        pos += 4 + length
        if pos > size:
            raise corrupt("a metadata block runs past the end of the file")
    max_block, max_frame = int.from_bytes(streaminfo[2:4]), int.from_bytes(streaminfo[7:10])
    packed = int.from_bytes(streaminfo[10:18])
    channels, bits = (packed >> 41 & 0x7) + 1, (packed >> 36 & 0x1F) + 1
    total_samples, sample_rate = packed & 0xFFFFFFFFF, packed >> 44
    if pos == size:
        raise _refuse(name, "no audio frames found")
    f.seek(pos)
    first = _flac_frame(f.read(32), 0)
    if first is None:
        raise corrupt("no audio frame follows the metadata")

    end = size
    f.seek(max(pos, size - 128))
    if f.read(3) == b"TAG":  # an ID3v1 tag after the audio is common in the wild
        end = size - 128
    # The frame size bound when the encoder did not record one: a verbatim frame.
    bound = max_frame or max_block * channels * bits // 8 + 1024
    window = min(end - pos, bound + 32)
    f.seek(end - window)
    tail = f.read(window)
    i = len(tail)
    while (i := tail.rfind(b"\xff", 0, i)) >= 0:
        frame = _flac_frame(tail, i)
        if frame is not None and _crc(_CRC16, 16, tail[i:]) == 0:
            break
    else:
        raise corrupt("its last audio frame is incomplete")
    first_sample = frame.number if frame.variable else frame.number * first.block_size
    if total_samples and first_sample + frame.block_size != total_samples and sample_rate:
        held = (first_sample + frame.block_size) / sample_rate
        raise corrupt(f"audio ends at {held:.2f} s of {total_samples / sample_rate:.2f} s")


# --- Ogg Vorbis and Opus ---


def _probe_vorbis(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    audio = _load(name, OggVorbis, f, "Ogg Vorbis")
    _check_ogg_end(name, f, size)
    names = _vorbis_names(audio.tags, ())
    return _info("ogg", "vorbis", _duration(name, audio.info.length), names)


def _probe_opus(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    audio = _load(name, OggOpus, f, "Ogg Opus")
    _check_ogg_end(name, f, size)
    names = _vorbis_names(audio.tags, ())
    return _info("opus", "opus", _duration(name, audio.info.length), names)


def _check_ogg_end(name: str, f: IO[bytes], size: int) -> None:
    """Require the file to end with a whole end-of-stream page (RFC 3533 §6)."""
    window = min(size, 65307)  # the largest possible Ogg page
    f.seek(size - window)
    tail = f.read(window)
    i = len(tail)
    while (i := tail.rfind(b"OggS", 0, i)) >= 0:
        page = tail[i:]
        if len(page) < 27 or len(page) < 27 + page[26]:
            continue
        segments = page[27 : 27 + page[26]]
        if 27 + len(segments) + sum(segments) != len(page):
            continue
        if _crc(_CRC32, 32, page[:22] + b"\0\0\0\0" + page[26:]) != int.from_bytes(
            page[22:26], "little"
        ):
            continue
        if not page[5] & 0x04:
            raise _refuse(name, "truncated Ogg stream (it does not end with an end-of-stream page)")
        return
    raise _refuse(name, "truncated or corrupt Ogg stream (its last page is incomplete)")


# --- WAV and AIFF ---


def _chunks(
    f: IO[bytes], size: int, byteorder: Literal["little", "big"]
) -> Iterator[tuple[bytes, int, int]]:
    """(id, data offset, data size) of each top-level chunk of a RIFF or IFF file."""
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        header = f.read(8)
        length = int.from_bytes(header[4:], byteorder)
        yield header[:4], pos + 8, length
        pos += 8 + length + (length & 1)


def _chunk_names(
    name: str, f: IO[bytes], size: int, byteorder: Literal["little", "big"], label: str
) -> dict[bytes, tuple[int, int]]:
    found: dict[bytes, tuple[int, int]] = {}
    for chunk_id, start, length in _chunks(f, size, byteorder):
        if start + length > size:
            kind = chunk_id.decode("latin-1")
            raise _refuse(
                name, f"truncated or corrupt {label} file (its {kind!r} chunk runs past the end)"
            )
        found.setdefault(chunk_id, (start, length))
    return found


def _read_chunk(f: IO[bytes], where: tuple[int, int], limit: int = 1 << 20) -> bytes:
    start, length = where
    f.seek(start)
    return f.read(min(length, limit))


def _text_chunk(data: bytes) -> str | None:
    data = data.split(b"\0", 1)[0]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.strip() or None


_WAV_CODECS: Final = {1: "pcm", 3: "pcm_float"}


def _probe_wav(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    chunks = _chunk_names(name, f, size, "little", "WAV")
    if b"fmt " not in chunks:
        raise _refuse(name, "truncated or corrupt WAV file (no 'fmt ' chunk)")
    if b"data" not in chunks:
        raise _refuse(name, "no audio (the WAV file has no 'data' chunk)")
    fmt = _read_chunk(f, chunks[b"fmt "], 64)
    tag = int.from_bytes(fmt[0:2], "little")
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID decides
        tag = int.from_bytes(fmt[24:26], "little")
    if tag not in _WAV_CODECS:
        raise _refuse(name, f"unsupported codec (WAV format tag 0x{tag:04x})")
    audio = _load(name, WAVE, f, "WAV")
    names = _id3_names(audio.tags)
    if b"LIST" in chunks:
        names = _riff_info_names(f, chunks[b"LIST"], names)
    return _info("wav", _WAV_CODECS[tag], _duration(name, audio.info.length), names)


def _riff_info_names(f: IO[bytes], where: tuple[int, int], names: _Names) -> _Names:
    """`names` completed from a RIFF LIST/INFO chunk, where many WAV writers put them."""
    data = _read_chunk(f, where)
    if data[:4] != b"INFO":
        return names
    info: dict[bytes, str | None] = {}
    pos = 4
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        info[data[pos : pos + 4]] = _text_chunk(data[pos + 8 : pos + 8 + length])
        pos += 8 + length + (length & 1)
    return _Names(
        names.title or info.get(b"INAM"),
        names.artist or info.get(b"IART"),
        names.album or info.get(b"IPRD"),
        names.cover,
    )


_AIFC_CODECS: Final = {
    b"NONE": "pcm",
    b"sowt": "pcm",
    b"twos": "pcm",
    b"raw ": "pcm",
    b"in24": "pcm",
    b"in32": "pcm",
    b"fl32": "pcm_float",
    b"FL32": "pcm_float",
    b"fl64": "pcm_float",
    b"FL64": "pcm_float",
}


def _probe_aiff(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    chunks = _chunk_names(name, f, size, "big", "AIFF")
    if b"COMM" not in chunks:
        raise _refuse(name, "truncated or corrupt AIFF file (no 'COMM' chunk)")
    if b"SSND" not in chunks:
        raise _refuse(name, "no audio (the AIFF file has no 'SSND' chunk)")
    f.seek(8)
    codec = "pcm"
    if f.read(4) == b"AIFC":
        compression = _read_chunk(f, chunks[b"COMM"], 64)[18:22]
        if compression not in _AIFC_CODECS:
            kind = compression.decode("latin-1")
            raise _refuse(name, f"unsupported codec (AIFF-C compression {kind!r})")
        codec = _AIFC_CODECS[compression]
    audio = _load(name, AIFF, f, "AIFF")
    names = _id3_names(audio.tags)
    # AIFF's own NAME and AUTH chunks, for files without ID3
    title = _text_chunk(_read_chunk(f, chunks[b"NAME"])) if b"NAME" in chunks else None
    author = _text_chunk(_read_chunk(f, chunks[b"AUTH"])) if b"AUTH" in chunks else None
    names = _Names(names.title or title, names.artist or author, names.album, names.cover)
    return _info("aiff", codec, _duration(name, audio.info.length), names)


# --- MP4 ---


def _atoms(f: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, data start, atom end) of each atom in [start, end); an end past `end` is kept."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        length, kind, data = int.from_bytes(header[:4]), header[4:], pos + 8
        if length == 1:
            length, data = int.from_bytes(f.read(8)), pos + 16
        elif length == 0:
            length = end - pos
        if length < data - pos:
            raise ValueError(f"atom {kind!r} has an impossible size")
        yield kind, data, pos + length
        pos += length
    if pos != end:
        raise ValueError("the atom list ends in the middle of an atom")


def _check_mp4_atoms(name: str, f: IO[bytes], size: int) -> None:
    def corrupt(why: str) -> UnsupportedMedia:
        return _refuse(name, f"truncated or corrupt MP4 file ({why})")

    top: dict[bytes, tuple[int, int]] = {}
    try:
        for kind, data, end in _atoms(f, 0, size):
            if end > size:
                raise corrupt(f"its {kind.decode('latin-1')!r} atom runs past the end of the file")
            top.setdefault(kind, (data, end))
        if b"moov" not in top:
            raise corrupt("no 'moov' atom")
        if b"mdat" not in top:
            raise _refuse(name, "no audio (the MP4 file has no 'mdat' atom)")
        if b"vide" in _mp4_handlers(f, *top[b"moov"]):
            raise _refuse(name, "not a supported audio format (it has a video track)")
    except ValueError as e:
        raise corrupt(str(e)) from e


def _mp4_handlers(f: IO[bytes], start: int, end: int) -> set[bytes]:
    """The handler type of each track in a 'moov' atom: b"soun", b"vide", …"""
    handlers = set()
    for trak, trak_start, trak_end in _atoms(f, start, end):
        for mdia, mdia_start, mdia_end in (
            _atoms(f, trak_start, trak_end) if trak == b"trak" else ()
        ):
            for hdlr, hdlr_start, _ in _atoms(f, mdia_start, mdia_end) if mdia == b"mdia" else ():
                if hdlr == b"hdlr":
                    f.seek(hdlr_start + 8)  # past version, flags and pre_defined
                    handlers.add(f.read(4))
    return handlers


def _probe_m4a(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    _check_mp4_atoms(name, f, size)
    audio = _load(name, MP4, f, "MP4")
    codec_id: str = audio.info.codec
    if codec_id.startswith("mp4a.40.") or codec_id in ("mp4a.66", "mp4a.67", "mp4a.68"):
        codec = "aac"
    elif codec_id == "alac":
        codec = "alac"
    else:
        raise _refuse(name, f"unsupported codec {codec_id!r} in MP4")
    tags = audio.tags
    names = _Names()
    if tags is not None:
        covers = [(3, bytes(cover)) for cover in tags.get("covr", [])]
        names = _Names(
            _text(tags.get("\xa9nam")),
            _text(tags.get("\xa9ART")),
            _text(tags.get("\xa9alb")),
            _first_cover(covers),
        )
    return _info("m4a", codec, _duration(name, audio.info.length), names)


_PROBES: Final[dict[AudioFormat, Callable[[str, IO[bytes], int, int], MediaInfo]]] = {
    "mp3": _probe_mp3,
    "flac": _probe_flac,
    "ogg": _probe_vorbis,
    "opus": _probe_opus,
    "m4a": _probe_m4a,
    "wav": _probe_wav,
    "aiff": _probe_aiff,
}


# --- terms in tags (PROTOCOL §10) -----------------------------------------------------------


def write_terms(path: Path, terms: EmbeddedTerms) -> None:
    """Write the terms into the file's tags in place, as PROTOCOL §10 lays out per format.

    Every other tag survives; a field Stave wrote before is replaced, never duplicated. The file
    is probed first, so only a file `probe` accepts is touched. On failure the file may be left
    half-written: callers pass a copy and discard it.
    """
    audio_format = probe(path).format
    try:
        if audio_format in ("mp3", "wav", "aiff"):
            _write_id3(path, audio_format, terms)
        elif audio_format == "m4a":
            _write_mp4(path, terms)
        else:
            _write_vorbis(path, audio_format, terms)
    except _READ_FAILURES as e:
        # mutagen re-raises most OS errors as MutagenError; the OS error is its context.
        cause = e if isinstance(e, OSError) else e.__context__
        if isinstance(cause, OSError):
            reason = cause.strerror or _one_line(cause)
            raise StoreError(f"{path.name}: could not write the terms ({reason})") from e
        raise _refuse(path.name, f"could not write the terms into its tags ({_one_line(e)})") from e


def read_terms(path: Path) -> dict[str, str]:
    """The terms found in the file's tags, keyed by `TERMS_FIELDS` names; {} when there are none."""
    with _open(path) as f:
        try:
            audio_format, _ = _sniff(path.name, f, os.fstat(f.fileno()).st_size)
            audio = _load(path.name, _FILE_TYPES[audio_format], f, audio_format.upper())
        except _READ_FAILURES as e:
            raise _refuse(path.name, f"truncated or corrupt file ({_one_line(e)})") from e
    tags = audio.tags
    if tags is None:
        return {}
    if audio_format in ("mp3", "wav", "aiff"):
        found = {f"TXXX:{name}": name for name in _CUSTOM_FIELDS}
        found.update(TCOP="COPYRIGHT")
        terms = {name: _text(tags[key].text) for key, name in found.items() if key in tags}
        wcop = tags.getall("WCOP")
        if wcop:
            terms["LICENSE_URL"] = wcop[0].url
    elif audio_format == "m4a":
        terms = {
            name: _text(_mp4_strings(tags.get(_MP4_FREEFORM + name))) for name in _CUSTOM_FIELDS
        }
        terms["COPYRIGHT"] = _text(tags.get("cprt"))
    else:
        terms = {name: _text(tags.get(name)) for name in _TAGGED_FIELDS}
    return {name: value for name in TERMS_FIELDS if (value := terms.get(name))}


def _write_id3(path: Path, audio_format: AudioFormat, terms: EmbeddedTerms) -> None:
    audio = _FILE_TYPES[audio_format](path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for key in list(tags.keys()):
        frame = tags[key]
        ours = frame.FrameID in ("TCOP", "WCOP", "USER")
        ours |= frame.FrameID == "TXXX" and frame.desc.upper() in _CUSTOM_FIELDS
        ours |= frame.FrameID == "PRIV" and frame.owner == "XMP"
        if ours:
            del tags[key]
    fields = terms.fields()
    if "COPYRIGHT" in fields:
        tags.add(_ID3_FRAMES["TCOP"](encoding=Encoding.UTF8, text=[fields["COPYRIGHT"]]))
    if terms.license_url:
        # URL frames are Latin-1 (ID3v2.4 §4.3): an IRI goes in percent-encoded.
        url = quote(terms.license_url, safe=string.punctuation)
        tags.add(_ID3_FRAMES["WCOP"](url=url))
    if terms.terms_in_words:
        tags.add(_ID3_FRAMES["USER"](encoding=Encoding.UTF8, lang="eng", text=terms.terms_in_words))
    for name in _CUSTOM_FIELDS:
        if name in fields:
            tags.add(_ID3_FRAMES["TXXX"](encoding=Encoding.UTF8, desc=name, text=[fields[name]]))
    # Adobe's convention for XMP in ID3, which ExifTool and Adobe tools read.
    tags.add(_ID3_FRAMES["PRIV"](owner="XMP", data=xmp_packet(terms)))
    audio.save(v2_version=4)


def _write_vorbis(path: Path, audio_format: AudioFormat, terms: EmbeddedTerms) -> None:
    audio = _FILE_TYPES[audio_format](path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for name in _TAGGED_FIELDS:
        if name in tags:  # comment names are case-insensitive; this drops every spelling
            del tags[name]
    for name, value in terms.fields().items():
        tags[name] = [value]
    audio.save()


def _write_mp4(path: Path, terms: EmbeddedTerms) -> None:
    audio = _FILE_TYPES["m4a"](path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    ours = {_MP4_FREEFORM.lower() + name.lower() for name in _CUSTOM_FIELDS}
    for key in list(tags.keys()):
        if key == "cprt" or key.lower() in ours:
            del tags[key]
    fields = terms.fields()
    if "COPYRIGHT" in fields:
        tags["cprt"] = [fields["COPYRIGHT"]]
    for name in _CUSTOM_FIELDS:
        if name in fields:
            value = _FREEFORM(fields[name].encode("utf-8"), dataformat=AtomDataType.UTF8)
            tags[_MP4_FREEFORM + name] = [value]
    audio.save()


def _mp4_strings(values: Iterable[bytes] | None) -> list[str]:
    return [bytes(value).decode("utf-8", "replace") for value in values or ()]


def xmp_packet(terms: EmbeddedTerms) -> bytes:
    """The XMP packet Stave puts in an ID3 `PRIV` frame: rights, licence, TDMRep reservation and
    the PLUS data-mining value (http://ns.useplus.org/ldf/xmp/1.0/DataMining)."""
    # PLUS LDF vocabulary: training is either explicitly allowed or prohibited; a constrained
    # permission still needs the artist's consent, so it is signalled as prohibited.
    data_mining = "DMI-ALLOWED" if terms.ai_training == "allowed" else "DMI-PROHIBITED-AIMLTRAINING"
    lines = [
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
        '  <rdf:Description rdf:about=""',
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"',
        '    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"',
        '    xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"',
        '    xmlns:tdm="http://www.w3.org/ns/tdmrep/">',
    ]
    if terms.copyright:
        lines.append(f"   <dc:rights>{_xmp_alt(terms.copyright)}</dc:rights>")
    lines.append("   <xmpRights:Marked>True</xmpRights:Marked>")
    if terms.license_url:
        web_statement = _xml_text(terms.license_url)
        lines.append(f"   <xmpRights:WebStatement>{web_statement}</xmpRights:WebStatement>")
    if terms.terms_in_words:
        usage = _xmp_alt(terms.terms_in_words)
        lines.append(f"   <xmpRights:UsageTerms>{usage}</xmpRights:UsageTerms>")
    lines += [
        f"   <plus:DataMining>{_PLUS_VOCAB}{data_mining}</plus:DataMining>",
        f"   <tdm:reservation>{terms.tdm_reservation}</tdm:reservation>",
        "  </rdf:Description>",
        " </rdf:RDF>",
        "</x:xmpmeta>",
        '<?xpacket end="r"?>',
    ]
    return "\n".join(lines).encode("utf-8")


def _xmp_alt(text: str) -> str:
    return f'<rdf:Alt><rdf:li xml:lang="x-default">{_xml_text(text)}</rdf:li></rdf:Alt>'


def _xml_text(text: str) -> str:
    """Text escaped for XML, without the control characters XML 1.0 cannot carry."""
    return escape(_NOT_XML.sub("", text))


_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

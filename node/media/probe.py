"""What an audio file is: its format sniffed from its bytes, never its name, and `MediaInfo`.

`probe` refuses with `UnsupportedMedia` anything Stave would not publish: empty, foreign,
truncated or corrupt files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Final

from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.mp3 import HeaderNotFoundError
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from node.errors import UnsupportedMedia
from node.media.formats import (
    FILE_TYPES,
    MEDIA_TYPES,
    READ_FAILURES,
    AudioFormat,
    Constructor,
    one_line,
    refuse,
)
from node.media.integrity import (
    check_flac_stream,
    check_mp3_length,
    check_mp4_atoms,
    check_ogg_end,
    chunk_names,
)
from node.media.names import (
    Cover,
    Names,
    id3_names,
    mp4_names,
    read_chunk,
    riff_info_names,
    text_chunk,
    vorbis_names,
)


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
    album_artist: str | None = None
    date: str | None = None
    disc: int | None = None
    track: int | None = None


def probe(path: Path) -> MediaInfo:
    """Describe a supported audio file, or raise `UnsupportedMedia` naming the file and why.

    The format comes from the content. The stream must be whole: a truncated file, one without
    audio frames or with zero duration is refused.
    """
    with open_audio(path) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            audio_format, offset = sniff(path.name, f, size)
            return _PROBES[audio_format](path.name, f, size, offset)
        except READ_FAILURES as e:
            raise refuse(path.name, f"truncated or corrupt file ({one_line(e)})") from e


def open_audio(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as e:
        raise UnsupportedMedia(f"{path.name}: cannot be read ({e.strerror or e})") from e


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


def sniff(name: str, f: IO[bytes], size: int) -> tuple[AudioFormat, int]:
    """The format of the file and where its own data starts, past leading ID3v2 tags."""
    if size == 0:
        raise refuse(name, "empty file")
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
        raise refuse(name, "not a supported audio format (detected a raw AAC/ADTS stream)")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3", 0
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise refuse(name, f"not a supported audio format (detected {what})")
    if head[:4] == b"RIFF":
        form = head[8:12].decode("latin-1").strip()
        raise refuse(name, f"not a supported audio format (detected a RIFF {form!r} file)")
    if _looks_like_text(head):
        raise refuse(name, "not an audio file (it is text)")
    raise refuse(name, "not an audio file")


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
            raise refuse(name, "corrupt ID3v2 tag (bad size)")
        body = 0
        for byte in header[6:10]:  # a "synchsafe" integer: 7 bits a byte
            body = body << 7 | byte
        offset += 10 + body + (10 if header[5] & 0x10 else 0)
        if offset > size:
            raise refuse(name, "truncated file (its ID3v2 tag runs past the end of the file)")


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
            raise refuse(name, f"unsupported codec {codec}")
    raise refuse(name, "unsupported codec (the Ogg stream is neither Vorbis nor Opus)")


def load(name: str, kind: Constructor, f: IO[bytes], label: str) -> Any:
    f.seek(0)
    try:
        return kind(f)
    except READ_FAILURES as e:
        raise refuse(name, f"truncated or corrupt {label} file ({one_line(e)})") from e


def _duration(name: str, seconds: float) -> float:
    if not math.isfinite(seconds) or seconds <= 0:
        raise refuse(name, "no audio (its duration is zero)")
    return float(seconds)


def _info(audio_format: AudioFormat, codec: str, duration: float, names: Names) -> MediaInfo:
    return MediaInfo(
        format=audio_format,
        media_type=MEDIA_TYPES[audio_format],
        codec=codec,
        duration_seconds=duration,
        title=names.title,
        artist=names.artist,
        album=names.album,
        cover=names.cover,
        album_artist=names.album_artist,
        date=names.date,
        disc=names.disc,
        track=names.track,
    )


def _probe_mp3(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    f.seek(0)
    try:
        audio = FILE_TYPES["mp3"](f)
    except HeaderNotFoundError as e:
        raise refuse(name, "no audio frames found") from e
    except READ_FAILURES as e:
        raise refuse(name, f"truncated or corrupt MP3 file ({one_line(e)})") from e
    info = audio.info
    if info.sketchy:
        raise refuse(name, "no audio frames found (no run of valid MPEG frames)")
    if info.layer != 3:
        raise refuse(name, f"unsupported codec MPEG audio layer {'I' * info.layer}")
    check_mp3_length(name, f, size, info)
    return _info("mp3", "mp3", _duration(name, info.length), id3_names(audio.tags))


def _probe_flac(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    check_flac_stream(name, f, size, offset)
    audio = load(name, FLAC, f, "FLAC")
    names = vorbis_names(audio.tags, audio.pictures)
    return _info("flac", "flac", _duration(name, audio.info.length), names)


def _probe_vorbis(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    audio = load(name, OggVorbis, f, "Ogg Vorbis")
    check_ogg_end(name, f, size)
    names = vorbis_names(audio.tags, ())
    return _info("ogg", "vorbis", _duration(name, audio.info.length), names)


def _probe_opus(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    audio = load(name, OggOpus, f, "Ogg Opus")
    check_ogg_end(name, f, size)
    names = vorbis_names(audio.tags, ())
    return _info("opus", "opus", _duration(name, audio.info.length), names)


_WAV_CODECS: Final = {1: "pcm", 3: "pcm_float"}


def _probe_wav(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    chunks = chunk_names(name, f, size, "little", "WAV")
    if b"fmt " not in chunks:
        raise refuse(name, "truncated or corrupt WAV file (no 'fmt ' chunk)")
    if b"data" not in chunks:
        raise refuse(name, "no audio (the WAV file has no 'data' chunk)")
    fmt = read_chunk(f, chunks[b"fmt "], 64)
    tag = int.from_bytes(fmt[0:2], "little")
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID decides
        tag = int.from_bytes(fmt[24:26], "little")
    if tag not in _WAV_CODECS:
        raise refuse(name, f"unsupported codec (WAV format tag 0x{tag:04x})")
    audio = load(name, WAVE, f, "WAV")
    names = id3_names(audio.tags)
    if b"LIST" in chunks:
        names = riff_info_names(f, chunks[b"LIST"], names)
    return _info("wav", _WAV_CODECS[tag], _duration(name, audio.info.length), names)


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
    chunks = chunk_names(name, f, size, "big", "AIFF")
    if b"COMM" not in chunks:
        raise refuse(name, "truncated or corrupt AIFF file (no 'COMM' chunk)")
    if b"SSND" not in chunks:
        raise refuse(name, "no audio (the AIFF file has no 'SSND' chunk)")
    f.seek(8)
    codec = "pcm"
    if f.read(4) == b"AIFC":
        compression = read_chunk(f, chunks[b"COMM"], 64)[18:22]
        if compression not in _AIFC_CODECS:
            kind = compression.decode("latin-1")
            raise refuse(name, f"unsupported codec (AIFF-C compression {kind!r})")
        codec = _AIFC_CODECS[compression]
    audio = load(name, AIFF, f, "AIFF")
    names = id3_names(audio.tags)
    # AIFF's own NAME and AUTH chunks, for files without ID3
    title = text_chunk(read_chunk(f, chunks[b"NAME"])) if b"NAME" in chunks else None
    author = text_chunk(read_chunk(f, chunks[b"AUTH"])) if b"AUTH" in chunks else None
    names = replace(names, title=names.title or title, artist=names.artist or author)
    return _info("aiff", codec, _duration(name, audio.info.length), names)


def _probe_m4a(name: str, f: IO[bytes], size: int, offset: int) -> MediaInfo:
    check_mp4_atoms(name, f, size)
    audio = load(name, MP4, f, "MP4")
    codec_id: str = audio.info.codec
    if codec_id.startswith("mp4a.40.") or codec_id in ("mp4a.66", "mp4a.67", "mp4a.68"):
        codec = "aac"
    elif codec_id == "alac":
        codec = "alac"
    else:
        raise refuse(name, f"unsupported codec {codec_id!r} in MP4")
    names = mp4_names(audio.tags)
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

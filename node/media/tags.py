"""Writing the artist's terms into a file's tags and reading them back (PROTOCOL §10).

ID3 for MP3, WAV and AIFF; Vorbis comments for FLAC, Ogg Vorbis and Opus; MP4 atoms for M4A.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Final
from urllib.parse import quote

from mutagen.id3 import PRIV, TCOP, TXXX, USER, WCOP, Encoding
from mutagen.mp4 import AtomDataType, MP4FreeForm

from node.errors import StoreError
from node.media.formats import FILE_TYPES, READ_FAILURES, AudioFormat, Constructor, one_line, refuse
from node.media.names import tag_text
from node.media.probe import load, open_audio, probe, sniff
from node.media.terms import (
    CUSTOM_FIELDS,
    ID3_CUSTOM_FIELDS,
    TAGGED_FIELDS,
    TERMS_FIELDS,
    EmbeddedTerms,
)
from node.media.xmp import xmp_packet

_MP4_FREEFORM: Final = "----:com.apple.iTunes:"
_ID3_FRAMES: Final[dict[str, Constructor]] = {
    "TCOP": TCOP,
    "WCOP": WCOP,
    "USER": USER,
    "TXXX": TXXX,
    "PRIV": PRIV,
}
_FREEFORM: Final[Constructor] = MP4FreeForm


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
    except READ_FAILURES as e:
        # mutagen re-raises most OS errors as MutagenError; the OS error is its context.
        cause = e if isinstance(e, OSError) else e.__context__
        if isinstance(cause, OSError):
            reason = cause.strerror or one_line(cause)
            raise StoreError(f"{path.name}: could not write the terms ({reason})") from e
        raise refuse(path.name, f"could not write the terms into its tags ({one_line(e)})") from e


def read_terms(path: Path) -> dict[str, str]:
    """The terms found in the file's tags, keyed by `TERMS_FIELDS` names; {} when there are none."""
    with open_audio(path) as f:
        try:
            audio_format, _ = sniff(path.name, f, os.fstat(f.fileno()).st_size)
            audio = load(path.name, FILE_TYPES[audio_format], f, audio_format.upper())
        except READ_FAILURES as e:
            raise refuse(path.name, f"truncated or corrupt file ({one_line(e)})") from e
    tags = audio.tags
    if tags is None:
        return {}
    if audio_format in ("mp3", "wav", "aiff"):
        found = {f"TXXX:{name}": name for name in ID3_CUSTOM_FIELDS}
        found.update(TCOP="COPYRIGHT")
        terms = {name: tag_text(tags[key].text) for key, name in found.items() if key in tags}
        wcop = tags.getall("WCOP")
        if wcop:
            terms["LICENSE_URL"] = wcop[0].url
    elif audio_format == "m4a":
        terms = {
            name: tag_text(_mp4_strings(tags.get(_MP4_FREEFORM + name))) for name in CUSTOM_FIELDS
        }
        terms["COPYRIGHT"] = tag_text(tags.get("cprt"))
    else:
        terms = {name: tag_text(tags.get(name)) for name in TAGGED_FIELDS}
    return {name: value for name in TERMS_FIELDS if (value := terms.get(name))}


def _write_id3(path: Path, audio_format: AudioFormat, terms: EmbeddedTerms) -> None:
    audio = FILE_TYPES[audio_format](path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for key in list(tags.keys()):
        frame = tags[key]
        ours = frame.FrameID in ("TCOP", "WCOP", "USER")
        ours |= frame.FrameID == "TXXX" and frame.desc.upper() in ID3_CUSTOM_FIELDS
        ours |= frame.FrameID == "PRIV" and frame.owner == "XMP"
        if ours:
            del tags[key]
    fields = terms.fields()
    if "COPYRIGHT" in fields:
        tags.add(_ID3_FRAMES["TCOP"](encoding=Encoding.UTF8, text=[fields["COPYRIGHT"]]))
    if terms.link:
        # URL frames are Latin-1 (ID3v2.4 §4.3): an IRI goes in percent-encoded. Without a
        # licence URL (all rights reserved) the track's terms page goes here: every copy links
        # back to its terms.
        url = quote(terms.link, safe=string.punctuation)
        tags.add(_ID3_FRAMES["WCOP"](url=url))
    if terms.terms_in_words:
        tags.add(_ID3_FRAMES["USER"](encoding=Encoding.UTF8, lang="eng", text=terms.terms_in_words))
    for name in ID3_CUSTOM_FIELDS:
        if name in fields:
            tags.add(_ID3_FRAMES["TXXX"](encoding=Encoding.UTF8, desc=name, text=[fields[name]]))
    # Adobe's convention for XMP in ID3, which ExifTool and Adobe tools read.
    tags.add(_ID3_FRAMES["PRIV"](owner="XMP", data=xmp_packet(terms)))
    audio.save(v2_version=4)


def _write_vorbis(path: Path, audio_format: AudioFormat, terms: EmbeddedTerms) -> None:
    audio = FILE_TYPES[audio_format](path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for name in TAGGED_FIELDS:
        if name in tags:  # comment names are case-insensitive; this drops every spelling
            del tags[name]
    for name, value in terms.fields().items():
        tags[name] = [value]
    audio.save()


def _write_mp4(path: Path, terms: EmbeddedTerms) -> None:
    audio = FILE_TYPES["m4a"](path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    ours = {_MP4_FREEFORM.lower() + name.lower() for name in CUSTOM_FIELDS}
    for key in list(tags.keys()):
        if key == "cprt" or key.lower() in ours:
            del tags[key]
    fields = terms.fields()
    if "COPYRIGHT" in fields:
        tags["cprt"] = [fields["COPYRIGHT"]]
    for name in CUSTOM_FIELDS:
        if name in fields:
            value = _FREEFORM(fields[name].encode("utf-8"), dataformat=AtomDataType.UTF8)
            tags[_MP4_FREEFORM + name] = [value]
    audio.save()


def _mp4_strings(values: Iterable[bytes] | None) -> list[str]:
    return [bytes(value).decode("utf-8", "replace") for value in values or ()]

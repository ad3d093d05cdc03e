"""The audio formats Stave publishes, their media types, and how a refusal is worded.

The ground every other module of `node.media` stands on; it imports none of them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final, Literal, get_args

from mutagen import MutagenError
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from node.errors import UnsupportedMedia

AudioFormat = Literal["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]
SUPPORTED_FORMATS: Final[tuple[AudioFormat, ...]] = get_args(AudioFormat)

# RFC 7845 §9 registers Ogg Opus files as audio/ogg, like Ogg Vorbis.
MEDIA_TYPES: Final[dict[AudioFormat, str]] = {
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "aiff": "audio/aiff",
}

# mutagen signals hostile input with more than MutagenError: a short read inside a struct, a bad
# index or an impossible value surface as these. Anything else is a bug and should be seen.
READ_FAILURES: Final = (
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
Constructor = Callable[..., Any]
FILE_TYPES: Final[dict[AudioFormat, Constructor]] = {
    "mp3": MP3,
    "flac": FLAC,
    "ogg": OggVorbis,
    "opus": OggOpus,
    "m4a": MP4,
    "wav": WAVE,
    "aiff": AIFF,
}


def media_type_for(audio_format: str) -> str:
    """The media type Stave serves a file of this format with."""
    if audio_format not in MEDIA_TYPES:
        raise UnsupportedMedia(f"{audio_format}: not a supported audio format")
    return MEDIA_TYPES[audio_format]


def refuse(name: str, reason: str) -> UnsupportedMedia:
    return UnsupportedMedia(one_line(f"{name}: {reason}"))


def one_line(message: object) -> str:
    return " ".join(str(message).split()) or type(message).__name__

"""Listening renditions: a small streaming copy of an audio file, made with PyAV (FFmpeg's
libraries), never a subprocess to an `ffmpeg` binary that may be missing.

Any of the seven formats Stave publishes is decoded a frame at a time and encoded to Opus in
Ogg (RFC 7845) with libopus, at 48 kHz (the rate Opus codes at), in mono or stereo; the output
is written as it is encoded, so neither file is ever whole in memory. The caller runs
`transcode` in a thread: it is CPU-bound and blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from node.errors import StoreError, UnsupportedMedia
from node.media.formats import one_line
from node.settings import rendition_problem

if TYPE_CHECKING:
    import av

# RFC 7845 §9 and RFC 6381: the codecs parameter lets a player ask `canPlayType` exactly.
OPUS_MEDIA_TYPE: Final = "audio/ogg; codecs=opus"
OPUS_RATE: Final = 48_000
OPUS_FRAME: Final = 960  # 20 ms at 48 kHz, libopus's default frame


@dataclass(frozen=True)
class Rendition:
    """One kind of rendition the node makes: a codec and its bitrate in bits per second."""

    codec: str
    bitrate: int

    @property
    def media_type(self) -> str:
        return OPUS_MEDIA_TYPE

    @property
    def suffix(self) -> str:
        return ".opus"

    @property
    def label(self) -> str:
        """The form `media.renditions` spells it in: `opus:128`."""
        return f"{self.codec}:{self.bitrate // 1000}"

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether a manifest's `renditions` entry is a rendition of this kind."""
        return entry.get("mediaType") == self.media_type and entry.get("bitrate") == self.bitrate


def parse_rendition(text: str) -> Rendition:
    """`opus:128` as a `Rendition`; a `UnsupportedMedia` naming it if it is not one."""
    if (problem := rendition_problem(text)) is not None:
        raise UnsupportedMedia(f"rendition {problem}")
    codec, kbps = text.split(":")
    return Rendition(codec, int(kbps) * 1000)


def transcode(
    source: Path,
    destination: Path,
    rendition: Rendition,
    on_progress: Callable[[float], None] | None = None,
) -> float:
    """Encode `source` as `rendition` into `destination` (created or replaced); returns the
    seconds of audio written. `on_progress` gets the seconds encoded so far, now and then.

    A file FFmpeg cannot decode is refused with `UnsupportedMedia` naming it; a destination
    that cannot be written is a `StoreError`. Either way `destination` may be left partial:
    callers write to a temporary file and discard it.
    """
    import av  # FFmpeg's libraries, about 60 MB mapped: only where a file is transcoded

    try:
        inp = av.open(str(source))
    except av.FFmpegError as e:
        raise UnsupportedMedia(f"{source.name}: cannot transcode ({_reason(e)})") from e
    with inp:
        if not inp.streams.audio:
            raise UnsupportedMedia(f"{source.name}: has no audio stream to transcode")
        try:
            out = av.open(str(destination), "w", format="ogg")
        except av.FFmpegError as e:
            raise StoreError(f"{destination.name}: cannot write ({_reason(e)})") from e
        with out:
            try:
                seconds = _encode(inp, inp.streams.audio[0], out, rendition, on_progress)
            except _WriteFailed as e:
                reason = _reason(e.error)
                raise StoreError(f"{destination.name}: cannot write ({reason})") from e.error
            except av.FFmpegError as e:
                raise UnsupportedMedia(f"{source.name}: cannot transcode ({_reason(e)})") from e
    if seconds == 0:
        raise UnsupportedMedia(f"{source.name}: has no audio to transcode")
    return seconds


class _WriteFailed(Exception):
    """Writing the rendition failed: the muxer opens and writes the file lazily, so this tells
    a full disk from a corrupt source."""

    def __init__(self, error: av.FFmpegError) -> None:
        super().__init__(str(error))
        self.error = error


def _reason(error: av.FFmpegError) -> str:
    """FFmpeg's words for an error, without its number or the path it was given."""
    return one_line(error.strerror or error).lower()


def _encode(
    inp: av.container.InputContainer,
    stream: av.AudioStream,
    out: av.container.OutputContainer,
    rendition: Rendition,
    on_progress: Callable[[float], None] | None,
) -> float:
    import av

    # One core: the benchmark's terms, and a node that transcodes while it serves.
    stream.codec_context.thread_count = 1
    layout = "mono" if stream.codec_context.channels == 1 else "stereo"
    encoder = out.add_stream("libopus", rate=OPUS_RATE, layout=layout)
    encoder.bit_rate = rendition.bitrate
    encoder.format = "flt"
    # The resampler also cuts the audio into the encoder's frames (the last one padded; the
    # Ogg muxer's end granule position trims the padding again, RFC 7845 §4.5).
    resampler = av.AudioResampler(
        format="flt", layout=layout, rate=OPUS_RATE, frame_size=OPUS_FRAME
    )
    samples = 0
    reported = 0

    def encode(frame: av.AudioFrame | None) -> None:
        nonlocal samples
        for chunk in resampler.resample(frame):
            chunk.pts = samples
            samples += chunk.samples
            mux(encoder.encode(chunk))

    def mux(packets: list[av.Packet[Any]]) -> None:
        try:
            out.mux(packets)
        except av.FFmpegError as e:
            raise _WriteFailed(e) from e

    for frame in inp.decode(stream):
        frame.pts = None  # timestamps are rebuilt from the sample count; gaps never matter here
        encode(frame)
        if on_progress is not None and samples - reported >= 10 * OPUS_RATE:
            reported = samples
            on_progress(samples / OPUS_RATE)
    encode(None)
    mux(encoder.encode(None))
    return samples / OPUS_RATE

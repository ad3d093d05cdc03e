"""Whole-file checks, per format: a file Stave publishes must not be truncated or corrupt.

MP3 against its Xing/Info byte count, FLAC by its last frame's CRC and STREAMINFO's sample
count, Ogg by a whole end-of-stream page, WAV/AIFF by chunks that fit the file, MP4 by atoms
that fit the file and hold no video track. Each check reads a header or a tail, never the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final, Literal

from node.errors import UnsupportedMedia
from node.media.formats import refuse


def check_mp3_length(name: str, f: IO[bytes], size: int, info: Any) -> None:
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
        raise refuse(
            name, f"truncated MP3 stream (holds {held} of the {expected} bytes its header records)"
        )


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


def check_flac_stream(name: str, f: IO[bytes], size: int, offset: int) -> None:
    """Require audio frames after the metadata, and a last frame that is whole and ends where
    STREAMINFO says the stream ends (https://www.rfc-editor.org/rfc/rfc9639)."""

    def corrupt(why: str) -> UnsupportedMedia:
        return refuse(name, f"truncated or corrupt FLAC stream ({why})")

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
        raise refuse(name, "no audio frames found")
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


def check_ogg_end(name: str, f: IO[bytes], size: int) -> None:
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
            raise refuse(name, "truncated Ogg stream (it does not end with an end-of-stream page)")
        return
    raise refuse(name, "truncated or corrupt Ogg stream (its last page is incomplete)")


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


def chunk_names(
    name: str, f: IO[bytes], size: int, byteorder: Literal["little", "big"], label: str
) -> dict[bytes, tuple[int, int]]:
    f.seek(4)
    declared = int.from_bytes(f.read(4), byteorder)
    if declared != size - 8:
        # mutagen writes its ID3 chunk where the header says the file ends: trusting a wrong
        # size would publish a corrupt file.
        raise refuse(
            name,
            f"truncated or corrupt {label} file (its header says {declared + 8} bytes,"
            f" the file holds {size})",
        )
    found: dict[bytes, tuple[int, int]] = {}
    for chunk_id, start, length in _chunks(f, size, byteorder):
        if start + length > size:
            kind = chunk_id.decode("latin-1")
            raise refuse(
                name, f"truncated or corrupt {label} file (its {kind!r} chunk runs past the end)"
            )
        found.setdefault(chunk_id, (start, length))
    return found


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


def check_mp4_atoms(name: str, f: IO[bytes], size: int) -> None:
    def corrupt(why: str) -> UnsupportedMedia:
        return refuse(name, f"truncated or corrupt MP4 file ({why})")

    top: dict[bytes, tuple[int, int]] = {}
    try:
        for kind, data, end in _atoms(f, 0, size):
            if end > size:
                raise corrupt(f"its {kind.decode('latin-1')!r} atom runs past the end of the file")
            top.setdefault(kind, (data, end))
        if b"moov" not in top:
            raise corrupt("no 'moov' atom")
        if b"mdat" not in top:
            raise refuse(name, "no audio (the MP4 file has no 'mdat' atom)")
        if b"vide" in _mp4_handlers(f, *top[b"moov"]):
            raise refuse(name, "not a supported audio format (it has a video track)")
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

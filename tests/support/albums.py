"""A folder of music as an artist hands it to `stave add DIR`: the shared fixtures (all seven
formats) as disc 1, tagged in an order other than their names', a generated second disc in
`CD2/` (one file untagged), a cover file, a picture that is not the cover, and notes."""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.audio import silent_wav
from tests.support.shared import AUDIO_FIXTURES

# The smallest baseline JPEG: one white pixel (PyAV decodes it).
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP////////////////////////////////////////////////////"
    "//////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBA"
    "QABPxA="
)
ALBUM = "Night Drive"
DATE = "2025-05-06"


@dataclass(frozen=True)
class Album:
    folder: Path
    order: list[str]  # the files, relative to the folder, in the play order expected
    places: list[tuple[int, int]]  # each one's disc and number


def set_tags(path: Path, **tags: str) -> None:
    """Set album, albumartist, date, disc and track tags (any of them) in any of the seven
    formats, the way a tagger would."""
    from mutagen import id3

    from node import media
    from node.media.formats import FILE_TYPES

    audio_format = media.probe(path).format
    audio: Any = FILE_TYPES[audio_format](path)
    if audio.tags is None:
        audio.add_tags()
    if audio_format in ("mp3", "wav", "aiff"):
        frames: dict[str, Any] = {
            "album": id3.TALB,
            "albumartist": id3.TPE2,
            "date": id3.TDRC,
            "disc": id3.TPOS,
            "track": id3.TRCK,
        }
        for key, value in tags.items():
            audio.tags.add(frames[key](encoding=id3.Encoding.UTF8, text=[value]))
    elif audio_format == "m4a":
        atoms = {"album": "\xa9alb", "albumartist": "aART", "date": "\xa9day"}
        for key, value in tags.items():
            if key in ("disc", "track"):
                number, _, total = value.partition("/")
                pair = (int(number), int(total or 0))
                audio.tags["disk" if key == "disc" else "trkn"] = [pair]
            else:
                audio.tags[atoms[key]] = [value]
    else:
        names = {"disc": "discnumber", "track": "tracknumber"}
        for key, value in tags.items():
            audio.tags[names.get(key, key)] = [value]
    audio.save()


def embedded_picture() -> bytes:
    """The PNG embedded in the FLAC fixture."""
    from node import media

    cover = media.probe(next(p for p in AUDIO_FIXTURES if p.suffix == ".flac")).cover
    assert cover is not None
    return cover.data


def make_album(root: Path) -> Album:
    folder = root / ALBUM
    (folder / "CD2").mkdir(parents=True)
    # disc 1: the fixtures, numbered in the reverse of their names' order
    by_name = sorted(AUDIO_FIXTURES, key=lambda p: p.name)
    for number, source in enumerate(reversed(by_name), start=1):
        target = folder / source.name
        shutil.copyfile(source, target)
        target.chmod(0o644)
        set_tags(
            target,
            album=ALBUM,
            albumartist="Ada Example",
            date=DATE,
            disc="1/2",
            track=f"{number}/{len(by_name)}",
        )
    # disc 2: generated, a.wav is track 2 and b.wav track 1; c.wav has no tags at all
    for name, track in (("a.wav", "2"), ("b.wav", "01")):
        silent_wav(folder / "CD2" / name, 1.5)
        set_tags(folder / "CD2" / name, album=ALBUM, date=DATE, disc="2", track=track)
    silent_wav(folder / "CD2" / "c.wav", 0.5)
    (folder / "cover.jpg").write_bytes(JPEG)
    (folder / "booklet.png").write_bytes(embedded_picture())  # a picture, not named a cover
    (folder / "notes.txt").write_text("Recorded at night.\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    disc_one = [p.name for p in reversed(by_name)]
    return Album(
        folder,
        [*disc_one, "CD2/b.wav", "CD2/a.wav", "CD2/c.wav"],
        [(1, n) for n in range(1, len(disc_one) + 1)] + [(2, 1), (2, 2), (2, 3)],
    )

"""Probing audio and the terms written into its tags (PROTOCOL §10), on the shared fixture files.

Tags are read back three ways: `read_terms`, raw mutagen, and ExifTool as an independent reader.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import mutagen
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.errors import StoreError, UnsupportedMedia, UsageError
from node.media import (
    SUPPORTED_FORMATS,
    EmbeddedTerms,
    MediaInfo,
    cover_media_type,
    media_type_for,
    probe,
    read_terms,
    write_terms,
    xmp_packet,
)
from tests.support.shared import FIXTURES as AUDIO

BAD = AUDIO / "bad"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ID3_FORMATS = ("mp3", "wav", "aiff")
VORBIS_FORMATS = ("flac", "ogg", "opus")
PLUS = "{http://ns.useplus.org/ldf/xmp/1.0/}"
DMI = "http://ns.useplus.org/ldf/vocab/"

# format: (media type, codec, has a cover, has title and artist tags)
# The WAV fixture carries no title or artist: its only tag is RIFF INFO ISFT (the encoder).
EXPECTED = {
    "mp3": ("audio/mpeg", "mp3", True, True),
    "flac": ("audio/flac", "flac", True, True),
    "ogg": ("audio/ogg", "vorbis", False, True),
    "opus": ("audio/ogg", "opus", False, True),
    "m4a": ("audio/mp4", "aac", True, True),
    "wav": ("audio/wav", "pcm", False, False),
    "aiff": ("audio/aiff", "pcm", False, True),
}

TERMS = EmbeddedTerms(
    copyright="2026 Ada Éxample",
    license="CC-BY-NC-ND-4.0",
    license_url="https://creativecommons.org/licenses/by-nc-nd/4.0/",
    terms_in_words="Listen & share <freely>; no AI training without asking.",
    tdm_reservation=1,
    ai_training="notAllowed",
    artist_did="did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
    track_id="urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    feed_url="https://ada.example/feed.json",
)
REVISED = EmbeddedTerms(
    copyright="2027 Ada Example",
    license="CC-BY-4.0",
    license_url="https://creativecommons.org/licenses/by/4.0/",
    terms_in_words="Share and adapt with credit; AI training allowed.",
    tdm_reservation=0,
    ai_training="allowed",
    artist_did=TERMS.artist_did,
    track_id=TERMS.track_id,
    feed_url=TERMS.feed_url,
)


def expected_terms(terms: EmbeddedTerms, audio_format: str) -> dict[str, str]:
    expected = {
        "COPYRIGHT": terms.copyright,
        "LICENSE": terms.license,
        "TDM_RESERVATION": str(terms.tdm_reservation),
        "AI_TRAINING": terms.ai_training,
        "STAVE_ARTIST": terms.artist_did,
        "STAVE_TRACK": terms.track_id,
        "STAVE_FEED": terms.feed_url,
    }
    # every format links back: ID3 in WCOP, Vorbis and MP4 in LICENSE_URL
    expected["LICENSE_URL"] = terms.license_url
    return expected


def fixture(audio_format: str) -> Path:
    return AUDIO / f"tone.{audio_format}"


def writable_copy(audio_format: str, tmp_path: Path, name: str | None = None) -> Path:
    copy = tmp_path / (name or f"tone.{audio_format}")
    shutil.copyfile(fixture(audio_format), copy)
    return copy


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def exiftool(path: Path) -> dict[str, list[str]]:
    """Every tag ExifTool finds, as "Group:Tag" -> values (repeated tags keep every copy)."""
    exe = shutil.which("exiftool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("exiftool is missing; CI installs the libimage-exiftool-perl package")
        pytest.skip("exiftool is not installed (Debian: apt-get install libimage-exiftool-perl)")
    # -G1:4 names repeated tags "Group:CopyN:Tag" instead of dropping them; -b gives pictures
    # as base64; -n keeps raw values (the PLUS URI rather than its description).
    run = subprocess.run(
        [exe, "-j", "-a", "-G1:4", "-n", "-b", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    [record] = json.loads(run.stdout)
    tags: dict[str, list[str]] = {}
    for key, value in record.items():
        group, _, name = key.rpartition(":")
        tags.setdefault(f"{group.split(':')[0]}:{name}", []).append(str(value))
    return tags


def exif_binary(value: str) -> bytes:
    assert value.startswith("base64:"), value
    return base64.b64decode(value.removeprefix("base64:"))


def data_mining(xmp: bytes) -> str | None:
    return ET.fromstring(xmp.split(b"?>", 1)[1].rsplit(b"<?", 1)[0]).findtext(
        f".//{PLUS}DataMining"
    )


# --- probe ---


@pytest.mark.parametrize("audio_format", SUPPORTED_FORMATS)
def test_probe_describes_fixture(audio_format: str) -> None:
    path = fixture(audio_format)
    media_type, codec, has_cover, has_names = EXPECTED[audio_format]

    info = probe(path)

    assert info.format == audio_format
    assert info.media_type == media_type == media_type_for(audio_format)
    assert info.codec == codec
    real = mutagen.File(path).info.length
    assert info.duration_seconds == pytest.approx(real)
    assert info.duration_seconds == pytest.approx(2.0, abs=0.1)  # the tones are 2 s long
    assert info.title == ("Tone in A" if has_names else None)
    assert info.artist == ("Fixture Artist" if has_names else None)
    if has_cover:
        assert info.cover is not None
        assert info.cover.media_type == "image/png"
        assert info.cover.data.startswith(PNG_MAGIC)
        assert len(info.cover.data) == 200
    else:
        assert info.cover is None


@pytest.mark.parametrize("audio_format", SUPPORTED_FORMATS)
def test_probe_ignores_the_file_name(audio_format: str, tmp_path: Path) -> None:
    misnamed = writable_copy(audio_format, tmp_path, name="track.mp3.png")
    assert probe(misnamed) == probe(fixture(audio_format))


BAD_REASONS = {
    "empty.flac": "empty file",
    "image-named.ogg": "not a supported audio format (detected PNG image)",
    "not-audio.mp3": "not an audio file",
    "truncated.flac": "truncated or corrupt FLAC stream",
    "truncated.mp3": "truncated file",
}


@pytest.mark.parametrize("path", sorted(BAD.iterdir()), ids=lambda path: path.name)
def test_probe_refuses_bad_file(path: Path) -> None:
    with pytest.raises(UnsupportedMedia) as refused:
        probe(path)
    message = str(refused.value)
    assert message.startswith(f"{path.name}: ")
    assert "\n" not in message
    assert BAD_REASONS.get(path.name, "") in message


@pytest.mark.parametrize("audio_format", SUPPORTED_FORMATS)
def test_probe_refuses_truncated_copy(audio_format: str, tmp_path: Path) -> None:
    whole = fixture(audio_format).read_bytes()
    cut = tmp_path / f"cut.{audio_format}"
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    with pytest.raises(UnsupportedMedia, match=r"^cut\.\w+: truncated"):
        probe(cut)


def test_probe_refuses_flac_cut_between_frames(tmp_path: Path) -> None:
    # A cut exactly before the last frame leaves whole frames only; STREAMINFO's sample count
    # still shows the audio ends early.
    whole = fixture("flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole[: whole.rindex(b"\xff\xf8")])
    with pytest.raises(UnsupportedMedia, match=r"audio ends at 1\.\d\d s of 2\.00 s"):
        probe(cut)


@pytest.mark.parametrize("audio_format", ["ogg", "opus"])
def test_probe_refuses_ogg_cut_between_pages(audio_format: str, tmp_path: Path) -> None:
    # Every page left is whole, but the stream lacks its end-of-stream page (RFC 3533 §6).
    whole = fixture(audio_format).read_bytes()
    cut = tmp_path / f"cut.{audio_format}"
    cut.write_bytes(whole[: whole.rindex(b"OggS")])
    with pytest.raises(UnsupportedMedia, match="does not end with an end-of-stream page"):
        probe(cut)


def test_probe_reads_riff_info_names_of_wav_without_id3(tmp_path: Path) -> None:
    whole = fixture("wav").read_bytes()
    fields = b"".join(
        tag + len(text).to_bytes(4, "little") + text + b"\0" * (len(text) % 2)  # RIFF pads to even
        for tag, text in ((b"INAM", b"Tone in A\0"), (b"IART", b"Fixture Artist\0"))
    )
    info_list = b"LIST" + (4 + len(fields)).to_bytes(4, "little") + b"INFO" + fields
    body = whole[12:].replace(whole[36 : 36 + 8 + 26], info_list)  # replace the ISFT-only list
    tagged = tmp_path / "tagged.wav"
    tagged.write_bytes(b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body)

    info = probe(tagged)

    assert (info.title, info.artist, info.duration_seconds) == ("Tone in A", "Fixture Artist", 2.0)


def test_probe_names_an_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match=r"^missing\.mp3: cannot be read"):
        probe(tmp_path / "missing.mp3")


def test_cover_media_type_reads_magic_bytes() -> None:
    assert cover_media_type(PNG_MAGIC + b"rest") == "image/png"
    assert cover_media_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert cover_media_type(b"BM not shown by browsers") is None


# --- terms in tags ---


def raw_terms(path: Path, audio_format: str) -> dict[str, Any]:
    """The terms straight from mutagen, with how many of each frame/field there are."""
    tags = mutagen.File(path).tags
    if audio_format in ID3_FORMATS:
        assert tags.version == (2, 4, 0)
        txxx = {frame.desc: frame.text for frame in tags.getall("TXXX")}
        xmp = [frame.data for frame in tags.getall("PRIV") if frame.owner == "XMP"]
        users = tags.getall("USER")
        return {
            "COPYRIGHT": [str(text) for frame in tags.getall("TCOP") for text in frame.text],
            "LICENSE_URL": [frame.url for frame in tags.getall("WCOP")],
            "USER": [(frame.lang, frame.text) for frame in users],
            "XMP": [data_mining(packet) for packet in xmp],
            **{name: txxx.get(name, []) for name in ("LICENSE", "AI_TRAINING", "STAVE_TRACK")},
            "TXXX count": len(tags.getall("TXXX")),
        }
    if audio_format == "m4a":
        freeform = "----:com.apple.iTunes:"
        return {
            "COPYRIGHT": tags.get("cprt", []),
            **{
                name: [bytes(value).decode() for value in tags.get(freeform + name, [])]
                for name in ("LICENSE", "AI_TRAINING", "STAVE_TRACK")
            },
        }
    return {
        name: tags.get(name, []) for name in ("COPYRIGHT", "LICENSE", "AI_TRAINING", "STAVE_TRACK")
    }


def other_tags(path: Path) -> dict[str, str]:
    """Every tag that is not part of the terms, as mutagen shows it."""
    tags = mutagen.File(path).tags
    if tags is None:
        return {}
    ours = {"COPYRIGHT", "LICENSE", "TDM_RESERVATION", "AI_TRAINING"}
    ours |= {"STAVE_ARTIST", "STAVE_TRACK", "STAVE_FEED", "LICENSE_URL", "AI_TRAINING_OFFER"}
    kept = {}
    for key, value in tags.items():
        name = key.rsplit(":", 1)[-1].upper()
        if name in ours or key[:4] in ("TCOP", "WCOP", "USER", "PRIV") or key == "cprt":
            continue
        kept[key] = repr(value)
    return kept


@pytest.mark.parametrize("audio_format", SUPPORTED_FORMATS)
def test_write_terms_round_trip(audio_format: str, tmp_path: Path) -> None:
    original = fixture(audio_format)
    before_hash = sha256(original)
    copy = writable_copy(audio_format, tmp_path)
    before = probe(copy)
    untouched_tags = other_tags(copy)

    write_terms(copy, TERMS)

    assert read_terms(copy) == expected_terms(TERMS, audio_format)
    after = probe(copy)
    assert (after.title, after.artist, after.album, after.cover) == (
        before.title,
        before.artist,
        before.album,
        before.cover,
    )
    assert after.duration_seconds == pytest.approx(before.duration_seconds, abs=0.01)
    assert other_tags(copy) == untouched_tags
    assert sha256(original) == before_hash

    raw = raw_terms(copy, audio_format)
    assert raw["COPYRIGHT"] == [TERMS.copyright]
    assert raw["LICENSE"] == [TERMS.license]
    assert raw["AI_TRAINING"] == ["notAllowed"]
    assert raw["STAVE_TRACK"] == [TERMS.track_id]
    if audio_format in ID3_FORMATS:
        assert raw["LICENSE_URL"] == [TERMS.license_url]
        assert raw["USER"] == [("eng", TERMS.terms_in_words)]
        assert raw["XMP"] == [DMI + "DMI-PROHIBITED-AIMLTRAINING"]

    check_with_exiftool(copy, audio_format, before)


def check_with_exiftool(path: Path, audio_format: str, before: MediaInfo) -> None:
    tags = exiftool(path)
    if audio_format in ID3_FORMATS:
        described = dict(
            text.removeprefix("(").split(") ", 1) for text in tags["ID3v2_4:UserDefinedText"]
        )
        assert described == {
            "LICENSE": TERMS.license,
            "TDM_RESERVATION": "1",
            "AI_TRAINING": "notAllowed",
            "STAVE_ARTIST": TERMS.artist_did,
            "STAVE_TRACK": TERMS.track_id,
            "STAVE_FEED": TERMS.feed_url,
        }
        assert tags["ID3v2_4:Copyright"] == [TERMS.copyright]
        assert tags["ID3v2_4:CopyrightURL"] == [TERMS.license_url]
        assert tags["ID3v2_4:TermsOfUse"] == [TERMS.terms_in_words]
        assert tags["XMP-plus:DataMining"] == [DMI + "DMI-PROHIBITED-AIMLTRAINING"]
        assert tags["XMP-dc:Rights"] == [TERMS.copyright]
        assert tags["XMP-xmpRights:WebStatement"] == [TERMS.license_url]
        names = ("ID3v2_4:Title", "ID3v2_4:Artist", "ID3v2_4:Picture")
    elif audio_format == "m4a":
        assert tags["ItemList:Copyright"] == [TERMS.copyright]
        for name in ("LICENSE", "AI_TRAINING", "STAVE_ARTIST", "STAVE_TRACK", "STAVE_FEED"):
            assert tags[f"iTunes:{name}"] == [expected_terms(TERMS, "m4a")[name]]
        assert tags["iTunes:TDM_RESERVATION"] == ["1"]
        names = ("ItemList:Title", "ItemList:Artist", "ItemList:CoverArt")
    else:
        assert tags["Vorbis:Copyright"] == [TERMS.copyright]
        assert tags["Vorbis:License"] == [TERMS.license]
        assert tags["Vorbis:TdmReservation"] == ["1"]
        assert tags["Vorbis:AiTraining"] == ["notAllowed"]
        assert tags["Vorbis:StaveArtist"] == [TERMS.artist_did]
        assert tags["Vorbis:StaveTrack"] == [TERMS.track_id]
        assert tags["Vorbis:StaveFeed"] == [TERMS.feed_url]
        names = ("Vorbis:Title", "Vorbis:Artist", "FLAC:Picture")
    title, artist, picture = names
    if before.title is not None:
        assert tags[title] == [before.title]
        assert tags[artist] == [before.artist]
    if before.cover is not None:
        assert [exif_binary(value) for value in tags[picture]] == [before.cover.data]


@pytest.mark.parametrize("audio_format", SUPPORTED_FORMATS)
def test_writing_a_revision_leaves_one_of_each(audio_format: str, tmp_path: Path) -> None:
    copy = writable_copy(audio_format, tmp_path)

    write_terms(copy, TERMS)
    write_terms(copy, REVISED)

    assert read_terms(copy) == expected_terms(REVISED, audio_format)
    raw = raw_terms(copy, audio_format)
    assert raw["COPYRIGHT"] == [REVISED.copyright]
    assert raw["LICENSE"] == [REVISED.license]
    assert raw["AI_TRAINING"] == ["allowed"]
    assert raw["STAVE_TRACK"] == [REVISED.track_id]
    if audio_format in ID3_FORMATS:
        assert raw["LICENSE_URL"] == [REVISED.license_url]
        assert raw["USER"] == [("eng", REVISED.terms_in_words)]
        assert raw["XMP"] == [DMI + "DMI-ALLOWED"]
        assert raw["TXXX count"] == 6
    assert probe(copy).title == probe(fixture(audio_format)).title


@pytest.mark.parametrize("audio_format", SUPPORTED_FORMATS)
def test_read_terms_of_untagged_file_is_empty(audio_format: str) -> None:
    assert read_terms(fixture(audio_format)) == {}


@pytest.mark.parametrize("path", sorted(BAD.iterdir()), ids=lambda path: path.name)
def test_write_terms_refuses_bad_file(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    with pytest.raises(UnsupportedMedia, match=f"^{re.escape(path.name)}: "):
        write_terms(copy, TERMS)
    assert copy.read_bytes() == path.read_bytes()


def test_write_terms_takes_iri_and_control_characters(tmp_path: Path) -> None:
    copy = writable_copy("mp3", tmp_path)
    odd = {"license_url": "https://例え.jp/licence", "terms_in_words": "no\x00 AI"}
    write_terms(copy, EmbeddedTerms(**{**TERMS.__dict__, **odd}))

    assert read_terms(copy)["LICENSE_URL"] == "https://%E4%BE%8B%E3%81%88.jp/licence"
    [xmp] = [frame.data for frame in mutagen.File(copy).tags.getall("PRIV")]
    assert b'<rdf:li xml:lang="x-default">no AI</rdf:li>' in xmp
    assert data_mining(xmp) == DMI + "DMI-PROHIBITED-AIMLTRAINING"


@pytest.mark.parametrize(
    ("ai_training", "value"),
    [
        ("notAllowed", "DMI-PROHIBITED-AIMLTRAINING"),
        ("constrained", "DMI-PROHIBITED-AIMLTRAINING"),
        ("allowed", "DMI-ALLOWED"),
    ],
)
def test_xmp_packet_carries_plus_data_mining(ai_training: str, value: str) -> None:
    terms = EmbeddedTerms(**{**TERMS.__dict__, "ai_training": ai_training})
    packet = xmp_packet(terms)
    assert data_mining(packet) == DMI + value
    assert b"Listen &amp; share &lt;freely&gt;" in packet


@pytest.mark.parametrize(
    "change", [{"ai_training": "maybe"}, {"tdm_reservation": 2}, {"tdm_reservation": True}]
)
def test_embedded_terms_refuse_values_outside_the_protocol(change: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=r"^terms: "):
        EmbeddedTerms(**{**TERMS.__dict__, **change})


# --- hostile input ---


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    audio_format=st.sampled_from(SUPPORTED_FORMATS),
    damage=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=12),
    keep=st.floats(0.0, 1.0),
)
def test_damaged_files_are_refused_or_read_never_crash(
    audio_format: str, damage: list[tuple[int, int]], keep: float, tmp_path: Path
) -> None:
    data = bytearray(fixture(audio_format).read_bytes())
    for offset, value in damage:
        data[offset % len(data)] = value
    path = tmp_path / f"damaged.{audio_format}"
    path.write_bytes(bytes(data[: max(1, int(len(data) * keep))] if keep < 0.98 else data))

    try:
        info = probe(path)
        read_terms(path)
        write_terms(path, TERMS)
    except (UnsupportedMedia, StoreError) as refused:
        assert str(refused).startswith("damaged.")
        assert "\n" not in str(refused)
    else:
        assert info.duration_seconds > 0

"""`stave add DIR`, `stave add FILE…` and `stave release list|show|edit|withdraw`, run as the
real command: one release per folder, one-line refusals that change nothing, a progress bar on a
terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from node.release import verify_release
from tests.support.albums import ALBUM, make_album
from tests.support.audio import silent_wav
from tests.support.cli import clean_environment, ok, refused, stave, stave_command
from tests.support.paths import PROJECT_ROOT
from tests.support.shared import AUDIO_FIXTURES, BAD_FIXTURES
from tests.test_release_publish import snapshot


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "node"
    ok(stave(data_dir, "init", "--name", "Ada Example"))
    return data_dir


def releases(node_dir: Path, *args: str) -> list[dict[str, Any]]:
    return list(json.loads(ok(stave(node_dir, "release", "list", "--json", *args))))


def test_a_folder_is_published_shown_edited_and_withdrawn(node_dir: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    out = ok(stave(node_dir, "add", str(album.folder))).splitlines()
    assert len(out) == len(album.order) + 1
    assert out[-1].startswith("release urn:uuid:") and out[-1].endswith(
        f"album  10 track(s)  {ALBUM}"
    )
    release_id = out[-1].split()[1]
    (listed,) = ok(stave(node_dir, "release", "list")).splitlines()
    assert listed.startswith(release_id[9:17]) and ALBUM in listed and "10 track(s)" in listed
    shown = ok(stave(node_dir, "release", "show", release_id[9:17]))
    assert "kind: album" in shown and "released: 2025-05-06" in shown
    places = re.findall(r"^ +(\d+-\d\d) +[0-9a-f]{8} ", shown, re.MULTILINE)
    assert places == [f"{disc}-{number:02d}" for disc, number in album.places]
    did = ok(stave(node_dir, "id")).splitlines()[0]
    document = json.loads(ok(stave(node_dir, "release", "show", release_id, "--json")))
    verify_release(document, did)

    edited = json.loads(
        ok(
            stave(
                node_dir,
                *("release", "edit", release_id[9:17], "--title", "Night Drive (Live)"),
                *("--credit", "producer=Ada Example", "--credit", "mastering = Bo"),
                *("--upc", "012345678905", "--json"),
            )
        )
    )
    verify_release(edited, did)
    assert edited["revision"] == 2 and edited["title"] == "Night Drive (Live)"
    assert edited["credits"] == [
        {"role": "producer", "name": "Ada Example"},
        {"role": "mastering", "name": "Bo"},
    ]
    cleared = ok(stave(node_dir, "release", "edit", release_id, "--no-credits"))
    assert cleared.split()[:3] == [release_id, "revision", "3"]
    assert "credits" not in releases(node_dir)[0]
    order = ",".join(str(n) for n in (2, 1, *range(3, 11)))
    swapped = json.loads(
        ok(stave(node_dir, "release", "edit", release_id, "--order", order, "--json"))
    )
    assert [t["id"] for t in swapped["tracks"]] == [
        edited["tracks"][1]["id"],
        edited["tracks"][0]["id"],
        *(t["id"] for t in edited["tracks"][2:]),
    ]
    assert [(t["disc"], t["number"]) for t in swapped["tracks"]] == album.places

    before = snapshot(node_dir)
    refused(stave(node_dir, "release", "edit", release_id), "nothing to change")
    refused(stave(node_dir, "release", "edit", release_id, "--credit", "Bo"), "--credit")
    refused(stave(node_dir, "release", "edit", release_id, "--kind", "mixtape"), "--kind")
    refused(stave(node_dir, "release", "edit", release_id, "--order", "1,1"), "--order")
    refused(stave(node_dir, "release", "show", "0000"), "release 0000")
    assert snapshot(node_dir) == before

    gone = ok(stave(node_dir, "release", "withdraw", release_id[9:17]))
    assert gone.startswith(f"{release_id}  withdrawn at ") and "with 10 track(s)" in gone
    assert releases(node_dir) == [] and json.loads(ok(stave(node_dir, "list", "--json"))) == []
    (withdrawn,) = releases(node_dir, "--all")
    assert withdrawn["id"] == release_id
    assert "withdrawn" in ok(stave(node_dir, "release", "list", "--all"))
    refused(stave(node_dir, "release", "withdraw", release_id), "was withdrawn")


@pytest.mark.parametrize("bad", BAD_FIXTURES, ids=lambda p: p.name)
def test_a_bad_file_in_a_folder_changes_nothing(node_dir: Path, tmp_path: Path, bad: Path) -> None:
    album = make_album(tmp_path / "music")
    shutil.copyfile(bad, album.folder / "CD2" / bad.name)
    before = snapshot(node_dir)
    refused(stave(node_dir, "add", str(album.folder)), bad.name)
    assert snapshot(node_dir) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kind", "mixtape"], "--kind"),
        (["--released", "2025-13-01"], "--released"),
        (["--title", " "], "--title"),
        (["--credit", "producer"], "--credit"),
        (["--upc", "abc"], "--upc"),
        (["--cover", "/nonexistent.jpg"], "--cover"),
        (["--loose", "--kind", "ep"], "--loose"),
    ],
    ids=["kind", "released", "title", "credit", "upc", "cover", "loose"],
)
def test_bad_release_options_change_nothing(
    node_dir: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    album = make_album(tmp_path / "music")
    before = snapshot(node_dir)
    refused(stave(node_dir, "add", str(album.folder), *args), needle)
    assert snapshot(node_dir) == before


def test_one_file_is_a_loose_track_unless_asked(node_dir: Path, tmp_path: Path) -> None:
    ogg = next(p for p in AUDIO_FIXTURES if p.suffix == ".ogg")
    (line,) = ok(stave(node_dir, "add", str(ogg))).splitlines()
    assert line.startswith("urn:uuid:") and releases(node_dir) == []
    out = ok(stave(node_dir, "add", str(ogg), "--kind", "single", "--title", "Night"))
    assert out.splitlines()[-1].endswith("single  1 track(s)  Night")
    (single,) = releases(node_dir)
    assert (
        json.loads(ok(stave(node_dir, "show", single["tracks"][0]["id"], "--json")))["title"]
        == "Night"
    )
    # the fixture's date tag is a year alone: its first of January
    assert (single["kind"], single["released"]) == ("single", "2026-01-01")


def test_several_files(node_dir: Path, tmp_path: Path) -> None:
    files = [str(silent_wav(tmp_path / f"{name}.wav", 1.0)) for name in ("one", "two")]
    before = snapshot(node_dir)
    refused(stave(node_dir, "add", *files), "release title", "--title")
    refused(stave(node_dir, "add", files[0], str(tmp_path)), "give one folder alone")
    assert snapshot(node_dir) == before
    manifests = json.loads(ok(stave(node_dir, "add", *files, "--loose", "--json")))
    assert len(manifests) == 2 and releases(node_dir) == []
    manifests = json.loads(ok(stave(node_dir, "add", *files, "--title", "Pair", "--json")))
    (pair,) = releases(node_dir)
    assert (pair["title"], pair["kind"]) == ("Pair", "ep")
    assert [t["id"] for t in pair["tracks"]] == [m["id"] for m in manifests]


def test_progress_on_a_terminal(node_dir: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    controller, terminal = pty.openpty()
    shown = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = subprocess.run(
            stave_command(node_dir, "add", str(album.folder)),
            stdout=subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            env=clean_environment({"COLUMNS": "100", "TERM": "xterm"}),
            cwd=PROJECT_ROOT,
            text=True,
            timeout=300,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    assert result.returncode == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert "Checking" in text and "Publishing" in text and "/10" in text
    assert result.stdout.splitlines()[-1].startswith("release urn:uuid:")


def test_a_release_checks_clean_and_survives_a_backup(node_dir: Path, tmp_path: Path) -> None:
    album = make_album(tmp_path / "music")
    ok(stave(node_dir, "add", str(album.folder)))
    report = json.loads(stave(node_dir, "check", "--json").stdout)
    assert report["ok"] is True and report["problems"] == [], report["problems"]
    archive = tmp_path / "backup.tar"
    secret = {"STAVE_EXPORT_PASSPHRASE": "a long passphrase for the test archive"}
    ok(stave(node_dir, "export", "--with-key", str(archive), env=secret))
    restored = tmp_path / "restored"
    ok(stave(restored, "import", str(archive), env=secret))
    assert releases(restored) == releases(node_dir)
    cover = releases(restored)[0]["cover"]["cid"]
    assert (restored / "store" / "files" / cover).is_file()
    report = json.loads(stave(restored, "check", "--json").stdout)
    assert report["ok"] is True and report["problems"] == [], report["problems"]

"""The `stave` command, run as a real subprocess over real data directories and fixture audio."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node import media
from node.cid import import_path
from node.feed import FollowState, verify_feed
from node.manifest import verify_manifest
from tests.support.cli import ok, stave
from tests.support.cli import refused as one_line_error
from tests.support.shared import AUDIO_FIXTURES, BAD_FIXTURES, FIXTURES

FORMATS = {p.suffix.lstrip("."): p for p in AUDIO_FIXTURES}
WITH_COVER = {"mp3", "flac", "m4a"}


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Everything a failed command must leave exactly as it was."""
    files = data_dir / "store" / "files"
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:
        tables = {
            name: sorted(map(repr, db.execute(f"SELECT * FROM {name}").fetchall()))
            for name in ("tracks", "manifests", "feeds")
        }
    return {
        "files": sorted((p.name, p.stat().st_size) for p in files.iterdir()),
        "tmp": sorted(p.name for p in (data_dir / "store" / "tmp").iterdir()),
        "catalog": tables,
    }


def latest_feed(data_dir: Path) -> dict[str, Any]:
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:
        (cid,) = db.execute("SELECT cid FROM feeds ORDER BY sequence DESC LIMIT 1").fetchone()
    body = (data_dir / "store" / "files" / cid).read_bytes()
    assert str(import_path(data_dir / "store" / "files" / cid).root) == cid
    did = json.loads(body)["artist"]
    return verify_feed(body, FollowState(artist=did), max_bytes=1 << 24)


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "node"
    ok(stave(data_dir, "init", "--name", "Ada Example"))
    return data_dir


def test_init_creates_the_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    result = stave(data_dir, "init", "--name", "Ada Example")
    did = ok(result).strip()
    assert did.startswith("did:key:z6Mk")
    key = data_dir / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (data_dir / "catalog.sqlite").exists()
    assert 'name = "Ada Example"' in (data_dir / "config.toml").read_text()
    assert ok(stave(data_dir, "id")).splitlines()[0] == did
    feed = latest_feed(data_dir)
    assert feed["sequence"] == 1 and feed["previous"] is None and feed["tracks"] == []
    assert feed["terms"]["dataMining"]["aiTraining"] == "notAllowed"
    assert feed["terms"]["tdmReservation"] == 1
    before = key.read_bytes()
    one_line_error(stave(data_dir, "init", "--name", "Other"), "key already exists")
    assert key.read_bytes() == before
    assert ok(stave(data_dir, "id")).splitlines()[0] == did


def test_data_dir_from_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "from-env"
    env = {"STAVE_DATA_DIR": str(data_dir)}
    did = ok(stave_no_flag(env, "init", "--name", "Env")).strip()
    assert ok(stave_no_flag(env, "id")).splitlines()[0] == did


def stave_no_flag(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STAVE_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "node", *args], capture_output=True, text=True, env=environment
    )


def test_encrypted_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "secret"
    env = {"STAVE_KEY_PASSPHRASE": "correct horse"}
    did = ok(stave(data_dir, "init", "--name", "Ada", env=env)).strip()
    assert b"ENCRYPTED PRIVATE KEY" in (data_dir / "key.pem").read_bytes()
    assert ok(stave(data_dir, "id", env=env)).splitlines()[0] == did
    one_line_error(stave(data_dir, "id"), "encrypted", "STAVE_KEY_PASSPHRASE")
    message = one_line_error(
        stave(data_dir, "id", env={"STAVE_KEY_PASSPHRASE": "wrong"}), "wrong passphrase"
    )
    assert "wrong" not in message.split(":", 1)[0]


def test_commands_before_init(tmp_path: Path) -> None:
    one_line_error(stave(tmp_path / "none", "add", str(FORMATS["mp3"])), "stave init")


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=str)
def test_add_every_format(node_dir: Path, fmt: str) -> None:
    source = FORMATS[fmt]
    original = hashlib.sha256(source.read_bytes()).hexdigest()
    (manifest,) = json.loads(ok(stave(node_dir, "add", str(source), "--json")))
    assert hashlib.sha256(source.read_bytes()).hexdigest() == original
    did = ok(stave(node_dir, "id")).splitlines()[0]
    verify_manifest(manifest, did)
    # the title tag, else the file name (the WAV fixture has no title tag)
    assert manifest["title"] == (media.probe(source).title or source.stem)
    assert manifest["artist"] == did
    assert 1.5 < manifest["durationSeconds"] < 3.5
    stored = node_dir / "store" / "files" / manifest["audio"]["cid"]
    assert str(import_path(stored).root) == manifest["audio"]["cid"]
    assert manifest["audio"]["size"] == stored.stat().st_size
    assert manifest["audio"]["mediaType"] == media.probe(source).media_type
    tags = media.read_terms(stored)
    assert tags["STAVE_TRACK"] == manifest["id"]
    assert tags["STAVE_ARTIST"] == did
    assert tags["STAVE_FEED"] == "http://127.0.0.1:8080/feed.json"
    assert tags["AI_TRAINING"] == "notAllowed"
    assert tags["TDM_RESERVATION"] == "1"
    probed = media.probe(stored)
    original_tags = media.probe(source)
    assert (probed.title, probed.artist) == (original_tags.title, original_tags.artist)
    if fmt in WITH_COVER:
        cover = manifest["cover"]
        assert (node_dir / "store" / "files" / cover["cid"]).read_bytes() == probed.cover.data  # type: ignore[union-attr]
    else:
        assert "cover" not in manifest
    feed = latest_feed(node_dir)
    assert feed["sequence"] == 2
    assert feed["tracks"] == [manifest]


def test_add_choices_and_defaults(node_dir: Path) -> None:
    # `constrained` needs an offer (tests/test_offers.py): the node's carries over to the track
    ok(stave(node_dir, "terms", "offer", "aiTraining", "--contact", "mailto:ada@example.org"))
    (manifest,) = json.loads(
        ok(
            stave(
                node_dir,
                "add",
                str(FORMATS["flac"]),
                "--json",
                "--title",
                "Night Drive",
                "--license",
                "CC-BY-NC-ND-4.0",
                "--copyright",
                "2025 Ada Example",
                "--ai-training",
                "constrained",
            )
        )
    )
    terms = manifest["terms"]
    assert manifest["title"] == "Night Drive"
    assert terms["license"] == "CC-BY-NC-ND-4.0"
    assert terms["licenseUrl"] == "https://creativecommons.org/licenses/by-nc-nd/4.0/"
    assert terms["copyright"] == "2025 Ada Example"
    assert terms["dataMining"] == {
        "aiTraining": "constrained",
        "aiGenerativeTraining": "notAllowed",
        "aiInference": "notAllowed",
        "dataMining": "notAllowed",
    }
    stored = node_dir / "store" / "files" / manifest["audio"]["cid"]
    tags = media.read_terms(stored)
    assert tags["LICENSE"] == "CC-BY-NC-ND-4.0" and tags["COPYRIGHT"] == "2025 Ada Example"
    # a file without a title tag is named after the file
    untitled = node_dir.parent / "my-song.wav"
    with FORMATS["wav"].open("rb") as src, untitled.open("wb") as out:
        out.write(src.read())
    (plain,) = json.loads(ok(stave(node_dir, "add", str(untitled), "--json")))
    assert plain["title"] in ("Tone in A", "my-song")
    assert plain["terms"]["copyright"].endswith(" Ada Example")


def test_several_files_one_feed(node_dir: Path) -> None:
    paths = [str(FORMATS[f]) for f in ("mp3", "ogg", "opus")]
    manifests = json.loads(ok(stave(node_dir, "add", *paths, "--json")))
    assert len(manifests) == 3
    feed = latest_feed(node_dir)
    assert feed["sequence"] == 2
    assert {t["id"] for t in feed["tracks"]} == {m["id"] for m in manifests}
    listed = json.loads(ok(stave(node_dir, "list", "--json")))
    assert [t["id"] for t in listed] == [t["id"] for t in feed["tracks"]]
    text = ok(stave(node_dir, "list"))
    assert len(text.splitlines()) == 3 and "Tone in A" in text


@pytest.mark.parametrize("bad", BAD_FIXTURES, ids=lambda p: p.name)
def test_bad_input_changes_nothing(node_dir: Path, bad: Path) -> None:
    ok(stave(node_dir, "add", str(FORMATS["mp3"])))
    before = snapshot(node_dir)
    one_line_error(stave(node_dir, "add", str(bad)), bad.name)
    # a good file beside a bad one is not published either
    one_line_error(stave(node_dir, "add", str(FORMATS["ogg"]), str(bad)), bad.name)
    assert snapshot(node_dir) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ai-training", "maybe"], "--ai-training"),
        (["--license", "not a licence!"], "--license"),
        (["--copyright", "Ada"], "--copyright"),
        (["--title", "  "], "--title"),
    ],
    ids=["ai-training", "license", "copyright", "title"],
)
def test_bad_options_name_the_option(node_dir: Path, args: list[str], needle: str) -> None:
    before = snapshot(node_dir)
    one_line_error(stave(node_dir, "add", str(FORMATS["mp3"]), *args), needle)
    assert snapshot(node_dir) == before


def test_missing_file(node_dir: Path) -> None:
    one_line_error(stave(node_dir, "add", str(FIXTURES / "nope.mp3")), "nope.mp3", "no such file")


def test_edit_withdraw_and_cat(node_dir: Path) -> None:
    (manifest,) = json.loads(ok(stave(node_dir, "add", str(FORMATS["mp3"]), "--json")))
    short = manifest["id"][len("urn:uuid:") :][:8]
    old_cid = manifest["audio"]["cid"]

    retitled = json.loads(ok(stave(node_dir, "edit", short, "--title", "Tone, again", "--json")))
    assert retitled["revision"] == 2 and retitled["title"] == "Tone, again"
    assert retitled["audio"]["cid"] == old_cid and retitled["published"] == manifest["published"]
    assert latest_feed(node_dir)["sequence"] == 3

    relicensed = json.loads(ok(stave(node_dir, "edit", short, "--license", "CC-BY-4.0", "--json")))
    assert relicensed["revision"] == 3
    new_cid = relicensed["audio"]["cid"]
    assert new_cid != old_cid
    files = node_dir / "store" / "files"
    assert media.read_terms(files / new_cid)["LICENSE"] == "CC-BY-4.0"
    assert not (files / old_cid).exists()
    feed = latest_feed(node_dir)
    assert feed["sequence"] == 4 and feed["tracks"][0]["revision"] == 3

    shown = json.loads(ok(stave(node_dir, "show", short, "--json")))
    assert shown == relicensed
    assert "CC-BY-4.0" in ok(stave(node_dir, "show", manifest["id"]))

    catted = subprocess.run(
        [sys.executable, "-m", "node", "--data-dir", str(node_dir), "cat", new_cid],
        capture_output=True,
    )
    assert catted.returncode == 0 and catted.stdout == (files / new_cid).read_bytes()

    ok(stave(node_dir, "withdraw", short))
    feed = latest_feed(node_dir)
    assert feed["tracks"] == []
    assert [entry["id"] for entry in feed["withdrawn"]] == [manifest["id"]]
    assert not (files / new_cid).exists()
    one_line_error(stave(node_dir, "cat", new_cid), new_cid)
    assert json.loads(ok(stave(node_dir, "list", "--json"))) == []
    before = snapshot(node_dir)
    one_line_error(stave(node_dir, "withdraw", short), "withdrawn")
    one_line_error(stave(node_dir, "edit", short, "--title", "x"), "withdrawn")
    one_line_error(stave(node_dir, "edit", "0000", "--title", "x"), "no such track")
    one_line_error(stave(node_dir, "cat", "not-a-cid"), "not-a-cid")
    assert snapshot(node_dir) == before


def test_feed_chain(node_dir: Path) -> None:
    ok(stave(node_dir, "add", str(FORMATS["mp3"])))
    ok(stave(node_dir, "add", str(FORMATS["flac"])))
    with sqlite3.connect(node_dir / "catalog.sqlite") as db:
        chain = db.execute("SELECT sequence, cid, previous FROM feeds ORDER BY sequence").fetchall()
    assert [row[0] for row in chain] == [1, 2, 3]
    for (_, cid, _), (_, _, previous) in itertools.pairwise(chain):
        assert previous == cid
    for _, cid, previous in chain:
        body = json.loads((node_dir / "store" / "files" / cid).read_bytes())
        assert body["previous"] == previous


def test_verify(node_dir: Path, tmp_path: Path) -> None:
    (manifest,) = json.loads(ok(stave(node_dir, "add", str(FORMATS["ogg"]), "--json")))
    published = tmp_path / "download.ogg"
    published.write_bytes(ok_bytes(node_dir, "cat", manifest["audio"]["cid"]))
    result = stave(node_dir, "verify", str(published))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout and manifest["id"] in result.stdout
    verdict = json.loads(ok(stave(node_dir, "verify", str(published), "--json")))
    assert verdict["valid"] is True and verdict["cid"] == manifest["audio"]["cid"]

    tampered = tmp_path / "tampered.ogg"
    data = bytearray(published.read_bytes())
    data[-100] ^= 0x01
    tampered.write_bytes(bytes(data))
    result = stave(node_dir, "verify", str(tampered), "--offline")
    assert result.returncode == 1 and "INVALID" in result.stdout

    untagged = stave(node_dir, "verify", str(FORMATS["ogg"]))
    assert untagged.returncode == 1 and "no Stave tags" in untagged.stdout
    one_line_error(stave(node_dir, "verify", str(tmp_path / "missing.ogg")), "missing.ogg")


def ok_bytes(data_dir: Path, *args: str) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "node", "--data-dir", str(data_dir), *args], capture_output=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_admin_token(node_dir: Path) -> None:
    token = ok(stave(node_dir, "admin-token")).strip()
    assert len(token) >= 32
    assert stat.S_IMODE((node_dir / "admin-token").stat().st_mode) == 0o600
    rotated = ok(stave(node_dir, "admin-token", "--rotate")).strip()
    assert rotated != token
    assert ok(stave(node_dir, "admin-token")).strip() == rotated


def test_bad_config_is_one_line(node_dir: Path) -> None:
    config = node_dir / "config.toml"
    config.write_text(config.read_text() + "\n[extra]\nkey = 1\n")
    one_line_error(stave(node_dir, "add", str(FORMATS["mp3"])), "config key extra.key")

"""`stave follow`, `following`, `sync` and `unfollow` against nodes on 127.0.0.1.

The command runs in a worker thread (its own event loop, as from a terminal) while the test's
loop serves the followed node.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from node.cli import main
from tests.support.federation import fake_feed, fake_node, make_node_dir, render_config_for


async def stave(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["--data-dir", str(root), *args])
    out, err = capsys.readouterr()
    return status, out, err


def as_json(text: str) -> Any:
    return json.loads(text)


async def test_follow_following_sync_unfollow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = await make_node_dir(tmp_path / "follower", 9, "Follower")
    async with fake_node() as fake:
        fake.feed = fake_feed(fake, 1, "First", "Second")
        status, out, err = await stave(capsys, root, "follow", fake.url)
        assert status == 0, err
        assert out.splitlines() == [
            f"Following Ada Example ({fake.artist.did}) at {fake.url}",
            "  feed 1: 2 track(s)",
        ]

        status, out, _ = await stave(capsys, root, "following", "--json")
        [entry] = as_json(out)
        assert {k: entry[k] for k in ("did", "name", "url", "sequence", "tracks", "mirror")} == {
            "did": fake.artist.did,
            "name": "Ada Example",
            "url": fake.url,
            "sequence": 1,
            "tracks": 2,
            "mirror": False,
        }
        assert entry["lastSync"] and entry["lastError"] is None and entry["stale"] is False

        fake.feed = fake_feed(fake, 2, "Second", "Third", "Fourth")
        status, out, _ = await stave(capsys, root, "sync", "--json")
        [outcome] = as_json(out)
        assert status == 0
        assert (outcome["verdict"], outcome["sequence"], len(outcome["added"])) == (
            "accepted",
            2,
            3,  # three new track ids (every manifest here is freshly made)
        )
        status, out, _ = await stave(capsys, root, "sync")
        assert (status, out) == (0, f"Ada Example ({fake.artist.did}): unchanged, feed 2\n")

        # A rejected feed: exit 1, the reason printed and kept for `following`.
        expired = datetime.now(UTC) - timedelta(days=8)
        fake.feed = fake_feed(fake, 3, "Late", updated=expired)
        status, out, _ = await stave(capsys, root, "sync")
        assert status == 1
        assert out.startswith(f"Ada Example ({fake.artist.did}): rejected, feed 2: feed expired")
        status, out, _ = await stave(capsys, root, "following")
        assert status == 0
        assert "feed 2  3 track(s)" in out and "last error: feed expired at" in out

        status, out, _ = await stave(capsys, root, "unfollow", fake.url + "feed.json")
        assert (status, out) == (0, f"No longer following Ada Example ({fake.artist.did})\n")
        assert fake.hub_requests[-1]["hub.mode"] == "unsubscribe"
        status, out, err = await stave(capsys, root, "following", "--json")
        assert as_json(out) == []
        status, _, err = await stave(capsys, root, "unfollow", fake.artist.did)
        assert (status, err) == (
            2,
            f"stave: {fake.artist.did}: not a followed artist (see `stave following`)\n",
        )


async def test_follow_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = await make_node_dir(tmp_path / "follower", 9, "Follower")
    async with fake_node() as fake:
        for target, words in [
            ("ada.example", "give the node's URL"),
            (fake.url + "nothing/", "HTTP 404, not a Stave node"),
            ("http://127.0.0.1:9/", "cannot connect"),
        ]:
            status, out, err = await stave(capsys, root, "follow", target)
            assert status == 2 and out == "", target
            assert err.startswith("stave: ") and words in err and err.count("\n") == 1, err
        # Private and loopback destinations are refused unless the setting allows them.
        (root / "config.toml").write_text(render_config_for(9, "Follower", private=False))
        status, _, err = await stave(capsys, root, "follow", fake.url)
        assert status == 2
        assert "refused" in err and "loopback" in err and "allow_private_addresses" in err
        assert fake.hits == []
    status, _, err = await stave(capsys, root, "following")
    assert "Not following anyone" in err


async def test_sync_says_when_an_artist_rotated_their_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from node.identity import Identity
    from node.rotation import build_rotation
    from tests.support.federation import signed_feed, signed_track

    root = await make_node_dir(tmp_path / "follower", 9, "Follower")
    async with fake_node() as fake:
        fake.feed = fake_feed(fake, 1, "First")
        status, _, err = await stave(capsys, root, "follow", fake.url)
        assert status == 0, err
        old, new = fake.artist, Identity.generate()
        cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
        fake.feed = signed_feed(
            new, sequence=2, tracks=[signed_track(new, "First", cid)], url=fake.url
        )

        status, out, _ = await stave(capsys, root, "sync")
        assert status == 1
        assert f"feed is by {new.did!r}, not the followed {old.did}" in out
        assert "answered HTTP 404" in out

        fake.rotation = json.dumps([build_rotation(old, new.did)]).encode()
        status, out, err = await stave(capsys, root, "sync")
        assert status == 0, (out, err)
        assert out.strip() == (
            f"Ada Example ({new.did}): accepted, feed 2, +1 -1 track(s),"
            f" the artist's key rotated from {old.did} (statement verified)"
        )
        status, out, _ = await stave(capsys, root, "following", "--json")
        assert [entry["did"] for entry in as_json(out)] == [new.did]

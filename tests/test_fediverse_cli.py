"""`stave fediverse followers|remove|block|unblock|blocked`, run as the real `stave` command
over a real data directory whose catalog holds followers and queued deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.catalog.fediverse import FediverseFollower
from node.datadir import init_data_dir, open_node
from tests.support.cli import ok, stave

FOLLOWERS = [
    (
        "https://mastodon.example/users/ann",
        "ann@mastodon.example",
        "https://mastodon.example/inbox",
    ),
    (
        "https://mastodon.example/users/ben",
        "ben@mastodon.example",
        "https://mastodon.example/inbox",
    ),
    ("https://eu.pixel.example/u/cy", "cy@eu.pixel.example", None),
    ("https://fun.example/federation/actors/dee", None, "https://fun.example/inbox"),
]


@pytest.fixture
async def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:9/")
    async with open_node(root) as node:
        async with node.catalog.transaction() as tx:
            for actor, acct, shared in FOLLOWERS:
                domain = actor.split("/")[2]
                follower = FediverseFollower(
                    actor,
                    actor + "/inbox",
                    shared,
                    domain,
                    acct,
                    actor + "#follow",
                    "2026-11-26T16:00:00Z",
                )
                await tx.add_fediverse_follower(follower)
            await tx.queue_activity(
                "https://127.0.0.1:9/activities/1", b"{}", await tx.follower_inboxes()
            )
        node.store.close()
    return root


def _followers(root: Path) -> list[dict[str, object]]:
    followers: list[dict[str, object]] = json.loads(
        ok(stave(root, "fediverse", "followers", "--json"))
    )
    return followers


def _pending(root: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(root / "catalog.sqlite") as db:
        rows = db.execute(
            "SELECT inbox FROM fediverse_deliveries WHERE state = 'pending' ORDER BY inbox"
        ).fetchall()
    return [row[0] for row in rows]


def test_followers_lists_each_with_acct_domain_and_since(data_dir: Path) -> None:
    followers = _followers(data_dir)
    assert [f["actor"] for f in followers] == sorted(actor for actor, _, _ in FOLLOWERS)
    ann = next(f for f in followers if f["acct"] == "ann@mastodon.example")
    assert ann == {
        "actor": "https://mastodon.example/users/ann",
        "acct": "ann@mastodon.example",
        "domain": "mastodon.example",
        "inbox": "https://mastodon.example/users/ann/inbox",
        "sharedInbox": "https://mastodon.example/inbox",
        "since": "2026-11-26T16:00:00Z",
    }
    text = ok(stave(data_dir, "fediverse", "followers"))
    assert "ann@mastodon.example  mastodon.example  since 2026-11-26T16:00:00Z" in text
    # A follower with no acct is shown by its actor id.
    assert "https://fun.example/federation/actors/dee  fun.example" in text


@pytest.mark.parametrize(
    "who", ["ann@mastodon.example", "@ANN@mastodon.example", "https://mastodon.example/users/ann"]
)
def test_remove_by_acct_or_actor(data_dir: Path, who: str) -> None:
    assert ok(stave(data_dir, "fediverse", "remove", who)) == "Removed ann@mastodon.example\n"
    assert "https://mastodon.example/users/ann" not in [f["actor"] for f in _followers(data_dir)]
    # Ben still receives at the shared inbox: nothing queued for it is given up.
    assert "https://mastodon.example/inbox" in _pending(data_dir)


def test_removing_the_last_follower_at_an_inbox_gives_up_its_deliveries(data_dir: Path) -> None:
    ok(stave(data_dir, "fediverse", "remove", "cy@eu.pixel.example"))
    assert "https://eu.pixel.example/u/cy/inbox" not in _pending(data_dir)


def test_remove_of_someone_not_following_is_one_line_and_changes_nothing(data_dir: Path) -> None:
    before = _followers(data_dir), _pending(data_dir)
    result = stave(data_dir, "fediverse", "remove", "zed@nowhere.example")
    assert result.returncode == 2
    assert result.stderr == "stave: 'zed@nowhere.example' is not a follower\n"
    assert (_followers(data_dir), _pending(data_dir)) == before


def test_block_removes_the_domains_followers_and_lists_it(data_dir: Path) -> None:
    result = ok(stave(data_dir, "fediverse", "block", "Mastodon.Example"))
    assert result == "Blocked mastodon.example: 2 follower(s) removed\n"
    assert all(f["domain"] != "mastodon.example" for f in _followers(data_dir))
    assert "https://mastodon.example/inbox" not in _pending(data_dir)
    assert ok(stave(data_dir, "fediverse", "blocked")) == "mastodon.example\n"
    assert json.loads(ok(stave(data_dir, "fediverse", "blocked", "--json"))) == ["mastodon.example"]


def test_block_covers_subdomains(data_dir: Path) -> None:
    assert "1 follower(s) removed" in ok(stave(data_dir, "fediverse", "block", "pixel.example"))
    assert all(f["domain"] != "eu.pixel.example" for f in _followers(data_dir))


def test_unblock(data_dir: Path) -> None:
    ok(stave(data_dir, "fediverse", "block", "fun.example"))
    assert ok(stave(data_dir, "fediverse", "unblock", "fun.example")) == "Unblocked fun.example\n"
    assert ok(stave(data_dir, "fediverse", "blocked")) == ""
    result = stave(data_dir, "fediverse", "unblock", "fun.example")
    assert (result.returncode, result.stderr) == (2, "stave: fun.example is not blocked\n")


@pytest.mark.parametrize("domain", ["https://mastodon.example/", "mastodon.example/users", "a b"])
def test_block_refuses_what_is_not_a_domain(data_dir: Path, domain: str) -> None:
    before = _followers(data_dir)
    result = stave(data_dir, "fediverse", "block", domain)
    assert result.returncode == 2
    assert "is not a domain name" in result.stderr and result.stderr.count("\n") == 1
    assert _followers(data_dir) == before
    assert ok(stave(data_dir, "fediverse", "blocked")) == ""


def test_empty_lists_say_so(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:9/")
    result = stave(root, "fediverse", "followers")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "No fediverse followers yet.\n"
    assert json.loads(ok(stave(root, "fediverse", "followers", "--json"))) == []

"""Shared test fixtures: where `../shared` is, real data directories, and a Kubo daemon. What
they are built from lives in tests/support/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kubo import KuboDaemon, kubo_binary
from tests.support.node import WEB_ARTIST, WEB_URL, private_copy
from tests.support.shared import AUDIO_FIXTURES, SHARED


@pytest.fixture
def shared() -> Path:
    return SHARED


# --- web: an initialised node directory and the app over it (test_web_pages, test_web_api) ---


@pytest.fixture
async def web_data_dir(tmp_path: Path) -> Path:
    """A node directory as `stave init` leaves it: key, config, token, first feed."""
    from node.datadir import init_data_dir, open_node
    from node.publish import Publisher

    root = tmp_path / "node"
    init_data_dir(root, WEB_ARTIST, WEB_URL)
    async with open_node(root) as node:
        await Publisher(node).publish_feed()
    return root


# --- web core (test_web_core, test_web_content, test_run): every fixture file published ---


@pytest.fixture(scope="session")
def published_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session: a node with every audio fixture published in one feed."""
    from node.datadir import init_data_dir, open_node
    from node.publish import Publisher

    root = tmp_path_factory.mktemp("published") / "node"
    init_data_dir(root, WEB_ARTIST, WEB_URL)

    async def publish() -> None:
        async with open_node(root) as node:
            await Publisher(node).add_many(AUDIO_FIXTURES)
            node.store.close()

    asyncio.run(publish())
    return root


@pytest.fixture
def published_data_dir(published_template: Path, tmp_path: Path) -> Path:
    """A private copy of the published node, free to change."""
    return private_copy(published_template, tmp_path / "published")


# --- Kubo (test_kubo, test_pinning) ----------------------------------------------------------


@pytest.fixture(scope="module")
def kubo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboDaemon]:
    """The daemon most tests of a module share: offline, so IPNS names resolve from its own
    datastore."""
    daemon = KuboDaemon(kubo_binary(), tmp_path_factory.mktemp("kubo"), offline=True)
    daemon.start()
    yield daemon
    daemon.stop()

"""Shared test fixtures: where `../shared` is, and real data directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STAVE_SHARED", PROJECT_ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "audio"
AUDIO_FIXTURES = sorted(p for p in FIXTURES.iterdir() if p.is_file())
BAD_FIXTURES = sorted((FIXTURES / "bad").iterdir())


def require_tool(name: str, path: str | None) -> str:
    """The tool's path, or a skip — a failure when CI=true, where every tool must be there."""
    if path:
        return path
    message = f"{name} is not installed; the README test command installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def shared() -> Path:
    return SHARED


# --- web: an initialised node directory and the app over it (test_web_pages, test_web_api) ---

WEB_ARTIST = "Ada Example"
WEB_URL = "http://127.0.0.1:8080/"


def write_node_config(root: Path, **settings: object) -> None:
    """Rewrite a data directory's config.toml with `section__key=value` settings."""
    from node.settings import render_config

    values: dict[str, object] = {"node.name": WEB_ARTIST, "node.url": WEB_URL}
    values.update({name.replace("__", "."): value for name, value in settings.items()})
    (root / "config.toml").write_text(render_config(values), encoding="utf-8")


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
    import asyncio

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
    import shutil

    root = tmp_path / "published"
    shutil.copytree(published_template, root)
    return root

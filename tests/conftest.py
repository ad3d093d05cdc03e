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

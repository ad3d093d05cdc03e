"""Where this checkout is, and where a tool a test needs is — or a skip."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def require_tool(name: str, path: str | None) -> str:
    """The tool's path, or a skip — a failure when CI=true, where every tool must be there."""
    import pytest

    if path:
        return path
    message = f"{name} is not installed; the README test command installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

"""Shared parts of the browser tests: Debian's Chromium driven by Playwright for Python, against
real nodes (`create_app` on a real socket on 127.0.0.1, see tests/support/federation.py).

Chromium is launched with the flags a closed, GPU-less, root-run machine needs (no sandbox as
root, no GPU, no background network traffic to Google's hosts, no QUIC); the test tool's own
browser download is never used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.support.paths import PROJECT_ROOT, require_tool

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--mute-audio",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"


def chromium_path() -> str:
    """Debian's Chromium, or a skip (a failure when CI=true)."""
    found = os.environ.get("STAVE_CHROMIUM") or shutil.which("chromium")
    return require_tool("chromium", found)


def playwright_module() -> Any:
    """playwright.async_api, or a skip (a failure when CI=true)."""
    try:
        import playwright.async_api
    except ImportError:
        require_tool("playwright (the Python package)", None)
        raise
    return playwright.async_api


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a screenshot goes: docs/screenshots/ with STAVE_UPDATE_SCREENSHOTS=1, else tmp."""
    if os.environ.get("STAVE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS / name
    return tmp_path / name

"""The real `stave` command in tests: run from this checkout as a subprocess, with the test
process's STAVE_ settings cleared so that only what a test passes reaches it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import PROJECT_ROOT


def stave_command(data_dir: Path, *args: str) -> list[str]:
    """The argv of `stave --data-dir DIR ARGS…` run from this checkout."""
    return [sys.executable, "-m", "node", "--data-dir", str(data_dir), *args]


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any STAVE_ setting, plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STAVE_")}
    environment.update(extra or {})
    return environment


def stave(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `stave --data-dir DIR ARGS…` to its end, stdin empty, output captured as text."""
    return subprocess.run(
        stave_command(data_dir, *args),
        capture_output=True,
        text=True,
        env=clean_environment(env),
        stdin=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
        timeout=timeout,
    )


async def stave_async(data_dir: Path, *args: str) -> tuple[int, str, str]:
    """`stave` run without blocking the event loop (a test's own servers keep answering it):
    its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *stave_command(data_dir, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_environment(),
        cwd=PROJECT_ROOT,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The message of a command a user's mistake must stop: exit 2, one line on stderr holding
    every needle, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message
    return message

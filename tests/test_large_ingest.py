"""Publishing a 1 GiB file stays within a small machine's memory (issue: under 100 MB RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node.cid import import_path
from tests.support.audio import write_big_wav
from tests.support.cli import clean_environment, stave_command

GIB = 1024**3
RSS_LIMIT_BYTES = 100 * 1024 * 1024

# Runs `stave add` as its only child, then reports the child's peak resident set size.
_MEASURE = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], capture_output=True)
sys.stderr.buffer.write(result.stderr)
sys.stdout.buffer.write(result.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)
raise SystemExit(result.returncode)
"""


@pytest.mark.slow
def test_ingest_1gib_under_100mb(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    env = clean_environment()
    base = stave_command(data_dir)
    subprocess.run([*base, "init", "--name", "Big"], check=True, env=env, capture_output=True)
    source = tmp_path / "long-take.wav"
    write_big_wav(source, GIB - 44)
    assert source.stat().st_size == GIB

    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *base, "add", str(source), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    peak_rss = int(result.stderr.strip().splitlines()[-1])
    (manifest,) = json.loads(result.stdout)
    stored = data_dir / "store" / "files" / manifest["audio"]["cid"]
    assert stored.stat().st_size > GIB
    assert manifest["audio"]["cid"].startswith("bafybei")
    assert str(import_path(stored).root) == manifest["audio"]["cid"]
    assert abs(manifest["durationSeconds"] - (GIB - 44) / 176400) < 0.01
    print(f"peak RSS of `stave add` on a 1 GiB file: {peak_rss / 2**20:.1f} MiB")
    assert peak_rss < RSS_LIMIT_BYTES, f"peak RSS {peak_rss / 2**20:.1f} MiB"

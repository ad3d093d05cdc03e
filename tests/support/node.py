"""Nodes for tests: a data directory's config, private copies of a built node, and a node
served by the real `stave run` (a subprocess on 127.0.0.1) once it says where it listens."""

from __future__ import annotations

import select
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cli import clean_environment, stave_command

WEB_ARTIST = "Ada Example"
WEB_URL = "http://127.0.0.1:8080/"


def write_node_config(root: Path, **settings: object) -> None:
    """Rewrite a data directory's config.toml with `section__key=value` settings."""
    from node.settings import render_config

    values: dict[str, object] = {"node.name": WEB_ARTIST, "node.url": WEB_URL}
    values.update({name.replace("__", "."): value for name, value in settings.items()})
    (root / "config.toml").write_text(render_config(values), encoding="utf-8")


def private_copy(template: Path, root: Path) -> Path:
    """A copy of the node built once at `template`, at `root`, free to change."""
    shutil.copytree(template, root)
    return root


def first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line `process` prints, stripped (a server's URL once it listens), or "" when
    none comes within `timeout` seconds. The process is left as it is."""
    assert process.stdout is not None
    stdout = process.stdout
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0].decode().strip() if line else ""


@contextmanager
def served(data_dir: Path, port: int, log: Path) -> Iterator[str]:
    """`stave run` of `data_dir` on 127.0.0.1:`port` for the length of the block, its access
    log appended to `log`; yields its base URL once it listens, stops it with SIGTERM after."""
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            stave_command(data_dir, "run", "--host", "127.0.0.1", "--port", str(port)),
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=clean_environment({"PYTHONUNBUFFERED": "1"}),
        )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        url = process.stdout.readline().decode().strip() if ready else ""
        assert url == f"http://127.0.0.1:{port}/", f"stave run printed {url!r}; see {log}"
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()

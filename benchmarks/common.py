"""What the benchmarks share: a node built and published, `stave run` started on loopback and
waited for, and nginx as the reference server.

Built on the tests' support modules (`tests.support`): benchmarks import them, never the other
way round, so a node is started, and Kubo run, the same way in both.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.cli import stave_command
from tests.support.node import first_line

HOST = "127.0.0.1"
START_TIMEOUT = 60.0

NGINX_CONF = """
daemon off;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/json json; audio/wav wav; }}
    server {{
        listen {host}:{port};
        root {www};
    }}
}}
"""


async def publish_node(root: Path, artist: str, files: list[Path]) -> tuple[list[Any], str]:
    """A new node at `root` with `files` published in one feed: their manifests and the feed's
    CID."""
    from node.datadir import init_data_dir, open_node
    from node.publish import Publisher

    init_data_dir(root, artist, f"http://{HOST}:8080/")
    async with open_node(root) as node:
        manifests = await Publisher(node).add_many(files)
        latest = await node.catalog.latest_feed()
        assert latest is not None
        node.store.close()
    return manifests, latest.cid


def stave_run_command(root: Path) -> list[str]:
    """`stave run` of the node at `root` on a free port on loopback."""
    return stave_command(root, "run", "--host", HOST, "--port", "0")


@contextmanager
def running(command: list[str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A server process that prints its URL as its first line of output (as `stave run` does),
    for the length of the block: the process and that URL. Its stderr is appended to `log`."""
    with log.open("ab") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    try:
        url = first_line(process, START_TIMEOUT)
        if not url:
            raise SystemExit(f"the server printed no URL within {START_TIMEOUT:g} s; see {log}")
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def get_status(url: str) -> int | None:
    """The status of one GET, or None when nothing answers yet."""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/" + path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def wait_for_200(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Return once `url` answers 200; SystemExit when `process` exits or `deadline` passes."""
    while get_status(url) != 200:
        if process.poll() is not None:
            raise SystemExit(f"the process serving {url} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer 200 in {START_TIMEOUT:g} s")
        time.sleep(0.005)


def nginx_binary() -> str | None:
    """Debian's nginx, or None when it is not installed."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def nginx_config(www: Path, tmp: Path, port: int, workers: str = "1") -> Path:
    """An nginx config serving `www` as static files on HOST:`port`, its own files under
    `tmp`."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(workers=workers, tmp=tmp, host=HOST, port=port, www=www),
        encoding="utf-8",
    )
    return conf


def start_nginx(nginx: str, conf: Path) -> subprocess.Popen[bytes]:
    """nginx started with `conf` (from `nginx_config`), not yet waited for."""
    tmp = conf.parent
    return subprocess.Popen(
        [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "e.log")],
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server process and wait for it to end."""
    process.terminate()
    process.wait(timeout=30)

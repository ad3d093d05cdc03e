"""A node's data directory: where its config, key, catalog and store live, and opening them."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from node.actorkey import ActorKey, ensure_actor_key_file, load_actor_key_file
from node.catalog import Catalog, open_catalog
from node.errors import ConfigError, IdentityError, StoreError
from node.identity import Identity, create_key_file, load_key_file
from node.settings import Config, handle_from_name, load_config, render_config
from node.store import Store

PASSPHRASE_ENV = "STAVE_KEY_PASSPHRASE"
DATA_DIR_ENV = "STAVE_DATA_DIR"


def default_data_dir() -> Path:
    """`$STAVE_DATA_DIR`, else the platform's user data directory for Stave."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else platformdirs.user_data_path("stave")


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def key_path(self) -> Path:
        return self.root / "key.pem"

    @property
    def actor_key_path(self) -> Path:
        """The actor's RSA key for HTTP signatures (node/actorkey.py)."""
        return self.root / "actor-key.pem"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def store_path(self) -> Path:
        return self.root / "store"

    @property
    def lock_path(self) -> Path:
        return self.root / "node.lock"

    @property
    def token_path(self) -> Path:
        return self.root / "admin-token"

    @property
    def rotation_path(self) -> Path:
        """The artist's key rotation statements, oldest first (node/keys.py)."""
        return self.root / "rotation.json"

    @property
    def next_key_path(self) -> Path:
        """The new key while `stave key rotate` is under way; gone once it has finished."""
        return self.root / "key.next.pem"

    def refuse_unfinished_rotation(self) -> None:
        """IdentityError while a key rotation is under way or was interrupted."""
        if self.next_key_path.exists():
            raise IdentityError(
                f"{self.root}: a key rotation was interrupted; run `stave key rotate` to finish it"
            )

    def old_key_path(self, number: int) -> Path:
        """Where the key replaced by the `number`-th rotation (1, 2, …) is kept."""
        return self.root / f"key.old-{number}.pem"

    def load_config(self) -> Config:
        if not self.config_path.exists():
            raise ConfigError(f"{self.root}: not a Stave data directory; run `stave init` first")
        return load_config(self.config_path)

    def load_identity(self) -> Identity:
        return load_key_file(self.key_path, os.environ.get(PASSPHRASE_ENV) or None)

    def ensure_actor_key(self) -> bool:
        """Make the actor key if the node has none yet (made before it existed, or restored
        from an archive without it); True if it was made now."""
        return ensure_actor_key_file(self.actor_key_path, os.environ.get(PASSPHRASE_ENV) or None)

    def load_actor_key(self) -> ActorKey:
        """The actor key, made first if there is none."""
        self.ensure_actor_key()
        return load_actor_key_file(self.actor_key_path, os.environ.get(PASSPHRASE_ENV) or None)

    def admin_token(self) -> str:
        try:
            return self.token_path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise IdentityError(f"{self.token_path}: cannot read the admin token") from e

    def write_admin_token(self) -> str:
        token = secrets.token_urlsafe(32)
        tmp = self.token_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
        os.replace(tmp, self.token_path)
        return token


@dataclass
class Node:
    """Everything an open node has: its data directory, settings, key, catalog and store."""

    data: DataDir
    config: Config
    identity: Identity
    catalog: Catalog
    store: Store

    @functools.cached_property
    def actor_key(self) -> ActorKey:
        """The actor's RSA key for HTTP signatures, read when first asked for (IdentityError
        when it cannot be used). `stave key rotate` replaces `identity`, never this key."""
        return self.data.load_actor_key()

    @property
    def base_url(self) -> str:
        url: str = self.config["node.url"]
        return url if url.endswith("/") else url + "/"

    @property
    def feed_url(self) -> str:
        return self.base_url + "feed.json"


def init_data_dir(root: Path, name: str, url: str | None = None) -> Identity:
    """Create a node's data directory with a new key; refuse if a key is already there."""
    data = DataDir(root)
    if data.key_path.exists():
        raise IdentityError(f"{data.key_path}: a key already exists; refusing to overwrite it")
    # An actor-key.pem already there (kept from an earlier node) is kept: its followers know it.
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ConfigError(f"{root}: cannot create the data directory ({e.strerror})") from e
    overrides: dict[str, object] = {"node.name": name, "fediverse.handle": handle_from_name(name)}
    if url:
        overrides["node.url"] = url if url.endswith("/") else url + "/"
    if not data.config_path.exists():
        data.config_path.write_text(render_config(overrides), encoding="utf-8")
    Config(dict(overrides))  # validates the overrides before the key is made
    identity = create_key_file(data.key_path, os.environ.get(PASSPHRASE_ENV) or None)
    data.ensure_actor_key()
    Store(data.store_path)
    if not data.token_path.exists():
        data.write_admin_token()
    return identity


@asynccontextmanager
async def open_node(
    root: Path, *, exclusive: bool = False, finishing_rotation: bool = False
) -> AsyncIterator[Node]:
    """Open an initialised data directory; closes the catalog on exit.

    A node whose key rotation was interrupted (`key.next.pem` is there) is refused: signing with
    either key before the rotation has finished could fork the artist's feed. Only the rotation
    itself (`finishing_rotation=True`, node/keys.py) opens it then.

    Every process with a node open holds a shared lock on its `node.lock` until it closes it.
    `exclusive=True` (a repair that removes unreferenced content) gets the node to itself or
    raises StoreError at once, so it can never remove what a running `add` or upload has just
    stored and is about to publish; shared openers wait until such a repair is done.
    """
    data = DataDir(root)
    config = data.load_config()
    identity = data.load_identity()
    if not finishing_rotation:
        data.refuse_unfinished_rotation()
    _make_missing_actor_key(data)
    async with _node_lock(data, exclusive):
        store = Store(data.store_path)
        async with open_catalog(data.catalog_path) as catalog:
            yield Node(data=data, config=config, identity=identity, catalog=catalog, store=store)


def _make_missing_actor_key(data: DataDir) -> None:
    """A node made before the actor key existed gets one the first time it is opened. In a
    data directory it may not write to, `Node.actor_key` says why when the key is needed."""
    with suppress(IdentityError):
        data.ensure_actor_key()


@asynccontextmanager
async def _node_lock(data: DataDir, exclusive: bool) -> AsyncIterator[None]:
    try:
        fd = os.open(data.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        if exclusive:
            raise StoreError(f"{data.lock_path}: cannot lock the node ({e.strerror})") from e
        yield  # a read-only data directory: nothing here can write either
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as e:
            if exclusive:
                raise StoreError(
                    f"{data.root}: another stave process has this node open (stave run, add,"
                    " sync, …); stop it first"
                ) from e
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)

"""Replacing the artist's key: `stave key rotate` (docs/protocol-extensions.md, proposed §11).

A rotation makes a new key, publishes a statement signed by the old key naming the new did
(appended to `rotation.json`, served at `/.well-known/stave-rotation.json`), signs every current
track again as its next revision by the new key and the next feed (continuing the sequence and
the `previous` chain) in one catalog transaction, keeps the old key as `key.old-N.pem` and puts
the new one in `key.pem`.

Each step can be interrupted and `stave key rotate` run again finishes the same rotation: the new
key waits in `key.next.pem` until the very last step, and while it is there no other command
opens the node (node/datadir.py), so nothing is signed by the wrong key in between. The node must
not be running: the rotation opens it exclusively.

Files already published keep the old did in their STAVE_ARTIST tag; the manifests of those
revisions, signed by the old key, stay in the catalog, and the statements link the two dids.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from node.catalog import FeedRecord
from node.datadir import PASSPHRASE_ENV, DataDir, Node, open_node
from node.errors import IdentityError, VerificationError
from node.feed import parse_json
from node.identity import Identity, create_key_file, load_key_file
from node.publish import Publisher
from node.rotation import MAX_CHAIN, MAX_ROTATION_BYTES, build_rotation, verify_rotation


@dataclass(frozen=True)
class RotationResult:
    """What a finished rotation did."""

    old_did: str
    new_did: str
    tracks: int  # current tracks signed again by the new key
    feed: FeedRecord | None  # the first feed the new key signed (None: it already existed)
    old_key: Path  # where the old key is kept


def read_rotations(data: DataDir) -> list[dict[str, Any]]:
    """The node's rotation statements, oldest first ([] when it never rotated), each checked
    against the one before: `VerificationError` when the file is damaged."""
    path = data.rotation_path
    try:
        with path.open("rb") as f:
            body = f.read(MAX_ROTATION_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise VerificationError(f"{path}: cannot read ({e.strerror})") from e
    if len(body) > MAX_ROTATION_BYTES:
        raise VerificationError(f"{path}: larger than {MAX_ROTATION_BYTES} bytes")
    statements = parse_json(body, str(path))
    if not isinstance(statements, list) or not statements:
        raise VerificationError(f"{path}: not a JSON array of rotation statements")
    current = statements[0].get("artist") if isinstance(statements[0], dict) else None
    for number, statement in enumerate(statements, 1):
        if not isinstance(current, str):
            raise VerificationError(f"{path}: statement {number} names no artist")
        try:
            current = verify_rotation(statement, current)
        except VerificationError as e:
            raise VerificationError(f"{path}: statement {number}: {e}") from e
    return statements


def artist_dids(data: DataDir, current: str) -> list[str]:
    """Every did the node's feeds were signed by, oldest first, ending with `current`."""
    statements = read_rotations(data)
    dids = [s["artist"] for s in statements] + ([statements[-1]["next"]] if statements else [])
    if not dids:
        return [current]
    if dids[-1] != current:
        raise VerificationError(
            f"{data.rotation_path}: its last statement names {dids[-1]}, the key is {current}"
        )
    return dids


async def rotate_key(root: Path, *, at: datetime | None = None) -> RotationResult:
    """Rotate the artist's key of the node at `root`, or finish a rotation that was interrupted.

    The new key is encrypted with $STAVE_KEY_PASSPHRASE when that is set, like the old one.
    Refuses (StoreError) while another process has the node open.
    """
    data = DataDir(root)
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    async with open_node(root, exclusive=True, finishing_rotation=True) as node:
        old = node.identity
        statements = read_rotations(data)
        if data.next_key_path.exists():
            new = load_key_file(data.next_key_path, passphrase)
        else:
            new = _create_next_key(data, passphrase)
        if not (statements and statements[-1]["next"] == new.did):
            if statements and statements[-1]["next"] != old.did:
                raise IdentityError(
                    f"{data.rotation_path}: its last statement names {statements[-1]['next']},"
                    f" the key is {old.did}"
                )
            if len(statements) >= MAX_CHAIN:
                data.next_key_path.unlink()
                raise IdentityError(
                    f"{data.rotation_path}: already holds {MAX_CHAIN} rotations, as many as"
                    " followers walk; this key cannot be rotated again"
                )
            statements.append(build_rotation(old, new.did, at))
            _write_rotations(data, statements)
        number = len(statements)
        tracks, feed = 0, None
        if await _latest_feed_artist(node) != new.did:
            renewed = dataclasses.replace(node, identity=new)
            tracks, feed = await Publisher(renewed).resign_all()
        old_key = data.old_key_path(number)
        _swap_keys(data, old_key)
    return RotationResult(old.did, new.did, tracks, feed, old_key)


def _create_next_key(data: DataDir, passphrase: str | None) -> Identity:
    """The new key, written whole beside the old one before anything else changes: a crash
    while writing leaves only a temporary file, never a half-written `key.next.pem`."""
    partial = data.root / (data.next_key_path.name + ".tmp")
    partial.unlink(missing_ok=True)
    identity = create_key_file(partial, passphrase)
    os.replace(partial, data.next_key_path)
    _sync_directory(data.root)
    return identity


def _write_rotations(data: DataDir, statements: list[dict[str, Any]]) -> None:
    """Replace rotation.json atomically (public: mode 0644)."""
    path = data.rotation_path
    tmp = path.with_name(path.name + ".tmp")
    body = json.dumps(statements, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _sync_directory(data.root)


async def _latest_feed_artist(node: Node) -> str | None:
    latest = await node.catalog.latest_feed()
    if latest is None:
        return None
    with node.store.open(latest.cid) as f:
        document = parse_json(f.read(), f"feed {latest.cid}")
    artist = document.get("artist") if isinstance(document, dict) else None
    return artist if isinstance(artist, str) else None


def _swap_keys(data: DataDir, old_key: Path) -> None:
    """Keep key.pem as `old_key`, then move key.next.pem into its place: the last step."""
    try:
        os.link(data.key_path, old_key)
    except FileExistsError:
        if old_key.read_bytes() != data.key_path.read_bytes():
            raise IdentityError(
                f"{old_key}: already holds another key; move it away and run"
                " `stave key rotate` again"
            ) from None
    except OSError as e:
        raise IdentityError(f"{old_key}: cannot keep the old key there ({e.strerror})") from e
    os.replace(data.next_key_path, data.key_path)
    _sync_directory(data.root)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The artist's key file: refused when others may read or write it, and no secret ever printed.

Every failure a user can cause around the key and the config is triggered through the real
`stave` command; its whole output (stdout, stderr, the log lines on stderr) must hold none of the
secrets: the key passphrase, the PEM (or any line of it), the admin token, the Kubo API
authorization.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from node.datadir import init_data_dir
from node.errors import IdentityError
from node.identity import load_key_file
from tests.support.cli import stave as run_stave
from tests.support.shared import FIXTURES

PASSPHRASE = "correct-horse-7f3a9c"
WRONG_PASSPHRASE = "battery-staple-e81b20"
KUBO_AUTHORIZATION = "Bearer kubo-secret-5d1c77"
COMMANDS = [
    ("id",),
    ("add", str(FIXTURES / "tone.ogg")),
    ("check",),
    ("check", "--repair"),
    ("export", "--with-key", "{tmp}/backup.tar"),
    ("run", "--port", "0"),
]
IDS = [" ".join(command[:2]).replace(str(FIXTURES) + "/", "") for command in COMMANDS]


def stave(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = tuple(arg.replace("{tmp}", str(root.parent)) for arg in args)
    return run_stave(root, *args, env=env, timeout=60)


@pytest.fixture
def node_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STAVE_KEY_PASSPHRASE", PASSPHRASE)
    root = tmp_path / "node"
    init_data_dir(root, "Ada Example", "http://127.0.0.1:8080/")
    return root


def secrets_of(root: Path) -> list[str]:
    """Everything that must never be printed: passphrases, the admin token, the key's PEM."""
    pem = (root / "key.pem").read_text()
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    token = (root / "admin-token").read_text().strip()
    return [PASSPHRASE, WRONG_PASSPHRASE, KUBO_AUTHORIZATION, token, *lines]


def assert_no_secret(root: Path, result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    for secret in secrets_of(root):
        assert secret not in output, f"a secret leaked: {output[:400]}"


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("stave: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o666])
def test_a_key_others_may_read_or_write_is_refused(node_dir: Path, mode: int) -> None:
    key = node_dir / "key.pem"
    key.chmod(mode)
    with pytest.raises(IdentityError) as refused:
        load_key_file(key, PASSPHRASE)
    assert str(refused.value) == (
        f"{key}: mode {mode:04o} lets group or others read or write the key; run `chmod 600 {key}`"
    )


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_every_command_that_loads_the_key_refuses_a_readable_key(
    node_dir: Path, command: tuple[str, ...]
) -> None:
    key = node_dir / "key.pem"
    key.chmod(0o644)
    env = {"STAVE_KEY_PASSPHRASE": PASSPHRASE, "STAVE_EXPORT_PASSPHRASE": PASSPHRASE}
    result = stave(node_dir, *command, env=env)
    line = one_line_failure(result)
    assert line == (
        f"stave: {key}: mode 0644 lets group or others read or write the key; run `chmod 600 {key}`"
    )
    assert_no_secret(node_dir, result)
    assert stat.S_IMODE(key.stat().st_mode) == 0o644  # never "fixed" behind the artist's back


def test_the_owner_alone_may_read_the_key(node_dir: Path) -> None:
    key = node_dir / "key.pem"
    did = load_key_file(key, PASSPHRASE).did
    for mode in (0o600, 0o400, 0o700):
        key.chmod(mode)
        assert load_key_file(key, PASSPHRASE).did == did
    key.chmod(0o644)
    env = {"STAVE_KEY_PASSPHRASE": PASSPHRASE}
    assert stave(node_dir, "id", env=env).returncode == 2
    key.chmod(0o600)
    assert stave(node_dir, "id", env=env).stdout.splitlines()[0] == did


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_a_wrong_passphrase_is_named_but_never_printed(
    node_dir: Path, command: tuple[str, ...]
) -> None:
    env = {
        "STAVE_KEY_PASSPHRASE": WRONG_PASSPHRASE,
        "STAVE_EXPORT_PASSPHRASE": WRONG_PASSPHRASE,
        "STAVE_KUBO_AUTHORIZATION": KUBO_AUTHORIZATION,
    }
    result = stave(node_dir, *command, env=env)
    line = one_line_failure(result)
    assert line == f"stave: {node_dir / 'key.pem'}: wrong passphrase or damaged key"
    assert_no_secret(node_dir, result)


def test_a_missing_passphrase_is_named(node_dir: Path) -> None:
    result = stave(node_dir, "id")
    assert one_line_failure(result).endswith("the key is encrypted; set STAVE_KEY_PASSPHRASE")
    assert_no_secret(node_dir, result)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbled", "not-pem", "rsa", "empty", "directory"],
)
def test_a_bad_key_file_is_refused_without_printing_it(node_dir: Path, damage: str) -> None:
    key = node_dir / "key.pem"
    pem = key.read_bytes()
    secrets = secrets_of(node_dir)
    if damage == "directory":
        key.unlink()
        key.mkdir(mode=0o700)
    else:
        key.chmod(0o600)
        if damage == "truncated":
            key.write_bytes(pem[: len(pem) // 2])
        elif damage == "garbled":
            key.write_bytes(pem.replace(pem.splitlines()[2][:8], b"AAAAAAAA"))
        elif damage == "not-pem":
            key.write_bytes(b"\n".join(pem.splitlines()[1:-1]))
        elif damage == "rsa":
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
            key.write_bytes(
                other.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        else:
            key.write_bytes(b"")
    result = stave(
        node_dir, "add", str(FIXTURES / "tone.ogg"), env={"STAVE_KEY_PASSPHRASE": PASSPHRASE}
    )
    line = one_line_failure(result)
    assert line.startswith(f"stave: {key}: ")
    output = result.stdout + result.stderr
    assert not [s for s in secrets if s in output], output
    written = key.read_text(errors="replace") if key.is_file() else ""
    lines = [x for x in written.splitlines() if len(x) > 8 and not x.startswith("-----")]
    assert not [x for x in lines if x in output], output


@pytest.mark.parametrize(
    "config",
    [
        '[server]\nport = "eighty"\n',
        "[node]\nname = \n",
        "[nonsense]\nkey = 1\n",
        '[ipfs]\nbackend = "carrier-pigeon"\n',
    ],
    ids=["bad-value", "bad-toml", "unknown-section", "bad-backend"],
)
def test_a_bad_config_is_refused_without_printing_secrets(node_dir: Path, config: str) -> None:
    (node_dir / "config.toml").write_text(config, encoding="utf-8")
    env = {"STAVE_KEY_PASSPHRASE": PASSPHRASE, "STAVE_KUBO_AUTHORIZATION": KUBO_AUTHORIZATION}
    for command in (("add", str(FIXTURES / "tone.ogg")), ("admin-token",)):
        result = stave(node_dir, *command, env=env)
        line = one_line_failure(result)
        assert "config" in line, line
        assert_no_secret(node_dir, result)


def test_the_key_file_is_created_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        init_data_dir(tmp_path / "node", "Ada")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "node" / "key.pem").stat().st_mode) == 0o600

"""The deployment guides stay true to the code: every `stave` command and option they show
exists, every setting they name is in the settings table, and the systemd unit they install is
hardened as they say and passes `systemd-analyze verify`."""

from __future__ import annotations

import argparse
import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import build_parser
from node.settings import SETTINGS
from tests.support.paths import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
GUIDES = ["raspberry-pi.md", "vps.md", "upgrading.md", "backup.md", "fediverse.md"]
UNIT = DOCS / "stave.service"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
# A `stave` that is a command: not part of a path, a user name in `-u stave`, or `stave-…`.
INVOCATION = re.compile(r"(?<![\w./:=-])stave((?:[ \t]+[^\s|;&)<>]+)*)")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the stave parser has no subcommands")


def _invocations(text: str) -> list[list[str]]:
    found = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)  # a shell comment
            # `sudo -u stave …` names the user; the command is the /opt/stave/bin/stave after it.
            line = re.sub(r"-[ugo] stave\b", "", line)
            line = line.replace("/opt/stave/bin/stave", " stave")
            for match in INVOCATION.finditer(line):
                found.append(match.group(1).split())
    return found


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_shows_only_commands_and_options_stave_has(guide: str) -> None:
    text = (DOCS / guide).read_text(encoding="utf-8")
    commands = _subcommands()
    global_options = {"--data-dir", "--version", "--help", "-h"}
    checked = 0
    for words in _invocations(text):
        while words and words[0] in global_options:
            words = words[2:] if words[0] == "--data-dir" else words[1:]
        if not words or words[0] == "stave":  # `exec stave stave …`: the second one counts
            continue
        if words[0].startswith("-"):
            continue  # an option of something else (`sudo -u stave --preserve-env=…`)
        name = words[0]
        assert name in commands, f"{guide}: `stave {' '.join(words)}`: no command {name!r}"
        known = set(commands[name]._option_string_actions)
        for word in words[1:]:
            if word.startswith("--"):
                option = word.split("=", 1)[0]
                assert option in known, f"{guide}: `stave {name}` has no option {option}"
        checked += 1
    assert checked, f"{guide} shows no stave command"


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_names_only_real_settings(guide: str) -> None:
    text = (DOCS / guide).read_text(encoding="utf-8")
    settings = {s.name for s in SETTINGS}
    sections = {s.section for s in SETTINGS}
    for section, key in re.findall(r"`\[?(\w+)\]?[ .](\w+)`", text):
        if section in sections:
            assert f"{section}.{key}" in settings, f"{guide}: {section}.{key}"
    for block in FENCE.findall(text):
        if "[node]" in block or "[server]" in block or "[ipfs]" in block:
            section = None
            for line in block.splitlines():
                if header := re.fullmatch(r"\[(\w+)\]", line.strip()):
                    section = header.group(1)
                elif "=" in line and section in sections:
                    key = line.split("=", 1)[0].strip()
                    assert f"{section}.{key}" in settings, f"{guide}: {section}.{key}"


def _unit() -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(strict=False, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


def test_the_systemd_unit_runs_stave_hardened_within_its_data_directory() -> None:
    service = _unit()["Service"]
    assert service["User"] == "stave"
    assert service["ExecStart"] == "/opt/stave/bin/stave run"
    data_dir = service["Environment"].removeprefix("STAVE_DATA_DIR=")
    assert data_dir == "/var/lib/stave"
    assert service["ReadWritePaths"] == data_dir
    assert service["StateDirectory"] == "stave"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert service["MemoryMax"].endswith("M")
    assert int(service["MemoryHigh"][:-1]) < int(service["MemoryMax"][:-1])
    # Longer than the time `stave run` gives requests in flight after SIGTERM.
    shutdown = next(s for s in SETTINGS if s.name == "server.shutdown_timeout").default
    assert int(service["TimeoutStopSec"]) > shutdown


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # The unit as installed, but starting the stave of this environment, which exists here.
    stave = Path(sys.executable).parent / "stave"
    unit = tmp_path / "stave.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/stave/bin/stave", str(stave)),
        encoding="utf-8",
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # Unknown or misspelt settings are only warned about: there must be none.
    assert str(unit) not in result.stderr, result.stderr

"""The README stays in step with the code: its two commands exist, and it shows every `stave`
command there is and no command or option that is not."""

from __future__ import annotations

import argparse
import re

from node.cli import build_parser
from tests.support.paths import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = re.compile(r"^    (stave .*)$", re.M)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the stave parser has no subcommands")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_the_two_commands_exist_and_ci_runs_the_second() -> None:
    assert "\n    scripts/up\n" in README and "\n    scripts/test\n" in README
    for script in ("scripts/up", "scripts/test", ".ci/run"):
        path = PROJECT_ROOT / script
        assert path.is_file() and path.stat().st_mode & 0o111, script
    assert "scripts/test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_every_command_is_shown() -> None:
    shown = {line.split()[1] for line in EXAMPLE.findall(README)}
    assert set(_subcommands()) <= shown, set(_subcommands()) - shown


def test_examples_use_real_commands_and_options() -> None:
    commands = _subcommands()
    examples = EXAMPLE.findall(README)
    assert len(examples) >= 10
    for example in examples:
        words = example.split("#")[0].split()
        assert words[1] in commands, example
        allowed = _options(commands[words[1]])
        for word in words[2:]:
            flag = word.strip("[]").split("=")[0]
            if flag.startswith("--"):
                assert flag in allowed, f"{example}: {flag}"

"""The settings table, the config loader and config.example.toml stay in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.errors import ConfigError
from node.settings import SETTINGS, Config, example_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_is_the_settings_table() -> None:
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    # regenerate with: python -m node.settings > config.example.toml
    assert example == example_config()
    assert parse_config(example).as_dict() == Config().as_dict()
    for setting in SETTINGS:
        assert f"{setting.key} = " in example
        assert setting.help in example


def test_defaults_are_opt_in() -> None:
    config = Config()
    for use in ("ai_training", "ai_generative_training", "ai_inference", "data_mining"):
        assert config[f"terms.{use}"] == "notAllowed"
    assert config["terms.tdm_reservation"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[node]\nnmae = 'x'\n", "config key node.nmae: unknown setting"),
        ("[terms]\nai_training = 'sure'\n", "config key terms.ai_training: must be one of"),
        ("[server]\nport = 'eighty'\n", "config key server.port: must be a int"),
        ("[server]\nport = 70000\n", "config key server.port: must be a port number"),
        ("[terms]\ntdm_reservation = 2\n", "config key terms.tdm_reservation: must be 0"),
        ("[federation]\nallow_private_addresses = 1\n", "federation.allow_private_addresses"),
        ("title = 'x'\n", "config key title: unknown setting"),
        ("[node\n", "not valid TOML"),
    ],
    ids=[
        "unknown-key",
        "bad-choice",
        "bad-type",
        "bad-port",
        "bad-reservation",
        "int-for-bool",
        "top-level",
        "syntax",
    ],
)
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        parse_config(text)
    assert "\n" not in str(caught.value)

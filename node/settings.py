"""Every configuration option, declared once.

The loader, `config.example.toml` and the docs test all read `SETTINGS`. A data directory's
`config.toml` may set any of these; an unknown key or a bad value is a `ConfigError` naming it.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.support import MAX_SUPPORT_LABEL, label_problem, lightning_problem, url_problem

DATA_MINING_VALUES = ("allowed", "notAllowed", "constrained")
# node.url until the artist sets it; `stave run` serves with its own address then (web/runner.py).
DEFAULT_NODE_URL = "http://127.0.0.1:8080/"


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: Any
    help: str
    kind: type
    check: Callable[[Any], str | None] | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _one_of(*values: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in values else f"must be one of {', '.join(values)}"

    return check


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535"


def _zero_or_one(value: Any) -> str | None:
    return None if value in (0, 1) else "must be 0 (not reserved) or 1 (reserved)"


_DM = _one_of(*DATA_MINING_VALUES)

# A fediverse username every server can mention: Mastodon's form (letters, digits and `_`,
# with `.` or `-` only between them), lowercase so `acct:` lookups need no case folding.
HANDLE_PATTERN = re.compile(r"[a-z0-9_]+(?:[.-][a-z0-9_]+)*")
MAX_HANDLE = 64
DEFAULT_HANDLE = "artist"
# Latin letters NFKD does not take apart into a base letter and a mark.
_FOLDED = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "œ": "oe", "Œ": "oe", "ð": "d",
     "Ð": "d", "þ": "th", "Þ": "th", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ı": "i"}
)  # fmt: skip


def handle_from_name(name: str) -> str:
    """The default `fediverse.handle` for an artist called `name`: its letters and digits
    folded to lowercase ASCII, every other run of characters one `_`; "artist" if none are
    left. "Ada Example" gives "ada_example", "Sigur Rós" "sigur_ros"."""
    ascii_name = (
        unicodedata.normalize("NFKD", name.translate(_FOLDED))
        .encode("ascii", "ignore")
        .decode("ascii")
        .lower()
    )
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name).strip("_")[:MAX_HANDLE].rstrip("_")
    return slug or DEFAULT_HANDLE


def _handle(value: Any) -> str | None:
    if value == "" or (len(value) <= MAX_HANDLE and HANDLE_PATTERN.fullmatch(value)):
        return None
    return (
        f"must be a fediverse username of at most {MAX_HANDLE} lowercase letters, digits"
        " and _ (. or - only between them)"
    )


# A listening rendition (node/media/renditions.py): a codec and its bitrate in kb/s. Opus is
# the one codec; libopus takes 6 to 510 kb/s (opus_encoder_ctl, OPUS_SET_BITRATE).
RENDITION_PATTERN = re.compile(r"(opus):([0-9]{1,3})")
OPUS_KBPS = (6, 510)


def rendition_problem(text: object) -> str | None:
    """Why `text` is not a rendition `media.renditions` accepts (`opus:128`), or None."""
    match = RENDITION_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return f"{text!r} is not CODEC:KBPS with codec opus (e.g. opus:128)"
    low, high = OPUS_KBPS
    if not low <= int(match[2]) <= high:
        return f"{text!r}: opus takes {low} to {high} kb/s"
    return None


def _renditions(value: Any) -> str | None:
    problems = [p for item in value if (p := rendition_problem(item)) is not None]
    if not problems and len(set(value)) < len(value):
        problems.append("each rendition once")
    return f"must be a list of renditions: {problems[0]}" if problems else None


# Each CAWG use's key (`terms.ai_training`) and offer (`offers.ai_training_*`, node/terms.py).
OFFER_KEYS = ("ai_training", "ai_generative_training", "ai_inference", "data_mining")
_USE_WORDS = ("AI training", "generative AI training", "AI inference", "data mining")
_OFFER_PARTS = (
    ("price", "", "Price of the {} offer, e.g. 500 EUR; empty to agree it on request."),
    ("per", "track", "What the {} price is for: track or catalog."),
    ("attribution", "", "Credit words the {} offer requires; empty for none."),
    ("contact", "", "Where {} licences are asked for (mailto: or https); the offer needs it."),
    ("conditions", "", "Further conditions of the {} offer, in plain words."),
)
_OFFER_SETTINGS = tuple(
    Setting("offers", f"{key}_{part}", default, text.format(words), str,
            _one_of("track", "catalog") if part == "per" else None)
    for key, words in zip(OFFER_KEYS, _USE_WORDS, strict=True)
    for part, default, text in _OFFER_PARTS
)  # fmt: skip


SETTINGS: tuple[Setting, ...] = (
    Setting("node", "name", "", "The artist or project name shown on the feed and pages.", str),
    Setting(
        "node",
        "url",
        DEFAULT_NODE_URL,
        "The public base URL listeners reach this node at (ends with /).",
        str,
    ),
    Setting(
        "node", "contact", "", "Where licensing requests go (an e-mail or URL); optional.", str
    ),
    Setting(
        "terms",
        "license",
        "ARR",
        "Default licence: an SPDX id, ARR (all rights reserved), or a URL.",
        str,
    ),
    Setting(
        "terms",
        "license_url",
        "",
        "URL of the licence text; derived from the SPDX id when empty.",
        str,
    ),
    Setting("terms", "copyright", "", "Copyright line, ID3 TCOP form: year, space, holder.", str),
    Setting(
        "terms",
        "tdm_reservation",
        1,
        "TDMRep: 1 reserves text and data mining rights, 0 does not.",
        int,
        _zero_or_one,
    ),
    Setting(
        "terms",
        "tdm_policy",
        "",
        "URL of a TDMRep policy; the node's own /terms/tdm-policy.json when empty.",
        str,
    ),
    Setting("terms", "ai_training", "notAllowed", "Use for AI training.", str, _DM),
    Setting(
        "terms", "ai_generative_training", "notAllowed", "Use for training generative AI.", str, _DM
    ),
    Setting("terms", "ai_inference", "notAllowed", "Use as AI inference input.", str, _DM),
    Setting("terms", "data_mining", "notAllowed", "Text and data mining.", str, _DM),
    *_OFFER_SETTINGS,
    Setting(
        "feed",
        "expires_days",
        7,
        "Days after which followers treat an unrefreshed feed as stale.",
        int,
        _positive,
    ),
    Setting(
        "support",
        "url",
        "",
        "A page where listeners can support the artist (https://…), shown on the artist page"
        " and in the feeds; empty for none.",
        str,
        url_problem,
    ),
    Setting(
        "support",
        "label",
        "Support the artist",
        f"The words of the support link (at most {MAX_SUPPORT_LABEL} characters).",
        str,
        label_problem,
    ),
    Setting(
        "support",
        "lightning_address",
        "",
        "A Lightning Address (name@domain) listeners' podcast apps can pay, as Podcasting 2.0"
        " podcast:value in the RSS feed; empty for none.",
        str,
        lightning_problem,
    ),
    Setting(
        "media",
        "renditions",
        ["opus:128"],
        "Listening copies made of every track for phones and slow links, as CODEC:KBPS"
        " (opus, 6 to 510 kb/s); [] for none. `stave renditions make` brings older tracks up"
        " to date.",
        list,
        _renditions,
    ),
    Setting("server", "host", "127.0.0.1", "Address `stave run` listens on.", str),
    Setting("server", "port", 8080, "Port `stave run` listens on.", int, _port),
    Setting(
        "server",
        "max_upload_bytes",
        2 * 1024**3,
        "Largest upload the admin API accepts, in bytes.",
        int,
        _positive,
    ),
    Setting(
        "server",
        "shutdown_timeout",
        10,
        "Seconds `stave run` lets requests in flight finish after SIGTERM or SIGINT.",
        int,
        _positive,
    ),
    Setting(
        "server",
        "max_concurrent_uploads",
        4,
        "Uploads received at once; more are answered 503 with Retry-After.",
        int,
        _positive,
    ),
    Setting(
        "server",
        "body_timeout_seconds",
        60,
        "Seconds a request body may take to finish or bring 1 MiB more before a 408.",
        int,
        _positive,
    ),
    Setting(
        "server",
        "keepalive_timeout",
        15,
        "Seconds an idle keep-alive connection stays open.",
        int,
        _positive,
    ),
    Setting(
        "server",
        "max_failed_logins",
        10,
        "Wrong admin tokens one address may send per window before it is answered 429.",
        int,
        _positive,
    ),
    Setting(
        "server",
        "failed_login_window_seconds",
        300,
        "The window, in seconds, that server.max_failed_logins counts over.",
        int,
        _positive,
    ),
    Setting(
        "ipfs",
        "backend",
        "embedded",
        "Where content is pinned besides the embedded store: embedded or kubo.",
        str,
        _one_of("embedded", "kubo"),
    ),
    Setting("ipfs", "api", "http://127.0.0.1:5001", "Kubo RPC API address.", str),
    Setting(
        "ipfs",
        "authorization_file",
        "",
        "File holding the Authorization header value Kubo's API.Authorizations expects"
        " (e.g. Bearer …), relative to the data directory; $STAVE_KUBO_AUTHORIZATION wins.",
        str,
    ),
    Setting(
        "ipfs",
        "ipns",
        True,
        "With the kubo backend, publish every new feed under the artist's IPNS name.",
        bool,
    ),
    Setting(
        "ipfs",
        "ipns_lifetime_hours",
        168,
        "Hours an IPNS record of the feed stays valid; it is republished at half that age.",
        int,
        _positive,
    ),
    Setting(
        "ipfs",
        "retry_min_seconds",
        5,
        "First wait before retrying a pin Kubo could not take; it doubles on each failure.",
        int,
        _positive,
    ),
    Setting(
        "ipfs",
        "retry_max_seconds",
        3600,
        "Longest wait between two retries of one pin.",
        int,
        _positive,
    ),
    Setting(
        "ipfs",
        "publish_wait_seconds",
        5,
        "How long stave add, edit and withdraw wait for Kubo before leaving pins to the queue.",
        int,
        _positive,
    ),
    Setting(
        "federation",
        "allow_private_addresses",
        False,
        "Allow outbound requests to private, loopback and link-local addresses.",
        bool,
    ),
    Setting(
        "federation",
        "poll_interval_seconds",
        900,
        "Seconds between conditional GETs of each followed feed.",
        int,
        _positive,
    ),
    Setting(
        "federation",
        "max_feed_bytes",
        8 * 1024**2,
        "Largest feed document accepted from another node, in bytes.",
        int,
        _positive,
    ),
    Setting(
        "federation", "max_follows", 5000, "Most artists this node may follow.", int, _positive
    ),
    Setting(
        "fediverse",
        "handle",
        "",
        "The artist's fediverse username, as in @handle@host; stave init sets it from"
        " node.name, and when empty it is node.name folded to lowercase letters, digits and _.",
        str,
        _handle,
    ),
    Setting(
        "fediverse",
        "followers_private",
        False,
        "Keep the list of fediverse followers private: /actor/followers then gives only"
        " how many there are.",
        bool,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class Config:
    """Validated settings. Read with `config["section.key"]`."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
        for name, value in (values or {}).items():
            self._values[name] = _validate(name, value)

    def __getitem__(self, name: str) -> Any:
        if name == "fediverse.handle" and not self._values[name]:  # a node older than the setting
            return handle_from_name(self._values["node.name"])
        return self._values[name]

    def replace(self, **changes: Any) -> Config:
        """A copy with `section__key=value` changes applied and validated."""
        values = dict(self._values)
        for name, value in changes.items():
            dotted = name.replace("__", ".")
            values[dotted] = _validate(dotted, value)
        return Config(values)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _validate(name: str, value: Any) -> Any:
    setting = _BY_NAME.get(name)
    if setting is None:
        raise ConfigError(f"config key {name}: unknown setting")
    ok = isinstance(value, setting.kind) and not (setting.kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"config key {name}: must be a {setting.kind.__name__}, got {value!r}")
    if setting.check is not None and (reason := setting.check(value)) is not None:
        raise ConfigError(f"config key {name}: {reason}, got {value!r}")
    return value


def parse_config(text: str, source: str = "config.toml") -> Config:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML ({e})") from e
    values: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"config key {section}: unknown setting (expected a [section])")
        for key, value in table.items():
            values[f"{section}.{key}"] = value
    return Config(values)


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from e
    return parse_config(text, str(path))


def save_config(path: Path, config: Config) -> None:
    """Write every value of `config` to `path` (as `render_config` lays it out), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_config(config.as_dict()), encoding="utf-8")
    tmp.replace(path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(overrides: Mapping[str, Any] | None = None, *, comments: bool = True) -> str:
    """A TOML document of every setting with its help, defaults replaced by `overrides`."""
    overrides = overrides or {}
    lines: list[str] = []
    section = None
    for s in SETTINGS:
        if s.section != section:
            if lines:
                lines.append("")
            lines.append(f"[{s.section}]")
            section = s.section
        if comments:
            lines.append(f"# {s.help} Default: {_toml_value(s.default)}")
        lines.append(f"{s.key} = {_toml_value(overrides.get(s.name, s.default))}")
    return "\n".join(lines) + "\n"


EXAMPLE_HEADER = (
    "# Stave configuration: every option with its default. Copy to <data dir>/config.toml.\n"
    "# Generated by `python -m node.settings > config.example.toml` from the SETTINGS table.\n\n"
)


def example_config() -> str:
    """The text of config.example.toml."""
    return EXAMPLE_HEADER + render_config()


if __name__ == "__main__":
    print(example_config(), end="")

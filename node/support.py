"""Support from listeners: the artist's support link and Lightning Address.

Set in `config.toml`'s `[support]` (node/settings.py uses the checks here), shown on the artist
page, carried in the signed feed as its optional `support` member (docs/protocol-extensions.md;
a follower that does not know it ignores it) and in RSS as Podcasting 2.0 `podcast:funding` and
`podcast:value` (node/web/rss.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

# A Lightning Address (LUD-16) is name@domain: the name lowercase a-z, 0-9 and -_.+, the domain
# a host name with at least one dot. Podcasting 2.0 pays it as `type="lnaddress"`.
LIGHTNING_ADDRESS = re.compile(
    r"[a-z0-9._+-]{1,64}@(?=.{4,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+",
    re.ASCII,
)
MAX_SUPPORT_LABEL = 128  # what aggregators show of podcast:funding's text
MAX_SUPPORT_URL = 2000
DEFAULT_LABEL = "Support the artist"


def url_problem(value: Any) -> str | None:
    """Why `value` is neither "" nor an https:// URL with a host name, or None."""
    if value == "":
        return None
    if len(value) > MAX_SUPPORT_URL or any(c.isspace() or ord(c) < 32 for c in value):
        return f"must be an https:// URL of at most {MAX_SUPPORT_URL} characters, no spaces"
    try:
        parts = urlsplit(value)
        ok = parts.scheme == "https" and bool(parts.hostname)
        ok = ok and parts.username is None and parts.password is None
    except ValueError:  # a bad port or IPv6 literal
        ok = False
    if not ok:
        return "must be an https:// URL with a host name (and no user name or password)"
    return None


def label_problem(value: Any) -> str | None:
    """Why `value` is not one line of at most MAX_SUPPORT_LABEL characters, or None."""
    if len(value) > MAX_SUPPORT_LABEL or any(ord(c) < 32 or c == "\x7f" for c in value):
        return f"must be one line of at most {MAX_SUPPORT_LABEL} characters"
    return None


def lightning_problem(value: Any) -> str | None:
    """Why `value` is neither "" nor a Lightning Address, or None."""
    if value == "" or LIGHTNING_ADDRESS.fullmatch(value):
        return None
    return "must be a Lightning Address, name@domain (lowercase, e.g. ada@getalby.com)"


class _Settings(Protocol):
    def __getitem__(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Support:
    """Where listeners can support the artist: a link (`url`, shown as `label`), a Lightning
    Address (`lightning`), or both."""

    url: str | None = None
    label: str = DEFAULT_LABEL
    lightning: str | None = None

    @classmethod
    def from_config(cls, config: _Settings) -> Support | None:
        """The node's `[support]` settings (already validated), None when neither is set."""
        url, lightning = config["support.url"], config["support.lightning_address"]
        if not url and not lightning:
            return None
        label = config["support.label"].strip() or DEFAULT_LABEL
        return cls(url=url or None, label=label, lightning=lightning or None)

    @classmethod
    def from_json(cls, value: Any) -> Support | None:
        """The feed's `support` member, or None when it is absent; a member that is not what
        `to_json` writes is ignored (None), as any unknown member is."""
        if not isinstance(value, dict):
            return None
        url, label, lightning = value.get("url"), value.get("label"), value.get("lightning")
        if not _optional(url, url_problem) or not _optional(lightning, lightning_problem):
            return None
        if url is None and lightning is None:
            return None
        if not isinstance(label, str) or not label or label_problem(label) is not None:
            label = DEFAULT_LABEL
        return cls(url=url, label=label, lightning=lightning)

    def to_json(self) -> dict[str, str]:
        """The feed's `support` member: `url` and `label` when there is a link, `lightning`."""
        member: dict[str, str] = {}
        if self.url:
            member.update(url=self.url, label=self.label)
        if self.lightning:
            member["lightning"] = self.lightning
        return member


def _optional(value: Any, problem: Callable[[Any], str | None]) -> bool:
    """Whether `value` is absent (None) or a non-empty string `problem` finds nothing wrong in."""
    return value is None or (isinstance(value, str) and value != "" and problem(value) is None)

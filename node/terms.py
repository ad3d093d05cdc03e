"""The artist's terms (PROTOCOL §4): licence, copyright, TDMRep reservation, AI-use choices.

Consent is opt-in: unless the artist says otherwise every data-mining use is `notAllowed` and
`tdmReservation` is 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from node.errors import UsageError, VerificationError
from node.settings import DATA_MINING_VALUES, Config

DATA_MINING_USES = ("aiTraining", "aiGenerativeTraining", "aiInference", "dataMining")
ALL_RIGHTS_RESERVED = "ARR"
_SPDX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_COPYRIGHT = re.compile(r"^\d{4} \S.*$")

_USE_WORDS = {
    "aiTraining": "training AI models",
    "aiGenerativeTraining": "training generative AI models",
    "aiInference": "use as input to AI models",
    "dataMining": "text and data mining",
}


def _opt_in() -> dict[str, str]:
    return dict.fromkeys(DATA_MINING_USES, "notAllowed")


def check_license(value: str, option: str = "--license") -> str:
    """An SPDX id, `ARR` or an http(s) URL; UsageError naming `option` otherwise."""
    value = value.strip()
    if value == ALL_RIGHTS_RESERVED or _SPDX_ID.match(value):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    raise UsageError(f"{option}: {value!r} is not an SPDX licence id, ARR, or an http(s) URL")


def check_copyright(value: str, option: str = "--copyright") -> str:
    value = value.strip()
    if not _COPYRIGHT.match(value):
        raise UsageError(f"{option}: {value!r} must be a year, a space and the holder")
    return value


def check_use(value: str, option: str = "--ai-training") -> str:
    if value not in DATA_MINING_VALUES:
        choices = ", ".join(DATA_MINING_VALUES)
        raise UsageError(f"{option}: {value!r} is not one of {choices}")
    return value


def license_url_for(license_id: str) -> str:
    """The canonical URL of a licence: itself for a URL, the CC deed or SPDX page for an id."""
    if license_id == ALL_RIGHTS_RESERVED:
        return ""
    if license_id.startswith(("http://", "https://")):
        return license_id
    match = re.match(r"^CC-(BY(?:-NC)?(?:-ND|-SA)?)-(\d\.\d)$", license_id, re.IGNORECASE)
    if match:
        kind, version = match.group(1).lower(), match.group(2)
        return f"https://creativecommons.org/licenses/{kind}/{version}/"
    if license_id.upper() == "CC0-1.0":
        return "https://creativecommons.org/publicdomain/zero/1.0/"
    return f"https://spdx.org/licenses/{license_id}.html"


@dataclass(frozen=True)
class Terms:
    """One set of terms, as carried by a manifest or a feed."""

    license: str = ALL_RIGHTS_RESERVED
    license_url: str = ""
    copyright: str = ""
    tdm_reservation: int = 1
    tdm_policy: str = ""
    data_mining: dict[str, str] = field(default_factory=_opt_in)

    @classmethod
    def from_config(cls, config: Config) -> Terms:
        license_id = check_license(config["terms.license"], "config key terms.license")
        copyright_line = config["terms.copyright"]
        if copyright_line:
            check_copyright(copyright_line, "config key terms.copyright")
        return cls(
            license=license_id,
            license_url=config["terms.license_url"] or license_url_for(license_id),
            copyright=copyright_line,
            tdm_reservation=config["terms.tdm_reservation"],
            tdm_policy=config["terms.tdm_policy"],
            data_mining={
                "aiTraining": config["terms.ai_training"],
                "aiGenerativeTraining": config["terms.ai_generative_training"],
                "aiInference": config["terms.ai_inference"],
                "dataMining": config["terms.data_mining"],
            },
        )

    def with_choices(
        self,
        *,
        license: str | None = None,
        copyright: str | None = None,
        ai_training: str | None = None,
    ) -> Terms:
        """These terms with a track's own choices applied and validated."""
        terms = self
        if license is not None:
            license_id = check_license(license)
            terms = replace(terms, license=license_id, license_url=license_url_for(license_id))
        if copyright is not None:
            terms = replace(terms, copyright=check_copyright(copyright))
        if ai_training is not None:
            uses = dict(terms.data_mining, aiTraining=check_use(ai_training))
            terms = replace(terms, data_mining=uses)
        return terms

    @property
    def ai_training(self) -> str:
        return self.data_mining["aiTraining"]

    @property
    def reserves_mining(self) -> bool:
        """True when crawlers must be told no (TDMRep reservation or any use not allowed)."""
        return self.tdm_reservation == 1 or any(
            value != "allowed" for value in self.data_mining.values()
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"license": self.license}
        if self.license_url:
            document["licenseUrl"] = self.license_url
        if self.copyright:
            document["copyright"] = self.copyright
        document["tdmReservation"] = self.tdm_reservation
        if self.tdm_policy:
            document["tdmPolicy"] = self.tdm_policy
        document["dataMining"] = dict(self.data_mining)
        return document

    @classmethod
    def from_json(cls, document: Any) -> Terms:
        """Terms read from a signed document; VerificationError when malformed."""
        if not isinstance(document, dict):
            raise VerificationError("terms are not a JSON object")
        try:
            uses = document.get("dataMining", {})
            if not isinstance(uses, dict) or any(
                uses.get(use, "notAllowed") not in DATA_MINING_VALUES for use in DATA_MINING_USES
            ):
                raise VerificationError("terms.dataMining has an unknown value")
            reservation = document.get("tdmReservation", 1)
            if reservation not in (0, 1) or isinstance(reservation, bool):
                raise VerificationError("terms.tdmReservation must be 0 or 1")
            return cls(
                license=str(document["license"]),
                license_url=str(document.get("licenseUrl", "")),
                copyright=str(document.get("copyright", "")),
                tdm_reservation=int(reservation),
                tdm_policy=str(document.get("tdmPolicy", "")),
                data_mining={use: str(uses.get(use, "notAllowed")) for use in DATA_MINING_USES},
            )
        except KeyError as e:
            raise VerificationError(f"terms lack {e.args[0]}") from e

    def license_in_words(self) -> str:
        if self.license == ALL_RIGHTS_RESERVED:
            return "All rights reserved"
        return f"Licensed under {self.license}"

    def in_words(self) -> str:
        """The terms as one plain-English paragraph, for listeners and for the USER frame."""
        sentences = []
        if self.copyright:
            sentences.append(f"© {self.copyright}.")
        sentences.append(self.license_in_words() + ".")
        refused = [_USE_WORDS[u] for u, v in self.data_mining.items() if v == "notAllowed"]
        constrained = [_USE_WORDS[u] for u, v in self.data_mining.items() if v == "constrained"]
        allowed = [_USE_WORDS[u] for u, v in self.data_mining.items() if v == "allowed"]
        if refused:
            sentences.append(
                "Not allowed without the artist's permission: " + ", ".join(refused) + "."
            )
        if constrained:
            sentences.append(
                "Allowed only on the artist's conditions: " + ", ".join(constrained) + "."
            )
        if allowed:
            sentences.append("Allowed by the artist: " + ", ".join(allowed) + ".")
        if self.tdm_reservation == 1:
            sentences.append("Text and data mining rights are reserved (TDMRep).")
        return " ".join(sentences)

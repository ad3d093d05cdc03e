"""Every error Stave raises on purpose. The CLI and the web app translate these at the edge.

Each message is one line that names the thing and the reason.
"""


class StaveError(Exception):
    """Root of every error a user can cause or meet."""


class ConfigError(StaveError):
    """A setting is unknown or has a bad value."""


class UsageError(StaveError):
    """A command-line option or request field has a bad value."""


class IdentityError(StaveError):
    """The artist's key is missing, unreadable, or would be overwritten."""


class VerificationError(StaveError):
    """A signature, proof, CID or document failed verification."""


class SignatureError(VerificationError):
    """An HTTP request's signature (draft-cavage or RFC 9421) or body digest was refused."""


class InvalidCID(StaveError):
    """A string is not a CID Stave understands."""


class UnsupportedMedia(StaveError):
    """A file is not a supported, readable audio file."""


class StoreError(StaveError):
    """The content store could not do what was asked."""


class ContentNotFound(StoreError):
    """The store holds no content under that CID."""


class CatalogError(StaveError):
    """The catalog database could not do what was asked."""


class TrackNotFound(CatalogError):
    """No track has that id."""


class ReleaseNotFound(CatalogError):
    """No release has that id."""


class KuboError(StaveError):
    """Kubo's RPC API refused or failed a request."""


class FederationError(StaveError):
    """Talking to another node failed or was refused."""


class Gone(FederationError):
    """A remote server answered 404 or 410 for a document: it is gone, not just unreachable."""


def excerpt(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: how a message quotes a value from untrusted input,
    so that a hostile document can never make an error message long or multi-line."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"

"""What the node serves to the fediverse about itself: its URLs, its actor (a `Person`), the
WebFinger answer that finds it (RFC 7033) and its NodeInfo 2.1 documents.

Plain functions over plain values (the base URL, the handle, the keys), so they read the same
from the web app, the outbox and the tests. The JSON-LD contexts are names, never fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from node.errors import UsageError

AP_MEDIA_TYPE = "application/activity+json"
LD_MEDIA_TYPE = "application/ld+json"
AS_PROFILE = "https://www.w3.org/ns/activitystreams"
JRD_MEDIA_TYPE = "application/jrd+json"
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/2.1"
# NodeInfo 2.1 §5: the document's profile is the schema URL with a "#".
NODEINFO_MEDIA_TYPE = f'application/json; profile="{NODEINFO_SCHEMA}#"'
PROFILE_PAGE_REL = "http://webfinger.net/rel/profile-page"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
DID_CONTEXT = "https://www.w3.org/ns/did/v1"  # defines `assertionMethod`
# The terms Mastodon uses for profile fields and flags (schema.org PropertyValue, toot:).
EXTENSION_CONTEXT: dict[str, Any] = {
    "schema": "http://schema.org#",
    "toot": "http://joinmastodon.org/ns#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "discoverable": "toot:discoverable",
}
ACTOR_CONTEXT: list[Any] = [
    AS_CONTEXT,
    SECURITY_CONTEXT,
    DATA_INTEGRITY_CONTEXT,
    DID_CONTEXT,
    MULTIKEY_CONTEXT,
    EXTENSION_CONTEXT,
]
MAX_RESOURCE = 1024


@dataclass(frozen=True)
class ActorUrls:
    """Every URL of the node's actor, from its base URL (which ends in "/")."""

    base: str

    @classmethod
    def of(cls, base_url: str) -> ActorUrls:
        return cls(base_url if base_url.endswith("/") else base_url + "/")

    @property
    def actor(self) -> str:
        return self.base + "actor"

    @property
    def main_key(self) -> str:
        """The RSA key's id, for HTTP signatures (`publicKey`)."""
        return self.actor + "#main-key"

    @property
    def ed25519_key(self) -> str:
        """The artist's Ed25519 key's id as a FEP-521a Multikey (`assertionMethod`)."""
        return self.actor + "#ed25519-key"

    @property
    def inbox(self) -> str:
        return self.actor + "/inbox"

    @property
    def shared_inbox(self) -> str:
        return self.base + "inbox"

    @property
    def outbox(self) -> str:
        return self.actor + "/outbox"

    @property
    def followers(self) -> str:
        return self.actor + "/followers"

    @property
    def artist_page(self) -> str:
        return self.base

    @property
    def host(self) -> str:
        """The host (and port, when not the scheme's) that `acct:` names the artist at."""
        return urlsplit(self.base).netloc.rpartition("@")[2].lower()

    def post(self, track_id: str) -> str:
        """The id of a track's post: `{base}posts/{uuid}` for the track `urn:uuid:{uuid}`."""
        return self.base + "posts/" + track_id.removeprefix("urn:uuid:")

    def activity(self, name: str) -> str:
        return self.base + "activities/" + name

    def track_page(self, track_id: str) -> str:
        return self.base + "tracks/" + track_id.removeprefix("urn:uuid:")

    def manifest(self, track_id: str) -> str:
        """The track's current signed manifest, as JSON."""
        return self.track_page(track_id) + "/manifest.json"

    def content(self, cid: str) -> str:
        return self.base + "ipfs/" + cid


def acct(handle: str, urls: ActorUrls) -> str:
    """`handle@host`, what a fediverse user types after the `@`."""
    return f"{handle}@{urls.host}"


def multikey_of_did(did: str) -> str:
    """The `publicKeyMultibase` of an Ed25519 did:key: its `z6Mk…` part (FEP-521a)."""
    return did.removeprefix("did:key:")


def person(
    urls: ActorUrls,
    *,
    handle: str,
    name: str,
    summary: str,
    did: str,
    public_key_pem: str,
    icon: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The artist as an ActivityPub `Person`, with the RSA key for HTTP signatures and the
    artist's Ed25519 key as a FEP-521a Multikey whose `publicKeyMultibase` is the did's."""
    document: dict[str, Any] = {
        "@context": ACTOR_CONTEXT,
        "id": urls.actor,
        "type": "Person",
        "preferredUsername": handle,
        "name": name or handle,
        "summary": summary,
        "url": urls.artist_page,
        "inbox": urls.inbox,
        "outbox": urls.outbox,
        "followers": urls.followers,
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "manuallyApprovesFollowers": False,
        "discoverable": True,
        "publicKey": {"id": urls.main_key, "owner": urls.actor, "publicKeyPem": public_key_pem},
        "assertionMethod": [
            {
                "id": urls.ed25519_key,
                "type": "Multikey",
                "controller": urls.actor,
                "publicKeyMultibase": multikey_of_did(did),
            }
        ],
        "alsoKnownAs": [did],
        "attachment": [{"type": "PropertyValue", "name": "Stave identity", "value": did}],
    }
    if icon is not None:
        document["icon"] = icon
    return document


def parse_resource(resource: str | None, urls: ActorUrls, handle: str) -> str:
    """Which actor a WebFinger `resource` names: the actor id when it is ours.

    UsageError (400) when it is missing or malformed; LookupError (404) when it is well
    formed but names someone else. The `acct:` handle and host compare case-insensitively.
    """
    if resource is None or not resource.strip():
        raise UsageError("resource: missing; give acct:HANDLE@HOST or the actor's URL")
    resource = resource.strip()
    if len(resource) > MAX_RESOURCE:
        raise UsageError(f"resource: longer than {MAX_RESOURCE} characters")
    if resource.lower().startswith("acct:"):
        user, at, host = unquote(resource[len("acct:") :]).lstrip("@").rpartition("@")
        if not at or not user or not host or any(c in user + host for c in " /?#"):
            raise UsageError(f"resource {resource}: not of the form acct:HANDLE@HOST")
        if user.lower() == handle.lower() and host.lower() == urls.host:
            return urls.actor
        raise LookupError(f"resource {resource}: no such account here")
    parts = urlsplit(resource)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"resource {resource}: neither an acct: nor an http(s) URL")
    if resource.rstrip("/") in (urls.actor, urls.artist_page.rstrip("/")):
        return urls.actor
    raise LookupError(f"resource {resource}: no such actor here")


def webfinger(subject: str, urls: ActorUrls, handle: str) -> dict[str, Any]:
    """The JRD for the actor (RFC 7033 §4.4), its `subject` the resource as asked for in
    `acct:` form, the actor's URL and page as `aliases`."""
    return {
        "subject": subject,
        "aliases": [urls.actor, urls.artist_page],
        "links": [
            {"rel": "self", "type": AP_MEDIA_TYPE, "href": urls.actor},
            {"rel": PROFILE_PAGE_REL, "type": "text/html", "href": urls.artist_page},
        ],
    }


def subject_of(handle: str, urls: ActorUrls) -> str:
    return "acct:" + acct(handle, urls)


def nodeinfo_links(urls: ActorUrls) -> dict[str, Any]:
    """`/.well-known/nodeinfo`: where the NodeInfo 2.1 document is."""
    return {"links": [{"rel": NODEINFO_SCHEMA, "href": urls.base + "nodeinfo/2.1"}]}


def nodeinfo(*, version: str, name: str, local_posts: int) -> dict[str, Any]:
    """The NodeInfo 2.1 document: one artist, its posts, ActivityPub, no sign-ups."""
    return {
        "version": "2.1",
        "software": {"name": "stave", "version": version},
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": ["rss2.0"]},
        "openRegistrations": False,
        "usage": {
            "users": {"total": 1, "activeMonth": 1, "activeHalfyear": 1},
            "localPosts": local_posts,
        },
        "metadata": {"nodeName": name},
    }


def wants_activitypub(accept: str) -> bool:
    """Whether an `Accept` header asks for ActivityPub JSON rather than a page: it names
    `application/activity+json`, or `application/ld+json` with the ActivityStreams profile
    (or none), with a quality above 0 (ActivityPub §3.2)."""
    for entry in accept.split(","):
        media, _, params = entry.strip().partition(";")
        media = media.strip().lower()
        options = {
            key.strip().lower(): value.strip().strip('"')
            for key, _, value in (p.partition("=") for p in params.split(";"))
            if key.strip()
        }
        if options.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if media == AP_MEDIA_TYPE:
            return True
        if media == LD_MEDIA_TYPE and options.get("profile", AS_PROFILE) == AS_PROFILE:
            return True
    return False

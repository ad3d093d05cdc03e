"""The post of a track: a `Note` made from its signed manifest, as Mastodon and others show it
in full (an `Audio` object alone is reduced to a link), and the activities that announce it.
A release is posted once, as one `Note` of the same shape: its title, kind, date and track list,
the first four tracks' `Audio` (all that Mastodon shows) and a link to the release page.

The Note's `content` is HTML with the title, the terms in words and a link to the track page;
its `attachment` holds the playable `Audio` (an http(s) URL on this node: servers drop
`ipfs://`), the track's CID and terms as `PropertyValue`s and a `Link` to the signed manifest.
It carries an `eddsa-jcs-2022` proof by the artist's key (FEP-8b32), whose verification method
is the actor's Multikey (FEP-521a), so any server can check the object was the artist's.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from node.cid import base58_decode, base58_encode
from node.errors import VerificationError
from node.fediverse.documents import AS_CONTEXT, DATA_INTEGRITY_CONTEXT, PUBLIC, ActorUrls
from node.identity import Identity, verify_signature
from node.signing import CRYPTOSUITE, PROOF_PURPOSE, PROOF_TYPE, hash_data, now_timestamp
from node.terms import Terms

NOTE_CONTEXT: list[Any] = [
    AS_CONTEXT,
    DATA_INTEGRITY_CONTEXT,
    {"schema": "http://schema.org#", "PropertyValue": "schema:PropertyValue",
     "value": "schema:value"},
]  # fmt: skip
NOT_FOR_AI_TRAINING = "Not for AI training."
# Mastodon shows at most four media attachments of a post (Status::MEDIA_ATTACHMENTS_LIMIT).
MAX_AUDIO_ATTACHMENTS = 4
MAX_DESCRIPTION = 500  # characters of a release's description in its post; the page has it all
RELEASE_KIND_WORDS = {
    "album": "Album",
    "ep": "EP",
    "single": "Single",
    "compilation": "Compilation",
}


def content_html(manifest: Mapping[str, Any], terms: Terms, track_url: str) -> str:
    """The Note's `content`: every text from the manifest escaped, links only to this node."""
    title = html.escape(str(manifest["title"]))
    href = html.escape(track_url, quote=True)
    paragraphs = [f'<p><a href="{href}">{title}</a></p>', f"<p>{html.escape(terms.in_words())}</p>"]
    if terms.ai_training == "notAllowed":
        paragraphs.append(f"<p><strong>{NOT_FOR_AI_TRAINING}</strong></p>")
    paragraphs.append(f'<p><a href="{href}">Listen, and read the terms</a></p>')
    return "".join(paragraphs)


def _audio(
    manifest: Mapping[str, Any], urls: ActorUrls, cover: Any | None = None
) -> dict[str, Any]:
    audio: dict[str, Any] = {
        "type": "Audio",
        "mediaType": str(manifest["audio"]["mediaType"]),
        "url": urls.content(str(manifest["audio"]["cid"])),
        "name": str(manifest["title"]),
    }
    cover = cover or manifest.get("cover")
    if isinstance(cover, Mapping):
        audio["icon"] = {
            "type": "Image",
            "mediaType": str(cover["mediaType"]),
            "url": urls.content(str(cover["cid"])),
        }
    return audio


def _property(name: str, value: str) -> dict[str, Any]:
    return {"type": "PropertyValue", "name": name, "value": value}


def note_of(
    manifest: Mapping[str, Any], urls: ActorUrls, *, updated: str | None = None
) -> dict[str, Any]:
    """The unsigned Note of the track `manifest` (a later revision gives `updated`)."""
    track_id = str(manifest["id"])
    terms = Terms.from_json(manifest["terms"])
    track_url = urls.track_page(track_id)
    attachment = [
        _audio(manifest, urls),
        _property("Content ID", str(manifest["audio"]["cid"])),
        _property("License", terms.license_url or terms.license),
        _property("AI training", terms.ai_training),
        _property("Terms", terms.in_words()),
        {
            "type": "Link",
            "rel": "describedby",
            "mediaType": "application/json",
            "name": "Signed manifest",
            "href": urls.manifest(track_id),
        },
    ]
    note: dict[str, Any] = {
        "@context": NOTE_CONTEXT,
        "id": urls.post(track_id),
        "type": "Note",
        "attributedTo": urls.actor,
        "to": [PUBLIC],
        "cc": [urls.followers],
        "published": str(manifest["published"]),
        "url": track_url,
        "mediaType": "text/html",
        "content": content_html(manifest, terms, track_url),
        "attachment": attachment,
        "sensitive": False,
    }
    if updated is not None:
        note["updated"] = updated
    return note


def _proof_config(document: Mapping[str, Any], key_id: str, created: str) -> dict[str, Any]:
    # eddsa-jcs-2022 §3.3.5: the proof configuration takes the document's @context.
    config: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": key_id,
        "proofPurpose": PROOF_PURPOSE,
        "created": created,
    }
    if "@context" in document:
        config["@context"] = document["@context"]
    return config


def sign_object(
    document: Mapping[str, Any], identity: Identity, key_id: str, created: str | None = None
) -> dict[str, Any]:
    """A copy of `document` with an eddsa-jcs-2022 proof by `identity` under `key_id` (the
    actor's Multikey id), as FEP-8b32 and Fedify make and check it."""
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    config = _proof_config(unsecured, key_id, created or now_timestamp())
    signature = identity.sign(hash_data(config, unsecured))
    proof = {k: v for k, v in config.items() if k != "@context"}
    proof["proofValue"] = "z" + base58_encode(signature)
    return {**unsecured, "proof": proof}


def verify_object(document: Mapping[str, Any], did: str, key_id: str) -> None:
    """Return if `document` carries a valid proof by `did` under `key_id`; else raise why."""
    proof = document.get("proof")
    if not isinstance(proof, Mapping):
        raise VerificationError("object has no proof")
    if proof.get("verificationMethod") != key_id:
        raise VerificationError(f"proof is by {proof.get('verificationMethod')}, not {key_id}")
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise VerificationError("proof is not an eddsa-jcs-2022 DataIntegrityProof")
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z") or len(value) > 89:
        raise VerificationError("proofValue is not a base58btc signature")
    try:
        signature = base58_decode(value[1:])
    except ValueError as e:
        raise VerificationError(f"proofValue is not base58btc ({e})") from e
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    config = _proof_config(unsecured, key_id, str(proof.get("created")))
    verify_signature(did, signature, hash_data(config, unsecured))


def signed_note(
    manifest: Mapping[str, Any], urls: ActorUrls, identity: Identity, *, updated: str | None
) -> dict[str, Any]:
    """The Note of `manifest` as served: built, then signed by the artist."""
    return sign_object(note_of(manifest, urls, updated=updated), identity, urls.ed25519_key)


def tombstone(object_id: str, deleted: str) -> dict[str, Any]:
    """What a withdrawn track's post becomes."""
    return {
        "@context": AS_CONTEXT,
        "id": object_id,
        "type": "Tombstone",
        "formerType": "Note",
        "deleted": deleted,
    }


def activity_id(urls: ActorUrls, kind: str, object_id: str, revision: int) -> str:
    """The id of the `kind` activity of a post: a UUID derived from the post's id (and, for an
    `Update`, the revision), so announcing the same change twice queues it once (the queue
    ignores a known id) and the outbox lists each post's `Create` under the id it was sent."""
    what = f"{kind.lower()}-{revision}" if kind == "Update" else kind.lower()
    name = uuid.uuid5(uuid.NAMESPACE_URL, f"{object_id}#{what}")
    return urls.activity(str(name))


def activity(
    kind: str, urls: ActorUrls, obj: Mapping[str, Any], revision: int, published: str
) -> dict[str, Any]:
    """A `Create`, `Update` or `Delete` by the actor of `obj`, addressed as posts are."""
    return {
        "@context": NOTE_CONTEXT,
        "id": activity_id(urls, kind, str(obj["id"]), revision),
        "type": kind,
        "actor": urls.actor,
        "published": published,
        "to": [PUBLIC],
        "cc": [urls.followers],
        "object": dict(obj),
    }


# --- releases -----------------------------------------------------------------------------------


def release_page(urls: ActorUrls, release_id: str) -> str:
    """The release's page: `{base}releases/{uuid}` for the release `urn:uuid:{uuid}`."""
    return urls.base + "releases/" + release_id.removeprefix("urn:uuid:")


def _release_summary(release: Mapping[str, Any], count: int) -> str:
    kind = str(release["kind"])
    words = RELEASE_KIND_WORDS.get(kind, kind.capitalize())
    tracks = "1 track" if count == 1 else f"{count} tracks"
    return f"{words}, released {release['released']}, {tracks}."


def release_content_html(
    release: Mapping[str, Any], titles: list[str], terms: Terms, release_url: str
) -> str:
    """The release Note's `content`: title, kind, date, every track's title in play order, the
    description (shortened), the terms in words; every text escaped, links only to this node."""
    href = html.escape(release_url, quote=True)
    title = html.escape(str(release["title"]))
    paragraphs = [
        f'<p><a href="{href}">{title}</a></p>',
        f"<p>{html.escape(_release_summary(release, len(titles)))}</p>",
        "<ol>" + "".join(f"<li>{html.escape(t)}</li>" for t in titles) + "</ol>",
    ]
    description = str(release.get("description") or "").strip()
    if description:
        if len(description) > MAX_DESCRIPTION:
            description = description[: MAX_DESCRIPTION - 1].rstrip() + "…"
        paragraphs.append(f"<p>{html.escape(description)}</p>")
    paragraphs.append(f"<p>{html.escape(terms.in_words())}</p>")
    if terms.ai_training == "notAllowed":
        paragraphs.append(f"<p><strong>{NOT_FOR_AI_TRAINING}</strong></p>")
    paragraphs.append(
        f'<p><a href="{href}">Listen to the whole release, and read the terms</a></p>'
    )
    return "".join(paragraphs)


def release_note_of(
    release: Mapping[str, Any],
    manifests: Sequence[Mapping[str, Any]],
    terms: Terms,
    urls: ActorUrls,
    *,
    updated: str | None = None,
) -> dict[str, Any]:
    """The unsigned Note of the signed `release` document, from its tracks' `manifests` in
    play order and the `terms` it is under (its own, else the feed's)."""
    release_id = str(release["id"])
    release_url = release_page(urls, release_id)
    cover = release.get("cover")
    attachment = [_audio(m, urls, cover) for m in manifests[:MAX_AUDIO_ATTACHMENTS]]
    attachment += [
        _property("Release ID", release_id),
        _property("Released", str(release["released"])),
        _property("License", terms.license_url or terms.license),
        _property("AI training", terms.ai_training),
        _property("Terms", terms.in_words()),
        {
            "type": "Link",
            "rel": "alternate",
            "mediaType": "application/rss+xml",
            "name": "The release as a podcast feed",
            "href": release_url + "/feed.rss",
        },
    ]
    note: dict[str, Any] = {
        "@context": NOTE_CONTEXT,
        "id": urls.post(release_id),
        "type": "Note",
        "attributedTo": urls.actor,
        "to": [PUBLIC],
        "cc": [urls.followers],
        "published": str(release["published"]),
        "url": release_url,
        "mediaType": "text/html",
        "content": release_content_html(
            release, [str(m["title"]) for m in manifests], terms, release_url
        ),
        "attachment": attachment,
        "sensitive": False,
    }
    if updated is not None:
        note["updated"] = updated
    return note


def signed_release_note(
    release: Mapping[str, Any],
    manifests: Sequence[Mapping[str, Any]],
    terms: Terms,
    urls: ActorUrls,
    identity: Identity,
    *,
    updated: str | None,
) -> dict[str, Any]:
    """The Note of `release` as served: built, then signed by the artist."""
    note = release_note_of(release, manifests, terms, urls, updated=updated)
    return sign_object(note, identity, urls.ed25519_key)

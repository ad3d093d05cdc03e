"""The signed feed, and each release, as RSS 2.0 for podcast apps and feed readers.

Uses the Podcasting 2.0 namespace (https://podcastindex.org/namespace/1.0: `podcast:guid`,
`podcast:license`, `podcast:medium` `music`, `podcast:funding` and `podcast:value` for the
artist's support link and Lightning Address (node/support.py), and for a release
`podcast:episode` numbers in track order, so that music-aware apps show it as an album), the
iTunes tags podcast apps expect, and Atom links for WebSub discovery (`rel="self"`,
`rel="hub"`). Built with ElementTree, so every value is escaped.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from node import __version__
from node.support import Support
from node.terms import ALL_RIGHTS_RESERVED, Terms

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/rss+xml; charset=utf-8"

# podcast:guid is the UUIDv5 of the feed URL, without its scheme and trailing slashes, in this
# namespace (https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/tags/guid.md).
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")

for _prefix, _uri in (("itunes", ITUNES), ("podcast", PODCAST), ("atom", ATOM)):
    ET.register_namespace(_prefix, _uri)


def podcast_guid(feed_url: str) -> str:
    """The Podcasting 2.0 GUID of a feed at `feed_url`."""
    bare = feed_url.split("://", 1)[-1].rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


def rfc822(timestamp: str) -> str:
    """An RFC 3339 timestamp as RSS's RFC 822 date (`Thu, 26 Nov 2026 16:00:00 GMT`)."""
    return format_datetime(datetime.fromisoformat(timestamp.replace("Z", "+00:00")), usegmt=True)


def track_url(base_url: str, track_id: str) -> str:
    """The page of one track: `/tracks/{uuid}`."""
    return base_url + "tracks/" + track_id.removeprefix("urn:uuid:")


def release_url(base_url: str, release_id: str) -> str:
    """The page of one release: `/releases/{uuid}`."""
    return base_url + "releases/" + release_id.removeprefix("urn:uuid:")


def release_rss_url(base_url: str, release_id: str) -> str:
    """The RSS feed of one release: `/releases/{uuid}/feed.rss`."""
    return release_url(base_url, release_id) + "/feed.rss"


def content_url(base_url: str, cid: str) -> str:
    return base_url + "ipfs/" + cid


def render_rss(feed: dict[str, Any], base_url: str) -> bytes:
    """The RSS 2.0 document of a signed feed document, UTF-8 encoded."""
    rss_url = base_url + "feed.rss"
    name = str(feed.get("name") or "Untitled")
    terms = Terms.from_json(feed["terms"])
    tracks: list[dict[str, Any]] = list(feed.get("tracks", []))
    cover = next((t["cover"]["cid"] for t in tracks if t.get("cover")), None)
    cover_url = content_url(base_url, cover) if cover else None

    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", name)
    _text(channel, "link", base_url)
    _text(channel, "description", f"Music by {name}, published with Stave. {terms.in_words()}")
    _text(channel, "generator", f"Stave {__version__}")
    _text(channel, "lastBuildDate", rfc822(feed["updated"]))
    _text(channel, "pubDate", rfc822(tracks[0]["published"] if tracks else feed["updated"]))
    if terms.copyright:
        _text(channel, "copyright", f"© {terms.copyright}")
    ET.SubElement(
        channel, f"{{{ATOM}}}link", {"href": rss_url, "rel": "self", "type": CONTENT_TYPE}
    )
    ET.SubElement(channel, f"{{{ATOM}}}link", {"href": base_url + "websub", "rel": "hub"})
    if cover_url:
        image = ET.SubElement(channel, "image")
        _text(image, "url", cover_url)
        _text(image, "title", name)
        _text(image, "link", base_url)
        ET.SubElement(channel, f"{{{ITUNES}}}image", {"href": cover_url})
    _text(channel, f"{{{ITUNES}}}author", name)
    _text(channel, f"{{{ITUNES}}}summary", terms.in_words())
    _text(channel, f"{{{ITUNES}}}explicit", "false")
    _text(channel, f"{{{ITUNES}}}type", "episodic")
    ET.SubElement(channel, f"{{{ITUNES}}}category", {"text": "Music"})
    _text(channel, f"{{{PODCAST}}}guid", podcast_guid(rss_url))
    _text(channel, f"{{{PODCAST}}}medium", "music")
    _license(channel, terms, base_url)
    _support(channel, Support.from_json(feed.get("support")), name)

    for manifest in tracks:
        _item(channel, manifest, name, base_url, cover_url)

    ET.indent(rss, space="  ")
    return bytes(ET.tostring(rss, encoding="utf-8", xml_declaration=True)) + b"\n"


def _item(
    channel: ET.Element,
    manifest: dict[str, Any],
    name: str,
    base_url: str,
    channel_cover: str | None,
) -> ET.Element:
    terms = Terms.from_json(manifest["terms"])
    audio = manifest["audio"]
    item = ET.SubElement(channel, "item")
    title = str(manifest["title"])
    _text(item, "title", title)
    _text(item, "link", track_url(base_url, manifest["id"]))
    _text(item, "guid", manifest["id"]).set("isPermaLink", "false")
    _text(item, "pubDate", rfc822(manifest["published"]))
    by = str(manifest.get("creator") or name)
    album = f" from {manifest['album']}" if manifest.get("album") else ""
    _text(item, "description", f"{title} by {by}{album}. {terms.in_words()}")
    ET.SubElement(
        item,
        "enclosure",
        {
            "url": content_url(base_url, audio["cid"]),
            "length": str(audio["size"]),
            "type": str(audio["mediaType"]),
        },
    )
    renditions = manifest.get("renditions") or []
    if renditions:
        _alternate(item, audio, base_url, default=True)
        for rendition in renditions:
            _alternate(item, rendition, base_url)
    _text(item, f"{{{ITUNES}}}title", title)
    _text(item, f"{{{ITUNES}}}author", by)
    duration = manifest.get("durationSeconds")
    if isinstance(duration, int | float):
        _text(item, f"{{{ITUNES}}}duration", str(round(duration)))
    _text(item, f"{{{ITUNES}}}explicit", "false")
    cover = manifest.get("cover")
    image = content_url(base_url, cover["cid"]) if cover else channel_cover
    if image:
        ET.SubElement(item, f"{{{ITUNES}}}image", {"href": image})
    _license(item, terms, base_url)
    return item


def render_release_rss(
    release: Mapping[str, Any],
    manifests: Mapping[str, dict[str, Any]],
    name: str,
    feed_terms: Terms,
    base_url: str,
) -> bytes:
    """The RSS 2.0 document of one signed release, for music-aware podcast apps: an album.

    `manifests` are the current signed manifests by track id; the items are the release's
    tracks in its play order (disc by disc, by track number: the node numbers them so),
    numbered by `podcast:episode` (and `podcast:season` for the disc when there are several),
    skipping any track not in `manifests`.
    """
    page_url = release_url(base_url, release["id"])
    rss_url = release_rss_url(base_url, release["id"])
    title = str(release["title"])
    terms = Terms.from_json(release["terms"]) if "terms" in release else feed_terms
    cover = release.get("cover")
    cover_url = content_url(base_url, cover["cid"]) if cover else None
    entries: list[Mapping[str, Any]] = release["tracks"]  # in play order, as signed
    discs = len({entry["disc"] for entry in entries})
    kind = str(release["kind"])
    summary = str(release.get("description") or f"{kind.capitalize()} by {name}.")

    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", title)
    _text(channel, "link", page_url)
    _text(channel, "description", f"{summary} {terms.in_words()}")
    _text(channel, "generator", f"Stave {__version__}")
    _text(channel, "lastBuildDate", rfc822(release["published"]))
    _text(channel, "pubDate", rfc822(release["published"]))
    if terms.copyright:
        _text(channel, "copyright", f"© {terms.copyright}")
    ET.SubElement(
        channel, f"{{{ATOM}}}link", {"href": rss_url, "rel": "self", "type": CONTENT_TYPE}
    )
    if cover_url:
        image = ET.SubElement(channel, "image")
        _text(image, "url", cover_url)
        _text(image, "title", title)
        _text(image, "link", page_url)
        ET.SubElement(channel, f"{{{ITUNES}}}image", {"href": cover_url})
    _text(channel, f"{{{ITUNES}}}author", name)
    _text(channel, f"{{{ITUNES}}}summary", summary)
    _text(channel, f"{{{ITUNES}}}explicit", "false")
    _text(channel, f"{{{ITUNES}}}type", "serial")
    ET.SubElement(channel, f"{{{ITUNES}}}category", {"text": "Music"})
    _text(channel, f"{{{PODCAST}}}guid", podcast_guid(rss_url))
    _text(channel, f"{{{PODCAST}}}medium", "music")
    _license(channel, terms, base_url)

    for episode, entry in enumerate((e for e in entries if e["id"] in manifests), start=1):
        item = _item(channel, manifests[entry["id"]], name, base_url, cover_url)
        _text(item, f"{{{ITUNES}}}episode", str(episode))
        _text(item, f"{{{ITUNES}}}episodeType", "full")
        _text(item, f"{{{PODCAST}}}episode", str(episode))
        if discs > 1:
            _text(item, f"{{{ITUNES}}}season", str(entry["disc"]))
            _text(item, f"{{{PODCAST}}}season", str(entry["disc"]))

    ET.indent(rss, space="  ")
    return bytes(ET.tostring(rss, encoding="utf-8", xml_declaration=True)) + b"\n"


def _alternate(
    item: ET.Element, ref: dict[str, Any], base_url: str, *, default: bool = False
) -> None:
    """`podcast:alternateEnclosure`: the original (`default`, the same file as the enclosure)
    or a listening rendition, with its sources over HTTP and IPFS and its `podcast:integrity`
    (Subresource Integrity) when the manifest gives the file's hash."""
    media_type, _, parameters = str(ref["mediaType"]).partition(";")
    attributes = {"type": media_type.strip(), "length": str(ref["size"])}
    codecs = parameters.strip().removeprefix("codecs=").strip('"') if parameters else ""
    if codecs:
        attributes["codecs"] = codecs
    if isinstance(ref.get("bitrate"), int | float):
        attributes["bitrate"] = str(ref["bitrate"])
        attributes["title"] = f"{codecs.capitalize() or media_type} {ref['bitrate'] // 1000} kb/s"
    if default:
        attributes.update(default="true", title="Original")
    element = ET.SubElement(item, f"{{{PODCAST}}}alternateEnclosure", attributes)
    ET.SubElement(element, f"{{{PODCAST}}}source", {"uri": content_url(base_url, ref["cid"])})
    ET.SubElement(element, f"{{{PODCAST}}}source", {"uri": "ipfs://" + ref["cid"]})
    if isinstance(ref.get("integrity"), str):
        ET.SubElement(
            element, f"{{{PODCAST}}}integrity", {"type": "sri", "value": ref["integrity"]}
        )


def _license(parent: ET.Element, terms: Terms, base_url: str) -> None:
    """`podcast:license`: the lower-cased SPDX id, or a named custom licence with its URL."""
    if terms.license == ALL_RIGHTS_RESERVED:
        value, url = "all-rights-reserved", base_url + "terms"
    elif terms.license.startswith(("http://", "https://")):
        value, url = "custom", terms.license
    else:
        value, url = terms.license.lower(), terms.license_url
    element = _text(parent, f"{{{PODCAST}}}license", value)
    if url:
        element.set("url", url)


def _support(channel: ET.Element, support: Support | None, name: str) -> None:
    """`podcast:funding` for the support link (its label the text), and `podcast:value` with the
    Lightning Address as its one `podcast:valueRecipient`, taking the whole split."""
    if support is None:
        return
    if support.url:
        _text(channel, f"{{{PODCAST}}}funding", support.label).set("url", support.url)
    if support.lightning:
        value = ET.SubElement(
            channel, f"{{{PODCAST}}}value", {"type": "lightning", "method": "lnaddress"}
        )
        recipient = {"name": name, "type": "lnaddress", "address": support.lightning}
        ET.SubElement(value, f"{{{PODCAST}}}valueRecipient", {**recipient, "split": "100"})


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element

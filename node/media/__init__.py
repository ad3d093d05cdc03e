"""Audio files: what they are, and the artist's terms inside their tags (PROTOCOL §10).

`probe` decides a file's format from its bytes, never its name, and refuses with
`UnsupportedMedia` anything Stave would not publish: empty, foreign, truncated or corrupt files.
`write_terms` writes the terms into the tags of a file in place (the caller hands it a copy);
`read_terms` reads them back. Files are read a header at a time, never whole.

Modules: `formats` (formats and media types), `probe` (sniffing and `MediaInfo`), `names`
(title, artist, cover), `integrity` (whole-file checks per format), `terms` (`EmbeddedTerms`),
`tags` (terms in tags), `xmp` (the XMP packet).
"""

from node.media.formats import SUPPORTED_FORMATS, AudioFormat, media_type_for
from node.media.names import Cover, cover_media_type
from node.media.probe import MediaInfo, probe
from node.media.tags import read_terms, write_terms
from node.media.terms import AI_TRAINING_VALUES, TERMS_FIELDS, EmbeddedTerms
from node.media.xmp import xmp_packet

__all__ = [
    "AI_TRAINING_VALUES",
    "SUPPORTED_FORMATS",
    "TERMS_FIELDS",
    "AudioFormat",
    "Cover",
    "EmbeddedTerms",
    "MediaInfo",
    "cover_media_type",
    "media_type_for",
    "probe",
    "read_terms",
    "write_terms",
    "xmp_packet",
]

"""The XMP packet Stave puts in ID3 tags: rights, licence, TDMRep and PLUS data mining."""

from __future__ import annotations

import re
from typing import Final
from xml.sax.saxutils import escape

from node.media.terms import EmbeddedTerms

_PLUS_VOCAB: Final = "http://ns.useplus.org/ldf/vocab/"


def xmp_packet(terms: EmbeddedTerms) -> bytes:
    """The XMP packet Stave puts in an ID3 `PRIV` frame: rights, licence, TDMRep reservation and
    the PLUS data-mining value (http://ns.useplus.org/ldf/xmp/1.0/DataMining)."""
    # PLUS LDF vocabulary: training is either explicitly allowed or prohibited; a constrained
    # permission still needs the artist's consent, so it is signalled as prohibited.
    data_mining = "DMI-ALLOWED" if terms.ai_training == "allowed" else "DMI-PROHIBITED-AIMLTRAINING"
    lines = [
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
        '  <rdf:Description rdf:about=""',
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"',
        '    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"',
        '    xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"',
        '    xmlns:tdm="http://www.w3.org/ns/tdmrep/">',
    ]
    if terms.copyright:
        lines.append(f"   <dc:rights>{_xmp_alt(terms.copyright)}</dc:rights>")
    lines.append("   <xmpRights:Marked>True</xmpRights:Marked>")
    if terms.link:
        web_statement = _xml_text(terms.link)
        lines.append(f"   <xmpRights:WebStatement>{web_statement}</xmpRights:WebStatement>")
    if terms.terms_in_words:
        usage = _xmp_alt(terms.terms_in_words)
        lines.append(f"   <xmpRights:UsageTerms>{usage}</xmpRights:UsageTerms>")
    lines += [
        f"   <plus:DataMining>{_PLUS_VOCAB}{data_mining}</plus:DataMining>",
        f"   <tdm:reservation>{terms.tdm_reservation}</tdm:reservation>",
        "  </rdf:Description>",
        " </rdf:RDF>",
        "</x:xmpmeta>",
        '<?xpacket end="r"?>',
    ]
    return "\n".join(lines).encode("utf-8")


def _xmp_alt(text: str) -> str:
    return f'<rdf:Alt><rdf:li xml:lang="x-default">{_xml_text(text)}</rdf:li></rdf:Alt>'


def _xml_text(text: str) -> str:
    """Text escaped for XML, without the control characters XML 1.0 cannot carry."""
    return escape(_NOT_XML.sub("", text))


_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

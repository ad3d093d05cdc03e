"""Content identifiers: CIDs, dag-pb nodes, and the UnixFS importer of PROTOCOL.md §3.

Every piece of content has the CID Kubo's `unixfs-v1-2025` import profile gives its bytes
(`unixfs.py`). The package's modules, bottom up: `multibase.py` (base32, base58btc), `core.py`
(varints, the `CID` type and the multicodec codes), `dagpb.py` (dag-pb nodes), `unixfs.py`
(the streaming importer, its profiles, `import_path`, `cid_of_bytes`). Its public names are
all importable from `node.cid`.
"""

from node.cid.core import (
    CID,
    CODECS,
    DAG_PB,
    HASHES,
    IDENTITY,
    MAX_CID_TEXT,
    MAX_IDENTITY_DIGEST,
    RAW,
    SHA2_256,
    read_varint,
    varint,
)
from node.cid.dagpb import PBLink, PBNode, decode_dag_pb, encode_dag_pb
from node.cid.multibase import base32_decode, base32_encode, base58_decode, base58_encode
from node.cid.unixfs import (
    CHUNK_SIZE,
    MAX_LINKS,
    V0_2015,
    V1_2025,
    DagNode,
    ImportProfile,
    ImportResult,
    Leaf,
    UnixFSImporter,
    cid_of_bytes,
    import_path,
    unixfs_file_data,
)

__all__ = [
    "CHUNK_SIZE",
    "CID",
    "CODECS",
    "DAG_PB",
    "HASHES",
    "IDENTITY",
    "MAX_CID_TEXT",
    "MAX_IDENTITY_DIGEST",
    "MAX_LINKS",
    "RAW",
    "SHA2_256",
    "V0_2015",
    "V1_2025",
    "DagNode",
    "ImportProfile",
    "ImportResult",
    "Leaf",
    "PBLink",
    "PBNode",
    "UnixFSImporter",
    "base32_decode",
    "base32_encode",
    "base58_decode",
    "base58_encode",
    "cid_of_bytes",
    "decode_dag_pb",
    "encode_dag_pb",
    "import_path",
    "read_varint",
    "unixfs_file_data",
    "varint",
]

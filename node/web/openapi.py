"""The OpenAPI 3.1 document of the admin API, served at /api/openapi.json.

A test walks the app's router and checks every /api route is described here, and nothing else.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from node import __version__
from node.settings import DATA_MINING_VALUES

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_UNAUTHORIZED = {
    "description": "No admin token, or a wrong one.",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    "content": {_JSON: {"schema": _ref("Error")}},
}

_TRACK_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The track's id: `urn:uuid:…` (URL-encoded) or the bare UUID.",
    "schema": {"type": "string"},
}

_TERMS_FIELDS: dict[str, Any] = {
    "license": {
        "type": "string",
        "description": "SPDX licence id, `ARR` (all rights reserved), or an http(s) URL.",
        "examples": ["CC-BY-NC-ND-4.0"],
    },
    "copyright": {
        "type": "string",
        "description": "Copyright line: a year, a space and the holder.",
        "examples": ["2026 Ada Example"],
    },
    "aiTraining": {
        "type": "string",
        "enum": list(DATA_MINING_VALUES),
        "description": "Whether the track may be used to train AI; the default is notAllowed.",
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "A stable, machine-readable code."},
                    "message": {"type": "string", "description": "One line naming the reason."},
                },
            }
        },
    },
    "Manifest": {
        "type": "object",
        "description": "A signed StaveTrack manifest (PROTOCOL §5).",
        "required": ["type", "id", "revision", "artist", "title", "published", "audio", "terms"],
        "properties": {
            "type": {"const": "StaveTrack"},
            "id": {"type": "string"},
            "revision": {"type": "integer", "minimum": 1},
            "artist": {"type": "string", "description": "The artist's did:key."},
            "title": {"type": "string"},
            "published": {"type": "string", "format": "date-time"},
            "durationSeconds": {"type": "number"},
            "audio": _ref("ContentRef"),
            "cover": _ref("ContentRef"),
            "terms": {"type": "object", "description": "The track's terms (PROTOCOL §4)."},
            "proof": {"type": "object", "description": "An eddsa-jcs-2022 Data Integrity proof."},
        },
    },
    "ContentRef": {
        "type": "object",
        "required": ["cid", "mediaType", "size"],
        "properties": {
            "cid": {"type": "string"},
            "mediaType": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
        },
    },
    "Track": {
        "type": "object",
        "required": ["id", "title", "revision", "published", "withdrawn", "manifest"],
        "properties": {
            "id": {"type": "string", "examples": ["urn:uuid:0b6e4d1e-6a52-4f0e-9d4b-3f1c2a7e8d90"]},
            "title": {"type": "string"},
            "revision": {"type": "integer", "minimum": 1},
            "published": {"type": "string", "format": "date-time"},
            "withdrawn": {"type": "boolean"},
            "withdrawnAt": {"type": ["string", "null"], "format": "date-time"},
            "page": {"type": "string", "format": "uri", "description": "The track's public page."},
            "manifest": _ref("Manifest"),
        },
    },
    "TrackList": {
        "type": "object",
        "required": ["tracks"],
        "properties": {"tracks": {"type": "array", "items": _ref("Track")}},
    },
    "TrackEdit": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {"title": {"type": "string", "minLength": 1}, **_TERMS_FIELDS},
    },
    "Upload": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "array",
                "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                "description": "One or more audio files (MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF).",
            },
            "title": {"type": "string", "description": "The title; with one file only."},
            **_TERMS_FIELDS,
        },
    },
    "Status": {
        "type": "object",
        "required": ["did", "name", "url", "version", "tracks", "withdrawn", "feed", "store"],
        "properties": {
            "did": {"type": "string"},
            "name": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "version": {"type": "string"},
            "tracks": {"type": "integer", "description": "Published tracks."},
            "withdrawn": {"type": "integer", "description": "Withdrawn tracks."},
            "feed": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["sequence", "cid", "updated", "expires"],
                        "properties": {
                            "sequence": {"type": "integer"},
                            "cid": {"type": "string"},
                            "updated": {"type": "string", "format": "date-time"},
                            "expires": {"type": "string", "format": "date-time"},
                        },
                    },
                ]
            },
            "store": {
                "type": "object",
                "required": ["files", "bytes"],
                "properties": {"files": {"type": "integer"}, "bytes": {"type": "integer"}},
            },
        },
    },
}

_SCHEMAS["Timeline"] = {  # GET /api/timeline, served by node/web/federation.py
    "type": "object",
    "required": ["tracks", "following"],
    "properties": {
        "tracks": {
            "type": "array",
            "description": "Followed artists' current tracks, newest first.",
            "items": {
                "type": "object",
                "required": ["artist", "id", "title", "published", "audio", "mirrored", "manifest"],
                "properties": {
                    "artist": {"type": "string", "description": "The artist's did:key."},
                    "artistName": {"type": "string"},
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "published": {"type": "string", "format": "date-time"},
                    "audio": {
                        "type": "string",
                        "format": "uri",
                        "description": "Here when mirrored here, else at the artist's node.",
                    },
                    "cover": {"type": ["string", "null"], "format": "uri"},
                    "mirrored": {"type": "boolean"},
                    "stale": {"type": "boolean", "description": "The feed is past its expiry."},
                    "manifest": _ref("Manifest"),
                },
            },
        },
        "following": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["did", "name", "url", "sequence", "tracks", "mirror"],
                "properties": {
                    "did": {"type": "string"},
                    "name": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "sequence": {"type": ["integer", "null"]},
                    "tracks": {"type": "integer"},
                    "mirror": {"type": "boolean"},
                    "lastSync": {"type": ["string", "null"], "format": "date-time"},
                    "lastError": {"type": ["string", "null"]},
                },
            },
        },
    },
}

_PATHS: dict[str, Any] = {
    "/api/openapi.json": {
        "get": {
            "operationId": "getOpenAPI",
            "summary": "This document.",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document.", "content": {_JSON: {}}}},
        }
    },
    "/api/status": {
        "get": {
            "operationId": "getStatus",
            "summary": "The node's identity, catalog, latest feed and store usage.",
            "responses": {"200": _json(_ref("Status"), "The node's status."), "401": _UNAUTHORIZED},
        }
    },
    "/api/tracks": {
        "get": {
            "operationId": "listTracks",
            "summary": "Every track, withdrawn ones included, newest first.",
            "responses": {"200": _json(_ref("TrackList"), "The tracks."), "401": _UNAUTHORIZED},
        },
        "post": {
            "operationId": "addTracks",
            "summary": "Publish uploaded audio files, all in one new feed (all or none).",
            "description": "The files are streamed to disk; the upload is capped by "
            "`server.max_upload_bytes`. A file that is not supported audio changes nothing.",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": _ref("Upload"),
                        "encoding": {"file": {"contentType": "audio/*, application/octet-stream"}},
                    }
                },
            },
            "responses": {
                "201": {
                    **_json(_ref("TrackList"), "The published tracks."),
                    "headers": {
                        "Location": {
                            "schema": {"type": "string"},
                            "description": "The first new track.",
                        }
                    },
                },
                "400": _error("A field has a bad value, or the file is not readable audio."),
                "401": _UNAUTHORIZED,
                "413": _error("The upload is larger than server.max_upload_bytes."),
                "415": _error("Not multipart/form-data, or a file is not supported audio."),
            },
        },
    },
    "/api/timeline": {
        "get": {
            "operationId": "getTimeline",
            "summary": "Tracks of the artists this node follows, newest first, and the follows.",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                }
            ],
            "responses": {
                "200": _json(_ref("Timeline"), "The timeline."),
                "400": _error("limit is not a whole number from 1 to 500."),
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/api/tracks/{id}": {
        "parameters": [_TRACK_ID],
        "get": {
            "operationId": "getTrack",
            "summary": "One track.",
            "responses": {
                "200": _json(_ref("Track"), "The track."),
                "401": _UNAUTHORIZED,
                "404": _error("No such track."),
            },
        },
        "patch": {
            "operationId": "editTrack",
            "summary": "Publish the track's next revision with a new title or terms.",
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("TrackEdit")}}},
            "responses": {
                "200": _json(_ref("Track"), "The track at its new revision."),
                "400": _error("A field has a bad value, or nothing to change."),
                "401": _UNAUTHORIZED,
                "404": _error("No such track."),
                "409": _error("The track was withdrawn."),
            },
        },
        "delete": {
            "operationId": "withdrawTrack",
            "summary": "Withdraw the track: it leaves the feed; its content is no longer served.",
            "responses": {
                "200": _json(_ref("Track"), "The withdrawn track."),
                "401": _UNAUTHORIZED,
                "404": _error("No such track."),
                "409": _error("The track was already withdrawn."),
            },
        },
    },
}


@cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stave admin API",
            "version": __version__,
            "description": "Publish, edit and withdraw tracks on a Stave node.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "security": [{"adminToken": []}],
        "paths": _PATHS,
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The node's admin token, printed by `stave admin-token`.",
                }
            },
            "schemas": _SCHEMAS,
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document describing every /api route (a fresh copy)."""
    return copy.deepcopy(_document())


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def documented_operations() -> set[tuple[str, str]]:
    """Every (METHOD, path) pair the document describes."""
    return {
        (method.upper(), path)
        for path, item in _PATHS.items()
        for method in item
        if method in HTTP_METHODS
    }

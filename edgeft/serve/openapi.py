"""The request bodies the routes read by hand (the binary extension needs raw bytes), described
for the OpenAPI document so clients and schema-driven fuzzers know what to send."""

from __future__ import annotations

from typing import Any

from edgeft.serve.protocol import BYTES, DATATYPES

_PARAMETERS = {"type": "object", "additionalProperties": True}

INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": [*DATATYPES, BYTES]},
                    "parameters": _PARAMETERS,
                    "data": {"type": "array"},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
            },
        },
    },
}

PREDICT_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            }
        },
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "texts": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    },
}

FEEDBACK_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["id", "label"],
                "properties": {"id": {"type": "string"}, "label": {"type": "string"}},
            }
        }
    },
}

_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            }
        }
    }
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "a malformed request; `error` names the field"} | _ERROR,
    401: {"description": "missing or wrong bearer token"} | _ERROR,
    404: {"description": "unknown model or version"} | _ERROR,
    413: {"description": "request body over the server's limit"} | _ERROR,
    503: {"description": "not ready, or the queue is full (see Retry-After)"} | _ERROR,
}

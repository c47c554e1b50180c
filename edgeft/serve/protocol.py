"""The Open Inference Protocol (KServe v2) tensors: JSON and the binary-data extension.

tritonclient sends inputs as raw bytes after the JSON header (``Inference-Header-Content-Length``)
and asks for binary outputs by default, so both encodings are spoken in both directions.
Every malformed request becomes a ``ProtocolError`` naming what is wrong (HTTP 400).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeft.bundle import TensorSpec
from edgeft.errors import EdgeftError

HEADER_LENGTH = "inference-header-content-length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


class ProtocolError(EdgeftError):
    """A request the protocol (or this model) cannot accept: the client's mistake."""


def datatype_of(dtype: str | np.dtype) -> str:
    return _NAMES[np.dtype(dtype)]


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": list(spec.shape)}


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    binary_outputs: bool


def parse_infer_request(
    body: bytes, header_length: str | None, specs: Sequence[TensorSpec]
) -> InferRequest:
    """Bytes of a v2 infer request -> named arrays checked against the model's inputs."""
    json_part, binary = _split_body(body, header_length)
    try:
        document = json.loads(json_part)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"request body is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise ProtocolError('request must be a JSON object with an "inputs" list')
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in document["inputs"]:
        name, array, offset = _decode_tensor(tensor, binary, offset)
        if name in arrays:
            raise ProtocolError(f"input {name!r} is given twice")
        arrays[name] = array
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes of binary data belong to no input")
    _check_against_model(arrays, specs)
    parameters = document.get("parameters") or {}
    wanted = document.get("outputs") or []
    binary_outputs = bool(parameters.get("binary_data_output")) or any(
        (o.get("parameters") or {}).get("binary_data") for o in wanted if isinstance(o, dict)
    )
    request_id = document.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, arrays, binary_outputs)


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise ProtocolError("Inference-Header-Content-Length is not an integer") from None
    if not 0 < length <= len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length {length} does not fit a {len(body)}-byte body"
        )
    return body[:length], body[length:]


def _decode_tensor(tensor: Any, binary: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    shape = tensor.get("shape")
    datatype = tensor.get("datatype")
    if not isinstance(name, str):
        raise ProtocolError("an input has no name")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"input {name!r}: shape must be a list of non-negative integers")
    if datatype not in DATATYPES:
        raise ProtocolError(
            f"input {name!r}: datatype {datatype!r} is not supported "
            f"(use one of {', '.join(DATATYPES)})"
        )
    dtype = DATATYPES[datatype]
    count = int(np.prod(shape, dtype=np.int64))
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize:
            raise ProtocolError(
                f"input {name!r}: binary_data_size {size!r} is not {count} x {dtype.itemsize} bytes"
            )
        if offset + size > len(binary):
            raise ProtocolError(f"input {name!r}: binary data is shorter than binary_data_size")
        flat = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
        return name, flat.astype(dtype).reshape(shape), offset + size
    data = tensor.get("data")
    if data is None:
        raise ProtocolError(f"input {name!r} has neither data nor binary_data_size")
    try:
        flat = np.asarray(data, dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"input {name!r}: data is not {datatype} numbers ({exc})") from exc
    if flat.size != count:
        raise ProtocolError(f"input {name!r}: {flat.size} values do not fill shape {shape}")
    return name, flat.reshape(shape), offset


def _check_against_model(arrays: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> None:
    expected = {spec.name: spec for spec in specs}
    unknown = sorted(set(arrays) - set(expected))
    missing = sorted(set(expected) - set(arrays))
    if unknown or missing:
        raise ProtocolError(
            f"inputs must be exactly {sorted(expected)} "
            f"(unknown: {unknown or 'none'}, missing: {missing or 'none'})"
        )
    batch = {array.shape[0] if array.ndim else 0 for array in arrays.values()}
    if len(batch) != 1 or 0 in batch:
        raise ProtocolError("all inputs need the same non-zero batch size (first axis)")
    if len({array.shape for array in arrays.values()}) > 1:
        raise ProtocolError("all inputs need one shape (token ids, mask and types align)")
    for name, array in arrays.items():
        spec = expected[name]
        if np.dtype(spec.dtype) != array.dtype:
            raise ProtocolError(
                f"input {name!r}: datatype {datatype_of(array.dtype)}, the model takes "
                f"{datatype_of(spec.dtype)}"
            )
        fits = len(spec.shape) == array.ndim and all(
            want in (-1, have) for want, have in zip(spec.shape, array.shape, strict=True)
        )
        if not fits or 0 in array.shape:
            raise ProtocolError(
                f"input {name!r}: shape {list(array.shape)} does not fit {list(spec.shape)} "
                "(-1 = any size)"
            )


def _little_endian_bytes(array: np.ndarray) -> bytes:
    """The binary tensor extension's wire format: row-major, little-endian."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_infer_response(
    model_name: str, request_id: str | None, name: str, array: np.ndarray, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers (binary when the client asked for it)."""
    output: dict[str, Any] = {
        "name": name,
        "datatype": datatype_of(array.dtype),
        "shape": list(array.shape),
    }
    document: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": [output]}
    if request_id is not None:
        document["id"] = request_id
    if not binary:
        output["data"] = array.reshape(-1).tolist()
        return json.dumps(document).encode(), {}
    raw = _little_endian_bytes(array)
    output["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps(document).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def encode_infer_request(inputs: Mapping[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """A binary v2 infer request, for clients without tritonclient (load tests, benchmarks)."""
    tensors, raw = [], []
    for name, array in inputs.items():
        data = _little_endian_bytes(array)
        tensors.append(
            {
                "name": name,
                "datatype": datatype_of(array.dtype),
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(data)},
            }
        )
        raw.append(data)
    header = json.dumps({"inputs": tensors, "parameters": {"binary_data_output": True}}).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + b"".join(raw), headers

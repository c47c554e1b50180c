"""The Open Inference Protocol (KServe v2) tensors: JSON and the binary-data extension.

tritonclient sends inputs as raw bytes after the JSON header (``Inference-Header-Content-Length``)
and asks for binary outputs by default, so both encodings are spoken in both directions. Every
field is type-checked: a malformed request becomes a ``ProtocolError`` naming the field (HTTP
400), whatever its shape, so no client input reaches the engine unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeft.bundle import TensorSpec
from edgeft.errors import EdgeftError, shown

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
BYTES = "BYTES"
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
_MAX_DIM = 2**31 - 1


class ProtocolError(EdgeftError):
    """A request the protocol (or this model) cannot accept: the client's mistake."""


def datatype_of(dtype: str | np.dtype) -> str:
    return _NAMES[np.dtype(dtype)]


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": list(spec.shape)}


@dataclass(frozen=True)
class ModelSignature:
    """What one model accepts: its input tensors, its outputs' names, and, for text models, one
    ``BYTES`` tensor of strings instead (the server tokenizes them)."""

    inputs: Sequence[TensorSpec]
    outputs: tuple[str, ...]
    max_batch: int
    text_input: str | None = None
    max_text_chars: int = 20_000


@dataclass(frozen=True)
class InferRequest:
    """``inputs`` are the model's tensors, or empty when the client sent ``texts``."""

    id: str | None
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    texts: list[str] | None = None
    binary_outputs: bool = False
    outputs: tuple[str, ...] | None = None  # the outputs the client asked for (None: all)

    @property
    def size(self) -> int:
        return len(self.texts) if self.texts is not None else len(next(iter(self.inputs.values())))


def load_json(body: bytes) -> Any:
    """Strict JSON: no NaN or Infinity literals, no nesting deep enough to exhaust the stack."""

    def refuse(constant: str) -> None:
        raise ProtocolError(f"request body is not valid JSON ({constant} is not a JSON number)")

    try:
        return json.loads(body, parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"request body is not valid JSON ({exc})") from exc
    except RecursionError:
        raise ProtocolError("request body is not valid JSON (nested too deeply)") from None


def check_datatype(datatype: object, where: str) -> str:
    """``datatype`` if it is one this server takes, else a ``ProtocolError`` saying ``where``."""
    if not isinstance(datatype, str) or (datatype != BYTES and datatype not in DATATYPES):
        raise ProtocolError(
            f"{where}: datatype {shown(datatype)} is not supported "
            f"(use one of {', '.join([*DATATYPES, BYTES])})"
        )
    return datatype


def parse_infer_request(
    body: bytes, header_length: str | None, signature: ModelSignature
) -> InferRequest:
    """Bytes of a v2 infer request -> named arrays (or texts) checked against ``signature``."""
    json_part, binary = _split_body(body, header_length)
    document = load_json(json_part)
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise ProtocolError('request must be a JSON object with an "inputs" list')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError('"id" must be a string')
    parameters = _parameters(document, "request")
    binary_outputs = _flag(parameters, "binary_data_output", "request parameters")
    wanted, binary_wanted = _requested_outputs(document.get("outputs"), signature.outputs)
    binary_outputs |= binary_wanted
    arrays: dict[str, np.ndarray] = {}
    texts: list[str] | None = None
    offset = 0
    for tensor in document["inputs"]:
        name, value, offset = _decode_tensor(tensor, binary, offset, len(body))
        if name in arrays or (texts is not None and name == signature.text_input):
            raise ProtocolError(f"input {shown(name)} is given twice")
        if isinstance(value, list):
            texts = _check_texts(name, value, signature)
        else:
            arrays[name] = value
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes of binary data belong to no input")
    if texts is not None:
        if arrays:
            raise ProtocolError(f"send either {signature.text_input!r} or the token tensors")
        request = InferRequest(
            request_id, texts=texts, binary_outputs=binary_outputs, outputs=wanted
        )
    else:
        _check_against_model(arrays, signature.inputs)
        request = InferRequest(
            request_id, inputs=arrays, binary_outputs=binary_outputs, outputs=wanted
        )
    if request.size > signature.max_batch:
        raise ProtocolError(
            f"batch of {request.size} items is over this server's limit of "
            f"{signature.max_batch} per request (--max-batch)"
        )
    return request


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f'{what} "parameters" must be an object')
    return parameters


def _flag(parameters: dict[str, Any], key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{what}: {key} must be true or false")
    return value


def _requested_outputs(outputs: Any, names: tuple[str, ...]) -> tuple[tuple[str, ...] | None, bool]:
    """The outputs the client asked for (None: all), and whether one asks for binary data."""
    if outputs is None:
        return None, False
    if not isinstance(outputs, list):
        raise ProtocolError('"outputs" must be a list of {"name": ...} objects')
    binary, wanted = False, []
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise ProtocolError('each of "outputs" must be an object with a "name"')
        name = output["name"]
        if name not in names:
            raise ProtocolError(
                f"unknown output {shown(name)}; this model has {', '.join(map(shown, names))}"
            )
        wanted.append(name)
        binary |= _flag(_parameters(output, "output"), "binary_data", f"output {shown(name)}")
    return tuple(dict.fromkeys(wanted)) or None, binary


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not (header_length.isascii() and header_length.isdigit()):
        raise ProtocolError("Inference-Header-Content-Length is not an integer")
    length = int(header_length)
    if not 0 < length <= len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length {length} does not fit a {len(body)}-byte body"
        )
    return body[:length], body[length:]


def _decode_tensor(
    tensor: Any, binary: bytes, offset: int, body_size: int
) -> tuple[str, np.ndarray | list[str], int]:
    """One input -> (name, array or strings, offset of the next binary input)."""
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("an input has no name")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d <= _MAX_DIM for d in shape):
        raise ProtocolError(f"input {shown(name)}: shape must be a list of non-negative integers")
    datatype = check_datatype(tensor.get("datatype"), f"input {shown(name)}")
    count = 1
    for d in shape:
        count *= d
    size = _parameters(tensor, f"input {shown(name)}").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise ProtocolError(
                f"input {shown(name)}: binary data is shorter than binary_data_size {shown(size)}"
            )
        raw = binary[offset : offset + size]
        value = (
            _strings_from_binary(name, raw, count)
            if datatype == BYTES
            else _array_from_binary(name, raw, DATATYPES[datatype], count)
        )
        return name, _shaped(value, shape), offset + size
    if "data" not in tensor:
        raise ProtocolError(f"input {shown(name)} has neither data nor binary_data_size")
    if count > body_size:  # each JSON value takes at least a byte of the request
        raise ProtocolError(f"input {shown(name)}: shape {shape} holds more values than were sent")
    value = (
        _strings_from_json(name, tensor["data"])
        if datatype == BYTES
        else _array_from_json(name, tensor["data"], datatype)
    )
    if len(value) != count:
        raise ProtocolError(f"input {shown(name)}: {len(value)} values do not fill shape {shape}")
    return name, _shaped(value, shape), offset


def _shaped(value: np.ndarray | list[str], shape: list[int]) -> np.ndarray | list[str]:
    return value.reshape(shape) if isinstance(value, np.ndarray) else value


def _array_from_binary(name: str, raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(
            f"input {shown(name)}: binary_data_size {len(raw)} is not {count} x {dtype.itemsize} bytes"
        )
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
    _check_finite(name, array)
    return array


def _array_from_json(name: str, data: Any, datatype: str) -> np.ndarray:
    """JSON numbers -> a flat array of ``datatype``, refusing values that type cannot hold (no
    silent wrap-around of UINT8 300, no truncation of 1.5 to an integer, no bool as a number)."""
    dtype = DATATYPES[datatype]
    if not isinstance(data, list):
        raise ProtocolError(f"input {shown(name)}: data must be a list of {datatype} values")
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(f"input {shown(name)}: data is not a list of numbers ({exc})") from exc
    kinds = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[dtype.kind]
    if values.size and values.dtype.kind not in kinds:
        raise ProtocolError(f"input {shown(name)}: data is not all {datatype} values")
    flat = values.reshape(-1)
    if flat.size and dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if int(flat.min()) < limits.min or int(flat.max()) > limits.max:
            raise ProtocolError(
                f"input {shown(name)}: values outside {datatype}'s range {limits.min}..{limits.max}"
            )
    if (
        flat.size
        and dtype.kind == "f"
        and np.abs(flat.astype(np.float64)).max() > np.finfo(dtype).max
    ):
        raise ProtocolError(f"input {shown(name)}: values outside {datatype}'s range")
    array = flat.astype(dtype)
    _check_finite(name, array)
    return array


def _check_finite(name: str, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ProtocolError(f"input {shown(name)}: NaN or infinite values")


def _strings_from_json(name: str, data: Any) -> list[str]:
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise ProtocolError(f"input {shown(name)}: BYTES data must be a flat list of strings")
    return data


def _strings_from_binary(name: str, raw: bytes, count: int) -> list[str]:
    """The binary BYTES encoding: each element a 4-byte little-endian length, then its bytes."""
    out, position = [], 0
    for _ in range(count):
        if position + 4 > len(raw):
            raise ProtocolError(f"input {shown(name)}: BYTES data ends before its {count} elements")
        length = int.from_bytes(raw[position : position + 4], "little")
        position += 4
        if position + length > len(raw):
            raise ProtocolError(f"input {shown(name)}: a BYTES element runs past the data")
        try:
            out.append(raw[position : position + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"input {shown(name)}: BYTES element is not UTF-8 ({exc})") from exc
        position += length
    if position != len(raw):
        raise ProtocolError(f"input {shown(name)}: {len(raw) - position} bytes after its elements")
    return out


def _check_texts(name: str, texts: list[str], signature: ModelSignature) -> list[str]:
    if signature.text_input is None:
        raise ProtocolError(f"input {shown(name)}: this model takes no BYTES input")
    if name != signature.text_input:
        raise ProtocolError(
            f"input {shown(name)}: the BYTES input is named {signature.text_input!r}"
        )
    if not texts:
        raise ProtocolError(f"input {shown(name)}: no texts")
    longest = max(len(t) for t in texts)
    if longest > signature.max_text_chars:
        raise ProtocolError(
            f"input {shown(name)}: a text of {longest} characters is over the limit of "
            f"{signature.max_text_chars}"
        )
    return texts


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
                f"input {shown(name)}: datatype {datatype_of(array.dtype)}, the model takes "
                f"{datatype_of(spec.dtype)}"
            )
        fits = len(spec.shape) == array.ndim and all(
            want in (-1, have) for want, have in zip(spec.shape, array.shape, strict=True)
        )
        if not fits or 0 in array.shape:
            raise ProtocolError(
                f"input {shown(name)}: shape {list(array.shape)} does not fit {list(spec.shape)} "
                "(-1 = any size)"
            )


def little_endian_bytes(array: np.ndarray) -> bytes:
    """The binary tensor extension's wire format: row-major, little-endian."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    tensors: Mapping[str, np.ndarray],
    binary: bool,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers (binary when the client asked for it)."""
    outputs: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for name, array in tensors.items():
        output: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if binary:
            raw.append(little_endian_bytes(array))
            output["parameters"] = {"binary_data_size": len(raw[-1])}
        else:
            output["data"] = array.reshape(-1).tolist()
        outputs.append(output)
    document: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": outputs,
    }
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = parameters
    if not binary:
        return json.dumps(document).encode(), {}
    header = json.dumps(document).encode()
    return header + b"".join(raw), {"Inference-Header-Content-Length": str(len(header))}


def encode_infer_request(inputs: Mapping[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """A binary v2 infer request, for clients without tritonclient (load tests, benchmarks)."""
    tensors, raw = [], []
    for name, array in inputs.items():
        data = little_endian_bytes(array)
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

"""Property-based tests of what parses client bytes: whatever arrives, the v2 parsers and the
image decoder either succeed or raise their own error naming the problem, never anything else."""

from __future__ import annotations

import io
import json
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from edgeft.bundle import TensorSpec
from edgeft.runtime.images import ImageDecodeError, decode_image
from edgeft.serve.protocol import (
    DATATYPES,
    ModelSignature,
    ProtocolError,
    encode_infer_request,
    parse_infer_request,
)

IMAGE_MODEL = ModelSignature([TensorSpec("input", (-1, 3, 4, 4), "float32")], ("probabilities",), 8)
TEXT_MODEL = ModelSignature(
    [TensorSpec(n, (-1, -1), "int64") for n in ("input_ids", "attention_mask")],
    ("probabilities",),
    8,
    text_input="text",
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
# Documents shaped like v2 requests, with any value in any field.
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["input", "text", "input_ids", "attention_mask"]) | json_values,
        "shape": st.lists(st.integers(-2, 6) | st.booleans(), max_size=4) | json_values,
        "datatype": st.sampled_from([*DATATYPES, "BYTES"]) | json_values,
        "data": st.lists(
            st.floats(allow_nan=False) | st.integers() | st.text(max_size=4), max_size=100
        )
        | json_values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": json_values})
        | json_values,
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(tensors, max_size=3) | json_values,
        "outputs": st.lists(st.fixed_dictionaries({"name": json_values}), max_size=2) | json_values,
        "parameters": json_values,
        "id": json_values,
    },
)


def _parse_or_refuse(body: bytes, header: str | None, signature: ModelSignature) -> None:
    try:
        request = parse_infer_request(body, header, signature)
    except ProtocolError:
        return
    assert 1 <= request.size <= signature.max_batch


@FAST
@given(documents, st.sampled_from([IMAGE_MODEL, TEXT_MODEL]))
def test_any_json_document_is_parsed_or_refused_with_a_protocol_error(
    document: dict, signature: ModelSignature
) -> None:
    _parse_or_refuse(json.dumps(document).encode(), None, signature)


@FAST
@given(st.binary(max_size=300), st.text(max_size=6) | st.none())
def test_any_bytes_and_header_length_are_parsed_or_refused(body: bytes, header: str | None) -> None:
    _parse_or_refuse(body, header, IMAGE_MODEL)


@FAST
@given(documents, st.binary(max_size=200), st.integers(0, 400))
def test_binary_extension_bodies_are_parsed_or_refused(
    document: dict, binary: bytes, cut: int
) -> None:
    header = json.dumps(document).encode()
    _parse_or_refuse(header + binary, str(min(cut, len(header)) or 1), TEXT_MODEL)


@FAST
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 8), st.just(3), st.just(4), st.just(4)),
        elements=st.floats(-1e6, 1e6, width=32),
    )
)
def test_a_binary_request_round_trips_exactly(pixels: np.ndarray) -> None:
    body, headers = encode_infer_request({"input": pixels})
    parsed = parse_infer_request(body, headers["Inference-Header-Content-Length"], IMAGE_MODEL)
    assert parsed.inputs["input"].dtype == np.float32
    assert np.array_equal(parsed.inputs["input"], pixels)


@FAST
@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_bytes_tensors_carry_any_text_in_both_encodings(texts: list[str]) -> None:
    tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES"}
    as_json = json.dumps({"inputs": [tensor | {"data": texts}]}).encode()
    assert parse_infer_request(as_json, None, TEXT_MODEL).texts == texts
    raw = b"".join(len(t.encode()).to_bytes(4, "little") + t.encode() for t in texts)
    header = json.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": len(raw)}}]})
    parsed = parse_infer_request(header.encode() + raw, str(len(header)), TEXT_MODEL)
    assert parsed.texts == texts


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


VALID_PNG = _png(12, 9)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_an_rgb_image_or_an_image_error(data: bytes) -> None:
    _decode_or_refuse(data)


@FAST
@given(
    st.lists(st.tuples(st.integers(0, len(VALID_PNG) - 1), st.integers(0, 255)), max_size=6),
    st.integers(1, len(VALID_PNG)),
)
def test_a_damaged_png_decodes_or_is_refused(flips: list[tuple[int, int]], keep: int) -> None:
    data = bytearray(VALID_PNG)
    for position, value in flips:
        data[position] = value
    _decode_or_refuse(bytes(data[:keep]))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30_000), st.integers(1, 30_000))
def test_image_size_limits_are_checked_before_decoding(width: int, height: int) -> None:
    """A 1 x 1 PNG whose header declares any size: over the pixel or aspect limit it is refused
    from the header alone, and otherwise decoded or refused for its missing pixel data."""
    png = bytearray(_png(1, 1))
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR width, height
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    too_thin = max(width, height) / min(width, height) > 20
    too_big = width * height > 40_000_000
    try:
        decode_image(bytes(png))
    except ImageDecodeError as exc:
        by_limit = "thinner than the limit" in str(exc) or "over the limit" in str(exc)
        assert by_limit == (too_thin or too_big), str(exc)
        return
    assert not (too_thin or too_big), "an image past the limits was decoded"


def _decode_or_refuse(data: bytes) -> None:
    try:
        image = decode_image(data)
    except ImageDecodeError:
        return
    assert image.mode == "RGB" and min(image.size) >= 1

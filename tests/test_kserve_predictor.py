"""The KServe custom predictor: the KServe SDK's own ModelServer, started on loopback with an
edgeft bundle, answers tritonclient with the same probabilities as ``Predictor``, images sent as
files (base64, as KServe's REST decoder wants them) and preprocessed on the server."""

from __future__ import annotations

import base64
import http.client
import io
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from edgeft.bench.server_process import free_port
from edgeft.bundle import Bundle
from edgeft.runtime import Predictor


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_kserve_model_server_preprocesses_and_answers_like_the_predictor(
    zoo_bundle: Bundle,
) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    port = free_port()
    command = [
        sys.executable, "-m", "edgeft.serve.kserve_predictor", "--model_name", "cats",
        "--bundle", str(zoo_bundle.root), "--engine", "onnxruntime",
        "--http_port", str(port), "--grpc_port", str(free_port()),
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the KServe server did not get ready"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/v2/models/cats/ready")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        images = [skimage_data.chelsea(), skimage_data.coffee()]
        expected = Predictor(zoo_bundle, engine="onnxruntime").predict(images, top_k=1)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = httpclient.InferInput("image", [2], "BYTES")
        encoded = [base64.b64encode(_png(i)) for i in images]  # KServe's REST way for files
        tensor.set_data_from_numpy(np.array(encoded, dtype=object))
        got = client.infer("cats", [tensor]).as_numpy("probabilities")
        assert got.shape == (2, 1000)
        assert [int(row.argmax()) for row in got] == [
            Predictor(zoo_bundle, engine="onnxruntime").labels.index(p.label) for p in expected
        ]
        assert np.allclose(got.max(axis=1), [p.confidence for p in expected], atol=1e-5)
        junk = httpclient.InferInput("image", [1], "BYTES")
        junk.set_data_from_numpy(np.array([b"not an image"], dtype=object))
        with pytest.raises(InferenceServerException, match="not a readable image"):
            client.infer("cats", [junk])
        client.close()
    finally:
        server.terminate()
        server.communicate(timeout=30)

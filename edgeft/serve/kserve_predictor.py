"""edgeft's ``Predictor`` as a KServe custom predictor, for clusters that want the preprocessing
on the server side: the KServe Python SDK's ModelServer speaks v2 REST and gRPC, this class
decodes and preprocesses as the bundle says. Too heavy for the box (the SDK pulls the
Kubernetes client, pandas and grpcio-tools), so it is the ``kserve`` extra, and the box keeps
``edgeft serve``.

    python -m edgeft.serve.kserve_predictor --model_name elpv --bundle /mnt/models \\
        [--engine openvino] [--http_port 8080 --grpc_port 8081]

Inputs: one ``BYTES`` tensor of image files (base64 over REST, raw over gRPC) or texts, or the
model's own tensors already preprocessed. Output ``probabilities``. Like every KServe predictor it listens
on all interfaces (inside its pod); requests with the wrong inputs get 400.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
from typing import Any

import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

from edgeft.errors import EdgeftError
from edgeft.runtime import Predictor
from edgeft.runtime.predictor import PROBABILITIES_OUTPUT


class EdgeftPredictor(kserve.Model):
    """One bundle behind the KServe ModelServer."""

    def __init__(self, name: str, bundle: str, engine: str = "auto", precision: str = "auto"):
        super().__init__(name)
        self._options = (bundle, engine, precision)
        self.predictor: Predictor | None = None

    def load(self) -> bool:
        bundle, engine, precision = self._options
        self.predictor = Predictor(bundle, engine, precision)
        self.predictor.warm_up()
        self.ready = True
        return self.ready

    async def predict(
        self,
        payload: InferRequest | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("send a v2 inference request")
        try:
            probabilities = await asyncio.to_thread(self._probabilities, payload)
        except EdgeftError as exc:
            raise InvalidInput(str(exc)) from exc
        output = InferOutput(PROBABILITIES_OUTPUT, list(probabilities.shape), "FP32")
        output.set_data_from_numpy(probabilities.astype(np.float32), binary_data=True)
        return InferResponse(payload.id or "", self.name, [output])

    def _probabilities(self, request: InferRequest) -> np.ndarray:
        assert self.predictor is not None
        encoder = self.predictor.encoder
        inputs = request.inputs
        if len(inputs) == 1 and inputs[0].datatype == "BYTES":
            items = [
                _item(v, self.predictor.bundle.manifest.task)
                for v in inputs[0].as_numpy().reshape(-1)
            ]
            return self.predictor.probabilities(encoder.encode(items))
        arrays = {i.name: i.as_numpy() for i in inputs}
        expected = {spec.name for spec in self.predictor.bundle.manifest.inputs}
        if set(arrays) != expected:
            raise EdgeftError(f"send one BYTES input, or exactly the tensors {sorted(expected)}")
        encoder.check(arrays)
        return self.predictor.probabilities(arrays)


def _item(value: Any, task: str) -> bytes | str:
    """A BYTES element: a text, or an image file, base64-encoded (the SDK's REST decoder takes
    BYTES elements as UTF-8 text) or raw (gRPC carries bytes as they are)."""
    if task == "text-classification":
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    raw = value if isinstance(value, bytes) else str(value).encode()
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        return raw  # an encoded image file's bytes are never valid base64


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument(
        "--bundle", required=True, help="The bundle folder (in KServe: /mnt/models)."
    )
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto")
    args, _ = parser.parse_known_args()
    model = EdgeftPredictor(args.model_name, args.bundle, args.engine, args.precision)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()

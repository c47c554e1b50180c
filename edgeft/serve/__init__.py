"""The edge box's HTTP server: the Open Inference Protocol (KServe v2) plus ``/v1/predict``.

Needs the ``serve`` extra (fastapi, uvicorn, python-multipart, prometheus-client) and one
engine; like ``edgeft.runtime`` it never imports the build stack.
"""

from edgeft.serve.app import create_app
from edgeft.serve.config import ServerConfig
from edgeft.serve.server import serve

__all__ = ["ServerConfig", "create_app", "serve"]

"""``edgeft serve`` in a child process, for load tests and benchmarks that must not share the
server's CPU time and GIL with the client."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edgeft.errors import EdgeftError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(bundle, ["--engine", "openvino"]) as server: server.url``.

    Leaving the block sends SIGTERM and waits for the graceful shutdown; ``output`` then holds
    what the server printed.
    """

    def __init__(
        self,
        bundle: str | Path,
        options: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready_timeout_s: float = 90.0,
        wait_for: str = "/v2/health/ready",
    ) -> None:
        """``wait_for`` is the path that must answer 200 before the block starts (the live
        check, for a server expected never to get ready)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = ""
        self._command = [
            sys.executable, "-m", "edgeft", "serve", str(bundle), "--port", str(self.port),
            *options,
        ]  # fmt: skip
        self._env = os.environ | (env or {})
        self._ready_timeout_s = ready_timeout_s
        self._wait_for = wait_for
        self.process: subprocess.Popen[str] | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self._command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=self._env,
        )  # fmt: skip
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.output = self.process.communicate()[0]
                raise EdgeftError(f"the server exited before it was ready:\n{self.output}")
            try:
                if self.request("GET", self._wait_for)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise EdgeftError(f"the server was not ready within {self._ready_timeout_s:.0f} s")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.output = self.process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.output = self.process.communicate()[0]
        return self.process.returncode

"""A bounded load test on a running server: N clients, each sending M requests back to back on
its own keep-alive connection (what perf_analyzer's concurrency mode does, in miniature)."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from edgeft.bench.latency import LatencyStats, summarise


@dataclass(frozen=True)
class LoadResult:
    clients: int
    requests: int
    errors: int
    seconds: float
    latency: LatencyStats
    status_counts: dict[int, int] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


def run_load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    clients: int = 16,
    requests_per_client: int = 200,
    timeout_s: float = 60.0,
) -> LoadResult:
    """POST ``body`` to ``url`` from ``clients`` threads; any non-200 or failure is an error."""
    parts = urlsplit(url)
    host = parts.hostname
    if host is None:
        raise ValueError(f"{url!r} names no host")
    statuses: Counter[int] = Counter()
    times: list[float] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, parts.port, timeout=timeout_s)

    def client() -> None:
        connection = connect()
        mine: list[float] = []
        codes: Counter[int] = Counter()
        start_line.wait()
        for _ in range(requests_per_client):
            started = time.perf_counter()
            try:
                connection.request("POST", parts.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                codes[response.status] += 1
            except (OSError, http.client.HTTPException):
                codes[0] += 1  # connection-level failure
                connection.close()
                connection = connect()
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            times.extend(mine)
            statuses.update(codes)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return LoadResult(
        clients=clients,
        requests=sum(statuses.values()),
        errors=sum(n for code, n in statuses.items() if code != 200),
        seconds=seconds,
        latency=summarise(times, batch=1),
        status_counts=dict(statuses),
    )

"""Read a running server's shadow comparison (``GET /v1/models/NAME/shadow``) from another
process: what ``edgeft shadow`` shows. The body is bounded and checked, since the server may
be any host's."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from edgeft.errors import EdgeftError
from edgeft.serve.launch import token_from_env

MAX_REPORT_BYTES = 4 * 1024 * 1024  # the server keeps its changes table bounded well below


@dataclass(frozen=True)
class LabelChange:
    """Items where production said ``production`` and the shadow ``shadow``."""

    production: str
    shadow: str
    items: int


@dataclass(frozen=True)
class ShadowReport:
    """``ShadowComparison.to_dict`` as read back: production against its shadow version."""

    production_version: str
    shadow_version: str
    requests: int
    items: int
    agreement: float | None
    changes: tuple[LabelChange, ...]
    failed: int
    skipped: int
    p50_ms: float | None
    p99_ms: float | None
    raw: dict[str, Any]  # as the server sent it, for --json

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowReport:
        try:
            latency = data["shadow_latency_ms"]
            return cls(
                production_version=str(data["production_version"]),
                shadow_version=str(data["shadow_version"]),
                requests=int(data["requests"]),
                items=int(data["items"]),
                agreement=None if data["agreement"] is None else float(data["agreement"]),
                changes=tuple(
                    LabelChange(str(c["production"]), str(c["shadow"]), int(c["items"]))
                    for c in data["changes"]
                ),
                failed=int(data["failed"]),
                skipped=int(data["skipped"]),
                p50_ms=None if latency["p50"] is None else float(latency["p50"]),
                p99_ms=None if latency["p99"] is None else float(latency["p99"]),
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeftError(f"not a shadow report: {exc!r}") from None


def fetch_shadow_report(url: str, model: str, token_env: str | None = None) -> ShadowReport:
    """The shadow comparison of ``model`` on the server at ``url``."""
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/models/{model}/shadow")
    token = token_from_env(token_env)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise EdgeftError(f"{url}: {exc}") from exc
    if len(body) > MAX_REPORT_BYTES:
        raise EdgeftError(f"{url}: the shadow report is over {MAX_REPORT_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise EdgeftError(f"{url}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EdgeftError(f"{url}: not a shadow report")
    return ShadowReport.from_dict(data)

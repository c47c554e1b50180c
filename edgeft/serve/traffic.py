"""Sharing a model's traffic with another version: a canary answers a share of requests, a
shadow runs on a copy of each request without answering, compared with production.

Neither is KServe's whole story: its ``canaryTrafficPercent`` has no shadow, and no serving
engine compares the two versions' answers. Here the comparison (agreement, which classes the
shadow would have changed, its latency) is kept per model, bounded, and shown on ``/metrics``
and ``GET /v1/models/NAME/shadow``.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeft.errors import EdgeftError

_SPEC = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)@(?P<version>\d+)(:(?P<share>\d+(\.\d+)?))?$"
)


@dataclass(frozen=True)
class SideVersion:
    """``--canary N@V:10`` (10% of N's requests to version V) or ``--shadow N@V``."""

    model: str
    version: str
    share: float = 0.0  # of requests, 0..1 (canaries only)


def parse_side_version(text: str, canary: bool) -> SideVersion:
    match = _SPEC.match(text)
    if match is None or (canary and match["share"] is None) or (not canary and match["share"]):
        shape = "NAME@VERSION:PERCENT" if canary else "NAME@VERSION"
        raise EdgeftError(f"{text!r}: write {shape}, e.g. {'elpv@3:10' if canary else 'elpv@3'}")
    share = float(match["share"] or 0) / 100
    if canary and not 0 < share <= 1:
        raise EdgeftError(f"{text!r}: the canary's percent must be above 0 and at most 100")
    return SideVersion(match["name"], match["version"], share)


@dataclass
class ShadowComparison:
    """Production and shadow answers on the same requests, in counts (bounded memory)."""

    production: str = ""
    shadow: str = ""
    requests: int = 0
    items: int = 0
    agreed: int = 0
    failed: int = 0
    skipped: int = 0  # the shadow's queue was full: production never waits for it
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def record(
        self, production: np.ndarray, shadow: np.ndarray, labels: list[str], seconds: float
    ) -> None:
        ours, theirs = production.argmax(axis=1), shadow.argmax(axis=1)
        self.requests += 1
        self.items += len(ours)
        self.agreed += int((ours == theirs).sum())
        for a, b in zip(ours, theirs, strict=True):
            if a != b:
                self.changes[(labels[a], labels[b])] += 1
        self.latency_s.append(seconds)

    def to_dict(self) -> dict[str, Any]:
        latency = np.asarray(self.latency_s) * 1000
        return {
            "production_version": self.production,
            "shadow_version": self.shadow,
            "requests": self.requests,
            "items": self.items,
            "agreement": self.agreed / self.items if self.items else None,
            "changes": [
                {"production": a, "shadow": b, "items": n}
                for (a, b), n in self.changes.most_common()
            ],
            "failed": self.failed,
            "skipped": self.skipped,
            "shadow_latency_ms": {
                "p50": float(np.percentile(latency, 50)) if len(latency) else None,
                "p99": float(np.percentile(latency, 99)) if len(latency) else None,
            },
        }

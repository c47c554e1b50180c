"""Small inline SVG charts: a figure over windows with its band, no plotting library.

The monitor's HTML report and the server's status page run on the box, which has no matplotlib
(and a page that loads nothing from elsewhere works on a factory network).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 360, 110, 18


def band_chart(
    title: str,
    values: Sequence[float | None],
    lows: Sequence[float | None] | None = None,
    highs: Sequence[float | None] | None = None,
    alerts: Sequence[bool] | None = None,
) -> str:
    """One line per window, the band shaded, alerting windows as red dots."""
    n = len(values)
    known = [v for v in [*values, *(lows or []), *(highs or [])] if v is not None]
    if not known:
        return f'<figure class="chart"><figcaption>{escape(title)}: no data</figcaption></figure>'
    top, bottom = max(known), min(known)
    span = (top - bottom) or 1.0

    def x(i: int) -> float:
        return PAD + (WIDTH - 2 * PAD) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        return PAD + (HEIGHT - 2 * PAD) * (1 - (v - bottom) / span)

    parts = []
    if lows is not None or highs is not None:
        upper = [(x(i), y(h if h is not None else top)) for i, h in enumerate(highs or [None] * n)]
        lower = [
            (x(i), y(lo if lo is not None else bottom)) for i, lo in enumerate(lows or [None] * n)
        ]
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in [*upper, *reversed(lower)])
        parts.append(f'<polygon points="{points}" fill="#d8ecd8"/>')
    line = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
    if line:
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in line)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1f5f9f" stroke-width="2"/>')
    for i, v in enumerate(values):
        if v is not None:
            colour = "#c0392b" if alerts and alerts[i] else "#1f5f9f"
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
    parts.append(f'<text x="{PAD}" y="12" font-size="11">{escape(title)}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD}" y="12" font-size="10" text-anchor="end">'
        f"{bottom:.3g} to {top:.3g}</text>"
    )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">{"".join(parts)}</svg>'
    )

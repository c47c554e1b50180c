"""The server's status page (``GET /``) as a person sees it: a real ``edgeft serve`` process with
a prediction log and its live monitor, the page opened in headless Chromium (the system browser,
driven by playwright), and what the rendered page shows checked. The browser may reach nothing
but the server: the page must be self-contained (a closed factory network)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from edgeft.bench.server_process import ServerProcess
from edgeft.bundle import Bundle
from tests.browser import headless_chromium, only_from
from tests.conftest import part_image

MODEL = "parts"
TOKEN = "status-page-s3cret"
FIGURES = {"prediction_rates", "confidence", "input.brightness", "embedding", "estimated_accuracy"}


def _fill(server: ServerProcess, headers: dict[str, str]) -> int:
    """60 parts through /v1/predict, the second half brightness-shifted (drift); returns the
    number posted."""
    rng = np.random.default_rng(11)
    posted = 0
    for bright in (0.0, 70.0):
        for i in range(30):
            body = part_image(rng, ("dent", "ok")[i % 2], bright=bright)
            status, answer = server.request(
                "POST", "/v1/predict", body, headers | {"Content-Type": "image/png"}
            )
            assert status == 200, answer
            posted += 1
    return posted


def test_the_status_page_shows_the_server_in_a_browser(
    parts_bundle: Bundle, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    options = [
        "--model-name", MODEL, "--engine", "onnxruntime", "--log", str(tmp_path / "log.sqlite"),
        "--monitor-window", "30", "--monitor-interval-s", "0.5", "--keep-below", "0.99",
        "--keep-share", "1", "--token-env", "EDGEFT_TEST_TOKEN",
    ]  # fmt: skip
    with ServerProcess(parts_bundle.root, options, env={"EDGEFT_TEST_TOKEN": TOKEN}) as server:
        status, metadata = server.request("GET", f"/v2/models/{MODEL}", headers=auth)
        assert status == 200, metadata
        (version,) = json.loads(metadata)["versions"]
        posted = _fill(server, auth)
        deadline = time.monotonic() + 20
        while b"edgeft_estimated_accuracy{" not in server.request("GET", "/metrics", None, auth)[1]:
            assert time.monotonic() < deadline, "the live monitor never published"
            time.sleep(0.2)
        assert server.request("GET", "/")[0] == 401  # behind the token

        with headless_chromium() as browser:
            context = browser.new_context(extra_http_headers=auth)
            page = context.new_page()
            elsewhere = only_from(page, server.url)
            response = page.goto(server.url + "/", wait_until="load", timeout=15_000)
            assert response is not None and response.status == 200
            shown = _what_the_page_shows(page)
            screenshot = tmp_path / "status.png"
            page.screenshot(path=str(screenshot), full_page=True)

    assert elsewhere == [], f"the page loaded things from elsewhere: {elsewhere}"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 1000

    assert (shown["model"], shown["version"]) == (MODEL, version), shown
    assert int(shown["requests"]) >= posted, shown
    assert int(shown["errors"]) >= 0, shown
    assert 0.0 <= float(shown["estimate"]) <= 1.0, shown
    figures = {name: status for name, _, status in shown["figures"]}
    bands = [band for _, band, _ in shown["figures"]]
    assert not any(b.startswith("to ") or b.endswith(" to") for b in bands), bands  # one-sided
    assert set(figures) >= FIGURES, figures
    assert all(figures[name] in ("ok", "alert") for name in FIGURES), figures
    assert figures["input.brightness"] == "alert", figures  # the shifted half of the window
    assert shown["charts"] >= 1 and shown["chart_points"] >= 1, shown
    assert " to " in shown["span"] and "analys" in shown["span"], (
        shown
    )  # the chart says what "over time" spans
    assert shown["thumbnails"], "no low-confidence thumbnails shown"
    assert all(w > 0 for w in shown["thumbnails"]), shown["thumbnails"]  # the data URIs decode


def _what_the_page_shows(page) -> dict:  # playwright.sync_api.Page
    """The rendered DOM, read as the browser laid it out (visible text, decoded images)."""
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.thumbs img')).every(i => i.complete)",
        timeout=5_000,
    )

    def text(selector: str) -> str:
        element = page.locator(selector).first
        assert element.is_visible(), f"{selector} is not shown"
        return element.inner_text().strip()

    return {
        "model": text("td.model"),
        "version": text("td.version"),
        "requests": text("span.requests"),
        "errors": text("span.errors"),
        "estimate": text("span.estimate"),
        "figures": page.eval_on_selector_all(  # [figure, band, status] as rendered
            "table.figures tr:has(td)",
            "rows => rows.map(r => [0, 2, 3].map(i => r.cells[i].innerText.trim()))",
        ),
        "span": text("p.span"),
        "charts": page.locator("svg.chart").count(),
        "chart_points": page.locator("svg.chart circle").count(),
        "thumbnails": page.eval_on_selector_all(
            ".thumbs img", "images => images.map(i => i.naturalWidth)"
        ),
    }

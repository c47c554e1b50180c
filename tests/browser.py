"""Headless Chromium for the tests that look at pages as a person would: the system browser
(Debian's ``chromium``, no download) driven by playwright, which may reach only what a test
allows (the pages must be self-contained: a closed factory network)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
INSTALL = "make browser (apt-get install -y chromium) and pip install -e '.[dev]' (playwright)"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@contextmanager
def headless_chromium() -> Iterator:  # Iterator[playwright.sync_api.Browser]
    """The system Chromium under playwright, or a failure that says how to install them (CI
    does; a missing browser must not pass silently as a skip)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"python playwright is not installed; run: {INSTALL}")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.fail(f"{CHROMIUM} is missing; run: {INSTALL}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def only_from(page, *prefixes: str) -> list[str]:  # page: playwright.sync_api.Page
    """Let ``page`` load only URLs starting with ``prefixes`` (and data: URIs); the list it
    returns fills with whatever else the page asked for."""
    elsewhere: list[str] = []

    def route(request_route) -> None:  # playwright.sync_api.Route
        url = request_route.request.url
        if url.startswith(("data:", *prefixes)):
            request_route.continue_()
        else:
            elsewhere.append(url)
            request_route.abort()

    page.route("**/*", route)
    return elsewhere

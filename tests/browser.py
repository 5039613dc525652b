"""Headless Chromium for tests that look at pages (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import contextlib
import shutil

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def chromium_path() -> str:
    """Returns the Chromium executable, or skips when the machine has none (.ci/run installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    return path


@contextlib.contextmanager
def page(width: int = 1280, height: int = 1000):
    """Yields (page, errors): a fresh page and the console errors and page errors it reports."""
    sync = pytest.importorskip("playwright.sync_api")
    with sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            yield pg, errors
        finally:
            browser.close()

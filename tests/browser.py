"""Headless Chromium (Debian's) driven by Playwright, for the web page tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@contextmanager
def open_page(url: str, enforce_csp: bool = False, extra_args: tuple[str, ...] = ()) -> Iterator:
    """A page at ``url``; fails the test if the page raised any JavaScript error. Playwright's
    ``wait_for_function`` evaluates strings in the page, which the page's Content-Security-Policy
    forbids, so interaction tests bypass the policy; ``enforce_csp`` keeps it, and then any
    violation the page itself causes fails the test too."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_FLAGS, *extra_args]
        )
        context = browser.new_context(viewport={"width": 1200, "height": 1400}, bypass_csp=not enforce_csp)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        if enforce_csp:
            page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
        page.goto(url)
        yield page
        browser.close()
        assert errors == [], errors

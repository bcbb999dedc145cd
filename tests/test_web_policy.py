"""The web page under its own Content-Security-Policy, in a real headless Chromium.

Apart from test_web.py: that module keeps one browser open for its tests, and Playwright's
sync API cannot open a second one beside it."""

from __future__ import annotations

import pytest
from PIL import Image

from browser import open_page
from media_factory import gradient_frame

pytestmark = pytest.mark.service


def test_the_page_works_under_its_own_content_security_policy(server, tmp_path):
    """With the policy enforced, the page loads its script and styles, shows the gallery and
    stylizes an upload without a single violation (open_page fails on any)."""
    photo = tmp_path / "photo.png"
    Image.fromarray(gradient_frame(80, 60)).save(photo)
    with open_page(f"{server.url}/ui/", enforce_csp=True) as page:
        page.wait_for_selector(".style >> nth=1")
        page.set_input_files("#file", str(photo))
        page.locator("#go").click()
        page.wait_for_selector("#after[src^='blob:']", timeout=120_000)

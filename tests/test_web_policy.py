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


# --- state-changing routes refuse forged origins, rebound hosts and proxies (real server) ---


def test_state_changes_refuse_other_sites_rebound_hosts_and_proxies(server):
    import httpx

    forged = {
        "another site's form": {"Origin": "http://evil.example"},
        "a sandboxed frame": {"Origin": "null"},
        "a DNS-rebound name": {"Host": "rebound.evil.example"},
        "a local tunnel": {"X-Forwarded-For": "203.0.113.9"},
    }
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for case, headers in forged.items():
            for path in ("/delete_style", "/create_style", "/jobs/some-job/cancel"):
                response = client.post(path, json={"style": "rand-0"}, headers=headers)
                assert response.status_code == 403, (case, path, response.text)
        assert "cross-site" in client.post("/delete_style", json={}, headers=forged["another site's form"]).text
        same_origin = client.post("/delete_style", json={"style": "no-such-style"}, headers={"Origin": server.url})
        assert same_origin.status_code == 404  # through the guard, to the route itself
        photo = client.post(
            "/stylize", files={"image": ("p.png", _png())}, data={"style": "rand-0"}, headers=forged["a local tunnel"]
        )
        assert photo.status_code == 200  # stylizing changes nothing: not guarded


def _png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_guard_reads_hosts_and_origins_like_a_browser_sends_them():
    from clipmorph.serving.state_guard import host_name, is_loopback_host, refusal

    assert host_name("[::1]:3000") == "::1" and host_name("LocalHost:80") == "localhost" and host_name("::1") == "::1"
    assert all(is_loopback_host(h) for h in ("127.0.0.1:3000", "127.8.0.1", "[::1]:1", "localhost"))
    assert not any(is_loopback_host(h) for h in ("10.0.0.1", "evil.example", "127.0.0.1.evil.example", ""))
    local = {b"host": b"127.0.0.1:3000"}
    assert refusal(local, False, set()) is None
    assert refusal(local | {b"origin": b"http://127.0.0.1:3000"}, False, set()) is None
    assert "cross-site" in refusal(local | {b"origin": b"http://127.0.0.1:4000"}, False, set())
    assert refusal(local | {b"origin": b"https://app.example"}, False, {"https://app.example"}) is None
    public = {b"host": b"styles.example.org", b"x-forwarded-for": b"203.0.113.9"}
    assert "loopback" in refusal(public, False, set())
    assert refusal(public, True, set()) is None  # with a token, the token is the gate
    assert "cross-site" in refusal(public | {b"origin": b"http://evil.example"}, True, set())

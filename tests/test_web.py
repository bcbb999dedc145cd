"""The web page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from browser import open_page
from media_factory import gradient_frame, make_video

pytestmark = pytest.mark.service


@pytest.fixture
def page(server):
    """A fresh page (its own browser context: no history, no storage) with the gallery loaded:
    each test stands alone, in any order."""
    with open_page(f"{server.url}/ui/") as page:
        page.wait_for_selector(".style >> nth=1")
        yield page


def test_gallery_lists_the_styles(page, server):
    names = page.locator(".style span").all_inner_texts()
    with server.client() as client:
        served = [row["display_name"] for row in client.post("/styles", json={}).json()]
    assert names == served and "Random test style 0" in names
    assert page.locator('.style[aria-selected="true"]').count() == 1


def test_upload_a_photo_and_get_a_result(page, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(gradient_frame(160, 120)).save(photo)
    page.set_input_files("#file", str(photo))
    page.click('.style[data-style="rand-1"]')
    page.locator("#strength").fill("0.8")
    page.click("#go")
    page.wait_for_function("document.querySelector('#after').naturalWidth === 160", timeout=60_000)
    assert page.locator("#compare").is_visible()
    assert page.locator("#download").get_attribute("download") == "clipmorph-rand-1.png"
    assert page.locator("#error").is_hidden() and page.locator("#progress").is_hidden()
    page.wait_for_selector("#history li")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def test_the_brush_picks_the_size_the_network_paints_at(page, server, tmp_path):
    """Painterly sends no max_side (the server's paint side), Bold a smaller one, Fine the server's cap."""
    photo = tmp_path / "photo.png"
    Image.fromarray(gradient_frame(160, 120)).save(photo)
    page.set_input_files("#file", str(photo))
    page.click('.style[data-style="rand-1"]')
    with server.client() as client:
        limits = client.post("/info", json={}).json()["limits"]
    page.wait_for_function("!document.querySelector('#brush-fine').hidden")  # offered once it read the cap
    page.evaluate(  # record each form the page sends (the body of a file upload is not visible to Playwright)
        """() => { window.sentSides = []; const send = window.fetch;
        window.fetch = (path, init) => { if (init && init.body instanceof FormData)
          window.sentSides.push(init.body.get("max_side")); return send(path, init); }; }"""
    )
    sent = {}
    for count, choice in enumerate(("Painterly", "Bold", "Fine (the photo's detail)"), 1):
        page.select_option("#brush", label=choice)
        page.click("#go")
        page.wait_for_function(f"window.sentSides.length === {count}")
        page.wait_for_function("!document.querySelector('#go').disabled", timeout=60_000)
        side = page.evaluate("window.sentSides.at(-1)")
        sent[choice] = side and int(side)
    assert sent == {"Painterly": None, "Bold": 512, "Fine (the photo's detail)": int(limits["max_side"])}
    assert int(limits["paint_side"]) == 768 and page.locator("#error").is_hidden()


def test_a_clip_shows_progress_then_plays(page, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", frames=150, size=(480, 320), fps=25)
    page.set_input_files("#file", str(clip))
    page.click('.style[data-style="rand-0"]')
    page.click("#go")
    page.wait_for_function(
        "/running: \\d+ \\/ 150 frames/.test(document.querySelector('#progress-text').textContent)", timeout=60_000
    )
    page.wait_for_function("document.querySelector('#video').readyState >= 1", timeout=180_000)
    assert page.evaluate("document.querySelector('#video').videoWidth") == 480
    assert page.locator("#download").is_visible()
    assert page.locator("#history li").count() == 1


def test_openapi_docs_page_renders_offline(page, server):
    page.goto(f"{server.url}/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert "/stylize_batch" in page.inner_text("body")
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector(".style")


def test_a_bad_file_shows_the_servers_reason(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image" * 20)
    page.set_input_files("#file", str(bad))
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "400" in page.locator("#error").inner_text() and "not an image" in page.locator("#error").inner_text()


def test_a_painting_with_full_and_lite_is_one_named_tile_with_a_quality_choice(page, tmp_path):
    """The catalogue serves each painting twice (full and lite): one tile, its name readable, a
    choice of network that decides which style the request names."""
    rows = [
        {"id": "rand-0", "display_name": "Random test style 0", "artist": "Nobody"},
        {"id": "rand-0-lite", "display_name": "Random test style 0 (lite)", "artist": "Nobody"},
        {"id": "rand-1", "display_name": "Random test style 1", "artist": ""},
    ]
    rows = [{**row, "thumbnail_url": f"/ui/thumbnails/{row['id']}"} for row in rows]
    page.route("**/styles", lambda route: route.fulfill(json=rows))
    photo = tmp_path / "photo.png"
    Image.fromarray(gradient_frame(64, 48)).save(photo)
    sent: list[bytes] = []

    def answer(route):  # the request is what is checked: any picture will do as the answer
        sent.append(route.request.post_data_buffer or b"")
        route.fulfill(body=photo.read_bytes(), content_type="image/png")

    page.route("**/stylize", answer)
    page.reload()
    page.wait_for_selector(".style >> nth=1")
    assert page.locator(".style").count() == 2
    assert page.locator(".style span").all_inner_texts() == ["Random test style 0", "Random test style 1"]
    label_colour = page.evaluate("getComputedStyle(document.querySelector('.style span')).color")
    assert label_colour not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")  # readable on the white card
    assert page.locator("#quality").is_visible()
    page.set_input_files("#file", str(photo))
    page.check("#fast")
    page.click("#go")
    page.wait_for_function("document.querySelector('#after').naturalWidth === 64")
    page.click('.style[data-style="rand-1"]')
    assert page.locator("#quality").is_hidden()  # one network only
    page.click("#go")
    page.wait_for_function("document.querySelectorAll('#history li').length === 2")
    styles = [re.search(rb'name="style"\r\n\r\n([\w-]+)', body).group(1) for body in sent]
    assert styles == [b"rand-0-lite", b"rand-1"]


def test_the_page_loads_without_a_failed_request(server):
    failed: list[str] = []
    with open_page(f"{server.url}/ui/") as page:
        page.on("response", lambda response: response.status >= 400 and failed.append(response.url))
        page.reload()
        page.wait_for_selector(".style img")
        page.wait_for_load_state("networkidle")
    assert failed == []


@pytest.mark.parametrize(("device", "network"), [("cpu", "fast"), ("cuda:0", "best")])
def test_the_live_tab_picks_the_fast_network_on_a_cpu_and_the_full_one_on_a_gpu(page, device, network):
    rows = [
        {"id": "rand-0", "display_name": "Random test style 0", "artist": ""},
        {"id": "rand-0-lite", "display_name": "Random test style 0 (lite)", "artist": ""},
    ]
    page.route("**/styles", lambda route: route.fulfill(json=[{**r, "thumbnail_url": "/ui/favicon.svg"} for r in rows]))
    page.route("**/info", lambda route: route.fulfill(json={"model": {"device": device}, "limits": {}}))
    page.reload()
    page.wait_for_selector(".style")
    assert page.is_checked("#best")
    page.click("#tab-live")
    page.wait_for_selector("#live-panel[data-device]")
    assert page.is_checked(f"#{network}") and page.is_hidden("#input-panel")


def test_a_painting_chosen_in_the_live_tab_of_a_cpu_is_its_fast_network_even_before_the_gallery_loaded(page):
    """The Live tab opened while the gallery still loads: the painting picked then is the lite one."""
    rows = [
        {"id": "rand-0", "display_name": "Random test style 0", "artist": ""},
        {"id": "rand-0-lite", "display_name": "Random test style 0 (lite)", "artist": ""},
    ]
    held = []
    page.route("**/styles", lambda route: held.append(route))  # answered only after the tab is open
    page.route("**/info", lambda route: route.fulfill(json={"model": {"device": "cpu"}, "limits": {}}))
    page.reload()
    page.click("#tab-live")
    page.wait_for_selector("#live-panel[data-device]")
    while not held:
        page.wait_for_timeout(50)  # lets Playwright hand over the request the page has sent
    held[0].fulfill(json=[{**r, "thumbnail_url": "/ui/favicon.svg"} for r in rows])
    page.wait_for_selector(".style")
    page.click('.style[data-style="rand-0"]')
    assert page.is_checked("#fast") and page.evaluate("state.style") == "rand-0-lite"

"""Creating styles from paintings through a real `bentoml serve`: training jobs, hot serving,
deletion, cancel, bad input, and the admin token. Each server here has its own model store."""

import io
import json
import socket

import numpy as np
import pytest
from PIL import Image

from browser import open_page
from conftest import run_cli
from media_factory import gradient_frame
from service_fixture import own_store, start_server, stop_server
from test_service import error_of, png_bytes, wait_for_job, wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]


def painting_bytes() -> bytes:
    y, x = np.mgrid[0:128, 0:128]
    stripes = np.stack([(x // 8 % 2) * 230, (y * 2) % 256, np.full_like(x, 90)], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, format="PNG")
    return buffer.getvalue()


def serve_with_own_store(workdir, vgg_assets, extra_env=None):
    """A server over a fresh store holding the random test styles (rand-0, rand-1)."""
    photos = workdir / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(gradient_frame(96, 72, t=i)).save(photos / f"{i}.jpg")
    env = {"BENTOML_HOME": str(own_store(workdir)), "CLIPMORPH_CACHE": str(vgg_assets[1].parent)}
    env |= {"CLIPMORPH_TRAIN_CONTENT": str(photos), "CLIPMORPH_WANDB_DIR": str(workdir / "wandb")}
    return start_server(workdir, env | (extra_env or {}))


@pytest.fixture(scope="module")
def studio(tmp_path_factory, vgg_assets, arbitrary_wheel):
    from clipmorph.inference import arbitrary

    arbitrary.fetch(vgg_assets[1].parent, arbitrary_wheel)  # the instant preview's network, in the server's cache
    server = serve_with_own_store(tmp_path_factory.mktemp("studio"), vgg_assets)
    yield server
    stop_server(server)


def create(client, name="My Stripes", preset="tiny", data=None, headers=None, **extra):
    files = {"painting": ("painting.png", data if data is not None else painting_bytes())}
    return client.post(
        "/create_style", files=files, data={"name": name, "preset": preset, **extra}, headers=headers or {}
    )


def style_ids(client) -> set[str]:
    return {row["id"] for row in client.post("/styles", json={}).json()}


def test_a_painting_becomes_a_served_style_without_restart_then_is_deleted(studio):
    with studio.client() as client:
        response = create(client, author="Test Suite")
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["style"] == "my-stripes" and job["display_name"] == "My Stripes"
        instant = client.get(job["instant_preview_url"])  # before any training step: the any-painting network
        assert instant.status_code == 200 and instant.headers["content-type"] == "image/jpeg", job
        sample = np.asarray(Image.open(sorted((studio.tmp.parent / "photos").iterdir())[0]).convert("RGB"))
        painted = np.asarray(Image.open(io.BytesIO(instant.content)).convert("RGB"))
        assert painted.shape == sample.shape  # the sample photo (none was sent), at its own size
        assert np.abs(painted.astype(int) - sample).mean() > 20  # painted, not the photo sent back
        final, seen = wait_for_job(client, job["job_id"], timeout=300)
        assert final["state"] == "succeeded", final
        assert any(r["state"] == "running" and r.get("steps") == 4 for r in seen)
        # The catalogue's recipe: the arbitrary network (fetched here) anchors the new style too.
        assert any("teacher" in r.get("losses", {}) for r in seen), seen[-1]
        assert final["result"]["style"] == "my-stripes"
        preview = client.get(f"/jobs/{job['job_id']}/preview")
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"

        rows = {row["id"]: row for row in client.post("/styles", json={}).json()}
        assert "my-stripes" in rows and rows["my-stripes"]["display_name"] == "My Stripes"
        stylized = client.post("/stylize", files={"image": ("p.png", png_bytes())}, data={"style": "my-stripes"})
        assert stylized.status_code == 200, stylized.text
        thumbnail = client.get("/ui/thumbnails/my-stripes")
        assert thumbnail.headers["content-type"] == "image/jpeg"
        info = client.post("/info", json={}).json()
        assert "my-stripes" in info["model"]["styles"]

        run = run_cli("styles", "list", "--json", env={"BENTOML_HOME": str(studio.tmp.parent / "bentoml")})
        meta = {row["id"]: row for row in json.loads(run.stdout)}
        assert meta["my-stripes"]["style_image_sha256"]
        colour = meta["my-stripes"]["colour"]  # calibrated on its training photos, as the catalogue's
        assert (
            0.0 <= colour["photo_colour"] <= 1.0
            and colour["colourfulness"] > 0
            and colour != {"photo_colour": 0.0, "colourfulness": 1.0}
        )
        assert list((studio.tmp.parent / "wandb").rglob("run-*.wandb"))  # W&B offline run of the job

        assert client.post("/delete_style", json={"style": "rand-0"}).status_code == 403  # catalogue style
        deleted = client.post("/delete_style", json={"style": "my-stripes"})
        assert deleted.status_code == 200, deleted.text
        assert "my-stripes" not in style_ids(client)
        gone = client.post("/stylize", files={"image": ("p.png", png_bytes())}, data={"style": "my-stripes"})
        assert gone.status_code == 404
        assert client.post("/delete_style", json={"style": "my-stripes"}).status_code == 404


def test_a_cancelled_job_leaves_no_model_and_no_files(studio):
    with studio.client() as client:
        response = create(client, name="Never Finished", preset="best")
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]

        def training() -> bool:
            record = client.get(f"/jobs/{job_id}").json()
            return record["state"] == "running" and record.get("step", 0) >= 1

        wait_until(training, 120, "the training never took a step")
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
        final, _ = wait_for_job(client, job_id, timeout=120)
        assert final["state"] == "cancelled"
        assert "never-finished" not in style_ids(client)
        assert [p.name for p in (studio.jobs / job_id).iterdir()] == ["progress.json"]
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 409

    # request folders are removed after the response is sent
    wait_until(lambda: not studio.leftovers(), 30, lambda: f"left in the server's TMPDIR: {studio.leftovers()}")


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("text painting", 400, "not an image"),
        ("empty painting", 400, "empty"),
        ("path-trick name", 400, "cannot contain"),
        ("blank name", 400, "letter or digit"),
        ("taken name", 409, "already exists"),
        ("long name", 400, "at most"),
        ("unknown preset", 400, ""),
        ("text photo", 400, "not an image"),
    ],
)
def test_bad_paintings_and_names_get_4xx(studio, case, status, message):
    kwargs = {
        "text painting": {"data": b"just some text, not a picture"},
        "empty painting": {"data": b""},
        "path-trick name": {"name": "../../etc/passwd"},
        "blank name": {"name": "  !!  "},
        "taken name": {"name": "rand-0"},
        "long name": {"name": "x" * 61},
        "unknown preset": {"preset": "huge"},
        "text photo": {"photo": b"a caption, not the photo"},
    }[case]
    with studio.client() as client:
        if "photo" in kwargs:  # the instant preview's photo is checked like the painting
            files = {"painting": ("p.png", painting_bytes()), "photo": ("photo.jpg", kwargs.pop("photo"))}
            response = client.post("/create_style", files=files, data={"name": "Photo Case", "preset": "tiny"})
        else:
            response = create(client, **kwargs)
        assert response.status_code == status, response.text
        assert message in response.text
        assert studio.alive()


def test_listening_check_sees_the_real_bind_address():
    from clipmorph.serving.access import listening_only_on_loopback

    with socket.socket() as public:
        public.bind(("0.0.0.0", 0))
        public.listen()
        assert not listening_only_on_loopback()
    with socket.socket() as local:
        local.bind(("127.0.0.1", 0))
        local.listen()
        assert listening_only_on_loopback()


def test_with_an_admin_token_changes_need_it_and_cancel_needs_the_owner_key(tmp_path_factory, vgg_assets):
    workdir = tmp_path_factory.mktemp("token")  # short: the server's unix socket paths live under it
    cache = workdir / "cache"  # the loss network, but no instant-preview network, and pip cannot fetch it
    cache.mkdir()
    (cache / vgg_assets[1].name).symlink_to(vgg_assets[1])
    env = {"CLIPMORPH_ADMIN_TOKEN": "s3cret", "CLIPMORPH_CACHE": str(cache), "PIP_NO_INDEX": "1"}
    server = serve_with_own_store(workdir, vgg_assets, env)
    try:
        with server.client() as client:
            refused = create(client)
            assert refused.status_code == 403 and "admin token" in refused.text  # BentoML hid 403 messages
            assert create(client, headers={"Authorization": "Bearer wrong"}).status_code == 403
            assert client.post("/delete_style", json={"style": "rand-0"}).status_code == 403
            admin = {"Authorization": "Bearer s3cret"}
            response = create(client, name="Token Style", preset="best", headers=admin)
            assert response.status_code == 200, response.text
            job = response.json()
            assert "instant_preview_url" not in job and "unavailable" in job["instant_preview_error"]  # the job goes on
            cancel = f"/jobs/{job['job_id']}/cancel"
            assert "owner" in error_of(client.post(cancel)) and client.post(cancel).status_code == 403
            assert client.post(cancel, headers={"X-Owner-Key": job["owner_key"]}).status_code == 202
            final, _ = wait_for_job(client, job["job_id"], timeout=120)
            assert final["state"] == "cancelled"
            assert client.post("/info", json={}).json()["limits"]["admin_token"] == "set"  # never the value
    finally:
        stop_server(server)


def test_the_web_page_turns_a_painting_into_a_style_in_the_gallery(studio, tmp_path):
    painting = tmp_path / "painting.png"
    painting.write_bytes(painting_bytes())
    with open_page(f"{studio.url}/ui/") as page:
        page.wait_for_selector(".style >> nth=1")
        photo = tmp_path / "photo.png"
        Image.fromarray(gradient_frame(120, 80, t=3)).save(photo)
        page.set_input_files("#file", str(photo))  # the user's photo: the instant preview paints it
        page.set_input_files("#painting", str(painting))
        page.fill("#style-name", "Browser Stripes")
        page.select_option("#preset", "tiny")
        page.click("#create")
        page.wait_for_selector("#create-progress", state="visible")
        page.wait_for_selector("#create-instant", state="visible", timeout=30_000)
        loaded = (
            "() => { const i = document.querySelector('#create-instant-img'); return i.complete && i.naturalWidth }"
        )
        page.wait_for_function(loaded, timeout=30_000)  # shown at once, drawn when its JPEG has arrived
        size = page.eval_on_selector("#create-instant-img", "i => [i.naturalWidth, i.naturalHeight]")
        assert size == [120, 80]  # the user's own photo, painted
        page.wait_for_selector("#create-done", state="visible", timeout=240_000)
        assert "browser-stripes" in page.inner_text("#create-done")
        assert page.locator("#create-preview").is_visible()
        tile = page.locator('.style[data-style="browser-stripes"]')
        assert tile.get_attribute("aria-selected") == "true"
        assert "Browser Stripes" in tile.inner_text()
        page.screenshot(path=str(tmp_path / "create.png"), full_page=True)
    with studio.client() as client:
        assert client.post("/delete_style", json={"style": "browser-stripes"}).status_code == 200


def test_the_client_script_creates_a_style_and_keeps_the_preview(studio, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    painting = tmp_path / "painting.png"
    painting.write_bytes(painting_bytes())
    result = subprocess.run(
        [sys.executable, str(REPO / "clients" / "create_style.py"), str(painting), "--name", "Client Stripes",
         "--preset", "tiny", "--url", studio.url, "--preview", str(tmp_path / "preview.jpg")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "style 'client-stripes' is served now (4 steps" in result.stdout
    with Image.open(tmp_path / "preview.jpg") as preview:
        assert preview.size == (128, 128)  # two photos (rows) x (photo | stylized) at the tiny preset's 64 px
    with studio.client() as client:
        assert "client-stripes" in style_ids(client)
        assert client.post("/delete_style", json={"style": "client-stripes"}).status_code == 200

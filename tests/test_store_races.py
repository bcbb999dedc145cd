"""A style deleted (or written) by another process while a real `bentoml serve` reads the
store: every answer is as if the style were absent or present, never a 500. The race is made to
happen every time by leaving the store in the state a concurrent delete passes through
(``shutil.rmtree`` has taken the model's model.yaml, the weights are still there), instead of
hoping a poller's delete lands mid-request."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from service_fixture import own_store, start_server, stop_server
from test_service import error_of, png_bytes, stylize

pytestmark = [pytest.mark.service]


def half_deleted(home: Path, style_id: str) -> tuple[Path, bytes]:
    """Take the style's model.yaml away, as rmtree does first; returns it to put back."""
    (folder,) = [p for p in (home / "models" / f"clipmorph-style-{style_id}").iterdir() if p.is_dir()]
    manifest = folder / "model.yaml"
    content = manifest.read_bytes()
    manifest.unlink()
    return manifest, content


def restamp(home: Path) -> None:
    """What a delete or a pull does last: tell the running workers the styles changed."""
    stamp = home / "clipmorph-styles.stamp"
    before = stamp.stat().st_mtime_ns if stamp.exists() else 0
    stamp.write_text("changed by the test\n")
    moment = max(time.time_ns(), before + 1_000_000)  # a new generation, however coarse the clock
    os.utime(stamp, ns=(moment, moment))


@pytest.fixture
def server_and_home():
    workdir = Path(tempfile.mkdtemp(prefix="cm-race-"))  # short paths: BentoML's unix sockets
    home = own_store(workdir)
    running = start_server(workdir, {"BENTOML_HOME": str(home)})
    yield running, home
    stop_server(running)
    shutil.rmtree(workdir, ignore_errors=True)


def test_a_style_mid_delete_is_answered_as_absent_and_the_rest_are_served(server_and_home):
    server, home = server_and_home
    with server.client() as client:
        assert stylize(client, png_bytes(), style="rand-1").status_code == 200  # loaded before the delete
        manifest, content = half_deleted(home, "rand-1")
        restamp(home)
        listed = client.post("/styles", json={})
        assert listed.status_code == 200, listed.text
        assert [row["id"] for row in listed.json()] == ["rand-0"]
        thumbnail = client.get("/ui/thumbnails/rand-1")  # as for any unknown id: the placeholder
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"].startswith("image/svg")
        gone = stylize(client, png_bytes(), style="rand-1")
        assert gone.status_code == 404 and "rand-1" in error_of(gone), gone.text
        assert stylize(client, png_bytes(), style="rand-0").status_code == 200  # the others go on
        assert client.post("/delete_style", json={"style": "rand-1"}).status_code in (403, 404)

        manifest.write_bytes(content)  # the other way round: a pull that finishes writing it
        restamp(home)
        assert [row["id"] for row in client.post("/styles", json={}).json()] == ["rand-0", "rand-1"]
        assert stylize(client, png_bytes(), style="rand-1").status_code == 200

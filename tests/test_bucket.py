"""The model store in a bucket, against a real S3-protocol server (moto_server, its own process):
push a catalogue, pull it into an empty store, idempotence, and broken transfers that leave the
store whole."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from s3_server import s3_server

from conftest import random_library, run_cli


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


def store_env(home: Path, s3) -> dict:
    return {"BENTOML_HOME": str(home), **s3.env}


def listed(env: dict) -> list[dict]:
    done = run_cli("styles", "list", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return sorted(json.loads(done.stdout), key=lambda row: row["id"])


def filled_store(tmp_path: Path, s3, prefix: str) -> dict:
    from clipmorph.styles.catalogue import write_catalogue

    write_catalogue(random_library(prefix, num_styles=2), tmp_path / f"{prefix}-catalogue")
    env = store_env(tmp_path / f"{prefix}-home", s3)
    done = run_cli("styles", "import", str(tmp_path / f"{prefix}-catalogue"), env=env)
    assert done.returncode == 0, done.stderr
    return env


def test_push_then_pull_into_an_empty_store_gives_the_same_styles_and_repeats_do_nothing(tmp_path, s3):
    from PIL import Image

    from media_factory import gradient_frame

    source = filled_store(tmp_path, s3, "pushed")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(gradient_frame(64, 48)).save(photos / "one.jpg")
    assert run_cli("content", "import", str(photos), env=source).returncode == 0  # the training photos too
    url = s3.bucket("models-a") + "/catalogue"
    first = run_cli("styles", "push", url, env=source)
    assert first.returncode == 0, first.stderr
    assert "pushed 4 model(s)" in first.stdout  # the photos, a backbone and two styles
    again = run_cli("styles", "push", url, env=source)
    assert "pushed 0 model(s), 4 already there" in again.stdout
    index = json.loads(s3.filesystem().cat("models-a/catalogue/index.json"))
    assert {entry["kind"] for entry in index["models"].values()} == {"content", "backbone", "style"}

    empty = store_env(tmp_path / "empty-home", s3)
    pulled = run_cli("styles", "pull", url, env=empty)
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 4 model(s)" in pulled.stdout
    assert listed(empty) == listed(source)
    stored = sorted((tmp_path / "empty-home" / "models" / "clipmorph-content").glob("*/photos/*.jpg"))
    assert [p.read_bytes() for p in stored] == [(photos / "one.jpg").read_bytes()]
    assert "pulled 0 model(s), 4 already in the store" in run_cli("styles", "pull", url, env=empty).stdout


def test_a_withdrawn_style_leaves_every_store_that_pulls_and_no_push_brings_it_back(tmp_path, s3, monkeypatch):
    from clipmorph.errors import BadInput
    from clipmorph.styles import bucket

    source = filled_store(tmp_path, s3, "gone")
    url = s3.bucket("models-w") + "/catalogue"
    assert run_cli("styles", "push", url, env=source).returncode == 0
    target = store_env(tmp_path / "puller-home", s3)
    assert run_cli("styles", "pull", url, env=target).returncode == 0
    fs = s3.filesystem()
    index = json.loads(fs.cat("models-w/catalogue/index.json"))
    style_tag, entry = next((t, e) for t, e in sorted(index["models"].items()) if e["kind"] == "style")
    backbone_tag = next(t for t, e in index["models"].items() if e["kind"] == "backbone")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BadInput, match="only styles"):
        bucket.withdraw(url, [backbone_tag])
    assert bucket.withdraw(url, [style_tag]) == [style_tag]
    index = json.loads(fs.cat("models-w/catalogue/index.json"))
    assert style_tag not in index["models"] and style_tag in index["withdrawn"]
    assert not fs.exists(f"models-w/catalogue/{entry['file']}")
    style_id = style_tag.split(":")[0].removeprefix("clipmorph-style-")
    pulled = run_cli("styles", "pull", url, env=target)
    assert pulled.returncode == 0 and f"- {style_tag}: withdrawn from the bucket, deleted here" in pulled.stdout
    assert style_id not in {row["id"] for row in listed(target)}
    assert len(listed(target)) == 1  # the other style stays
    pushed = run_cli("styles", "push", url, env=source)  # the source still has it: it is not pushed again
    assert f"- {style_tag}: withdrawn from the bucket, not pushed" in pushed.stdout
    assert style_tag not in json.loads(fs.cat("models-w/catalogue/index.json"))["models"]


def test_a_tampered_export_is_refused_and_the_store_keeps_only_whole_models(tmp_path, s3):
    source = filled_store(tmp_path, s3, "tampered")
    url = s3.bucket("models-b") + "/catalogue"
    assert run_cli("styles", "push", url, env=source).returncode == 0
    fs = s3.filesystem()
    index = json.loads(fs.cat("models-b/catalogue/index.json"))
    style_tag, entry = next((t, e) for t, e in sorted(index["models"].items()) if e["kind"] == "style")
    fs.pipe(f"models-b/catalogue/{entry['file']}", b"not a bentomodel")
    target = store_env(tmp_path / "target-home", s3)
    failed = run_cli("styles", "pull", url, env=target)
    assert failed.returncode == 1, failed.stdout
    assert "does not match its sha256" in failed.stderr and "Traceback" not in failed.stderr
    ids = {row["id"] for row in listed(target)}
    assert style_tag.split(":")[0].removeprefix("clipmorph-style-") not in ids


class CuttingProxy:
    """A TCP proxy to the S3 server that cuts every download of a .bentomodel after a few bytes."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        cut = threading.Event()

        def requests() -> None:
            try:
                while data := client.recv(65536):
                    if data.startswith(b"GET ") and b".bentomodel" in data.split(b"\r\n", 1)[0]:
                        cut.set()
                    server.sendall(data)
            except OSError:
                pass

        threading.Thread(target=requests, daemon=True).start()
        sent = 0
        try:
            while data := server.recv(65536):
                if cut.is_set():
                    client.sendall(data[: max(0, 600 - sent)])
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            client.close()
            server.close()


def test_a_connection_broken_mid_pull_is_a_clean_error_and_the_store_stays_intact(tmp_path, s3):
    source = filled_store(tmp_path, s3, "broken")
    url = s3.bucket("models-c") + "/catalogue"
    assert run_cli("styles", "push", url, env=source).returncode == 0
    target = filled_store(tmp_path, s3, "kept")  # a store that already serves other styles
    before = listed(target)
    proxy = CuttingProxy(s3.url)
    cut = {**target, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "1"}  # fail fast: no botocore retries
    failed = run_cli("styles", "pull", url, env=cut, timeout=300)
    assert failed.returncode == 1 and "clipmorph: error:" in failed.stderr, failed.stderr[-2000:]
    assert "Traceback" not in failed.stderr
    assert listed(target) == before  # nothing half-imported, nothing lost
    healed = run_cli("styles", "pull", url, env=target)  # the same pull on a good connection completes
    assert healed.returncode == 0, healed.stderr
    assert {row["id"] for row in listed(target)} == {row["id"] for row in before} | {"broken-0", "broken-1"}


def test_a_service_started_from_a_bucket_serves_its_styles_and_picks_up_styles_pushed_later(tmp_path, s3):
    from service_fixture import start_server, stop_server
    from test_service import png_bytes

    url = s3.bucket("models-d") + "/catalogue"
    assert run_cli("styles", "push", url, env=filled_store(tmp_path, s3, "first")).returncode == 0
    workdir = Path(tempfile.mkdtemp(prefix="cm-"))  # short: BentoML's unix sockets live under its tmp/
    home = workdir / "home"
    env = {**store_env(home, s3), "CLIPMORPH_MODELS_URL": url, "CLIPMORPH_MODELS_POLL_SECONDS": "1"}
    server = start_server(workdir, env)  # an empty store: everything it serves comes from the bucket
    try:
        with server.client() as client:
            assert {s["id"] for s in client.get("/styles").json()} == {"first-0", "first-1"}
            painted = client.post("/stylize", files={"image": ("p.png", png_bytes())}, data={"style": "first-1"})
            assert painted.status_code == 200, painted.text
            assert run_cli("styles", "push", url, env=filled_store(tmp_path, s3, "later")).returncode == 0
            deadline = time.monotonic() + 60
            while "later-0" not in {s["id"] for s in client.get("/styles").json()}:
                assert time.monotonic() < deadline, "a style pushed to the bucket was not picked up"
                time.sleep(0.5)
            painted = client.post("/stylize", files={"image": ("p.png", png_bytes())}, data={"style": "later-0"})
            assert painted.status_code == 200, painted.text
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)

"""The HTTP service, end to end, against a real `bentoml serve` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from clipmorph.inference import media

from conftest import REPO, random_library
from media_factory import ffmpeg_probe, gradient_frame, jpeg_with_malformed_exif, make_video

pytestmark = pytest.mark.service


def png_bytes(width=96, height=64, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gradient_frame(width, height)).save(buffer, format=fmt)
    return buffer.getvalue()


def stylize(client, data: bytes, filename="photo.png", **fields):
    fields = {"style": "rand-0", **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}}
    return client.post("/stylize", files={"image": (filename, data)}, data=fields)


def error_of(response) -> str:
    body = response.json()
    return (body[0] if isinstance(body, list) else body)["error"]


def wait_until(condition, timeout: float, failure: str | Callable[[], str], every: float = 0.2) -> None:
    """Poll ``condition`` until it holds; fail at the deadline with ``failure`` (called then, when
    it is a function, so the message shows the state that failed rather than the state at the start)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure() if callable(failure) else failure
        time.sleep(every)


def batching_metrics(client) -> tuple[float, float]:
    """(batches, frames) the model's ``stylize`` has run since the server started."""
    metrics = client.get("/metrics").text
    counts = re.findall(r'bentoml_service_adaptive_batch_size_count\{[^}]*method_name="stylize"[^}]*\} (\S+)', metrics)
    sums = re.findall(r'bentoml_service_adaptive_batch_size_sum\{[^}]*method_name="stylize"[^}]*\} (\S+)', metrics)
    return (float(counts[0]), float(sums[0])) if counts and sums else (0.0, 0.0)


def wait_for_job(client, task_id: str, timeout: float = 300) -> tuple[dict, list[dict]]:
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{task_id}")
        if response.status_code == 200:
            seen.append(response.json())
            if seen[-1]["state"] in ("succeeded", "failed", "cancelled"):
                return seen[-1], seen
        time.sleep(0.2)
    raise AssertionError(f"job {task_id} did not end: {seen[-1:]}")


# --- the happy paths ---


def test_health_docs_and_page(server):
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        spec = client.get("/docs.json").json()
        assert {"/stylize", "/styles", "/video_job/submit", "/stylize_video"} <= set(spec["paths"])
        assert "swagger" in client.get("/").text.lower()
        page = client.get("/ui/")
        assert page.status_code == 200 and "<title>ClipMorph" in page.text
        assert client.get("/ui/static/app.js").status_code == 200


def test_the_page_cannot_be_framed_sniffed_or_fed_foreign_scripts(server):
    with server.client() as client:
        page = client.get("/ui/")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        for response in (page, client.get("/styles"), client.get("/healthz")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"


def test_styles_list_with_thumbnails(server):
    from clipmorph.styles import index, store

    with server.client() as client:
        styles = client.post("/styles", json={}).json()
        assert [s["id"] for s in styles] == ["rand-0", "rand-1"]
        assert styles[0]["display_name"] == "Random test style 0"
        thumbnail = client.get(styles[0]["thumbnail_url"])
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"].startswith("image/")
        store.save_library(random_library("late", num_styles=1, seed=21))  # added while the server runs
        try:
            assert [s["id"] for s in client.post("/styles", json={}).json()] == ["late-0", "rand-0", "rand-1"]
            assert stylize(client, png_bytes(), style="late-0").status_code == 200  # served without a restart
        finally:
            index.delete_style("late-0")
        assert [s["id"] for s in client.post("/styles", json={}).json()] == ["rand-0", "rand-1"]
        assert stylize(client, png_bytes(), style="late-0").status_code == 404


def test_the_read_only_routes_answer_a_plain_get(server):
    """`curl host/styles` and `curl host/info` work: GET answers as the POST does."""
    with server.client() as client:
        for route in ("/styles", "/info"):
            got, posted = client.get(route), client.post(route, json={})
            assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
            assert got.json() == posted.json()
        assert client.get("/stylize").status_code in (404, 405)  # only the listed routes


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_stylize_image_formats(server, fmt):
    with server.client() as client:
        response = stylize(client, png_bytes(), strength=0.9, output_format=fmt)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.format == fmt.upper() and image.size == (96, 64)


def test_blend_and_colour_options_change_the_result(server):
    with server.client() as client:
        plain = np.asarray(Image.open(io.BytesIO(stylize(client, png_bytes()).content)), dtype=int)
        blended = stylize(client, png_bytes(), blend_with="rand-1", blend=0.5)
        kept = stylize(client, png_bytes(), preserve_color=True)
    assert blended.status_code == kept.status_code == 200
    for other in (blended, kept):
        assert np.abs(np.asarray(Image.open(io.BytesIO(other.content)), dtype=int) - plain).mean() > 2


def test_same_request_gives_the_same_pixels_as_the_cli_engine(server, library):
    """The service adds no logic of its own: its output equals the engine's (the backend it picks
    by default, an upload through the any-size model)."""
    from clipmorph.inference.engine import AUTO, Engine, pick_backend, pick_device
    from clipmorph.inference.options import StyleMix, StylizeOptions

    with server.client() as client:
        served = np.asarray(Image.open(io.BytesIO(stylize(client, png_bytes(), strength=0.7).content)))
    engine = Engine(library, device="cpu", backend=pick_backend(AUTO, pick_device("cpu")))
    options = StylizeOptions(StyleMix.single("rand-0"), 0.7)
    [local] = engine.stylize_frames([gradient_frame(96, 64)], options, any_size=True)
    assert np.abs(served.astype(int) - local.astype(int)).max() <= 2


def test_concurrent_mixed_styles_form_batches(server):
    styles = ["rand-0", "rand-1", "rand-0=0.5,rand-1=0.5"]
    sizes = [(96, 64), (64, 64), (96, 64)]

    def one(i: int) -> int:
        with server.client() as client:
            width, height = sizes[i % 3]
            return stylize(client, png_bytes(width, height), style=styles[i % 3]).status_code

    with server.client() as client:
        batches_before, frames_before = batching_metrics(client)
    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(one, range(48)))
    assert codes == [200] * 48
    with server.client() as client:
        batches_after, frames_after = batching_metrics(client)
    batches, frames = batches_after - batches_before, frames_after - frames_before
    # These 48 requests' own batches (the counters also hold every earlier test's requests).
    assert frames == 48 and frames / batches > 1.0, f"{frames} frames in {batches} batches: no batching"


def model_calls(log: Path) -> int:
    """Requests the model worker answered, by its access log."""
    return log.read_text().count("[service:clipmorph-model:1] _ (scheme=http,method=POST,path=/stylize,")


def test_no_request_to_the_model_is_lost_or_sent_twice_across_client_session_refreshes(server):
    """BentoML's client to the model replaces its session every 100 requests by default, closing the one
    requests are still in flight on: they failed and were retried (a second model call), or waited for
    an answer that never came (the soak's 60 s timeouts). 240 requests, 12 at a time: one call each."""
    before = model_calls(server.log)

    def one(i: int) -> int:
        with server.client(timeout=60) as client:
            return stylize(client, png_bytes(48 + 4 * (i % 3), 32), style=f"rand-{i % 2}").status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(one, range(240)))
    assert codes == [200] * 240
    # A retry happens inside its request, so every model call has been made by now; their access log
    # lines reach the file in order, through the server's own pipe. One more call, made after all of
    # them, is the marker: once its line is in, every earlier line is, and the count is final.
    with server.client(timeout=60) as client:
        assert stylize(client, png_bytes(52, 36)).status_code == 200
    wait_until(lambda: model_calls(server.log) - before >= 241, 60, "the model's access log never caught up")
    assert model_calls(server.log) - before == 241


def test_video_job_with_progress_and_audio(server, tmp_path):
    source = make_video(tmp_path / "clip.mp4", frames=24, size=(96, 64), fps=12)
    with server.client() as client, source.open("rb") as handle:
        submitted = client.post("/video_job/submit", files={"video": ("clip.mp4", handle)}, data={"style": "rand-1"})
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        final, _ = wait_for_job(client, task_id)
        assert final["state"] == "succeeded", final
        assert final["total"] == 24 and final["result"]["frames"] == 24
        assert final["result"]["encoder"] == media.pick_h264_encoder("auto")
        stages = final["result"]["stage_seconds"]
        assert set(stages) == {"decode", "stylize", "encode"} and stages["stylize"] > 0
        assert sum(stages.values()) <= final["result"]["seconds"] * 3  # three threads at most
        for method, path in [("POST", "/video_job/retry"), ("POST", "/video_job"), ("GET", "/video_job/status")]:
            assert client.request(method, path, params={"task_id": task_id}).status_code in (404, 405), path
        download = client.get(f"/jobs/{task_id}/result")
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    result = tmp_path / "result.mp4"
    result.write_bytes(download.content)
    frames, report = ffmpeg_probe(result)
    assert frames == 24 and "Audio: aac" in report and re.search(r"\b12 fps\b", report)
    job_files = sorted(p.name for p in (server.jobs / task_id).iterdir())
    assert job_files == ["progress.json", "result.mp4"]  # the upload copy is gone
    store = Path(os.environ["BENTOML_HOME"]) / "task_result.db"  # BentoML's task store kept every request body
    if store.exists():
        import sqlite3

        with sqlite3.connect(store) as db:
            assert db.execute("SELECT count(*) FROM result").fetchone()[0] == 0


def test_video_jobs_are_checked_at_submission_and_queued_with_a_bounded_depth(server, shared_data, tmp_path):
    with server.client() as client:
        text = client.post("/video_job/submit", data={"video": "clip.mp4", "style": "rand-0"})
        assert text.status_code == 400 and "upload" in text.text  # before: 200, then a failed job
        still = client.post("/video_job/submit", files={"video": ("p.png", png_bytes())}, data={"style": "rand-0"})
        assert still.status_code == 400 and "not a video" in still.text
        clip = (shared_data / "videos" / "ski.mov").read_bytes()
        submitted = []
        for _ in range(3):  # 1 runs, 2 wait (CLIPMORPH_MAX_VIDEO_JOBS=1, CLIPMORPH_MAX_QUEUED_VIDEO_JOBS=2 here)
            answer = client.post("/video_job/submit", files={"video": ("ski.mov", clip)}, data={"style": "rand-0"})
            assert answer.status_code == 200, answer.text
            submitted.append(answer.json()["job_id"])
        full = client.post("/video_job/submit", files={"video": ("ski.mov", clip)}, data={"style": "rand-0"})
        assert full.status_code == 429 and "queue is full" in full.text
        last = client.get(f"/jobs/{submitted[-1]}").json()
        assert last["state"] == "queued" and last["position"] == 2, last
        for job_id in reversed(submitted):
            assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
        for job_id in submitted:
            final, _ = wait_for_job(client, job_id, timeout=120)
            assert final["state"] == "cancelled"
            assert not list((server.jobs / job_id).glob("input*"))
    assert server.alive()


def test_sync_video_endpoint(server, tmp_path):
    source = make_video(tmp_path / "short.mov", frames=10, size=(64, 48), fps=10, audio_codec="pcm_s16le")
    with server.client() as client, source.open("rb") as handle:
        response = client.post("/stylize_video", files={"video": ("short.mov", handle)}, data={"style": "rand-0"})
    assert response.status_code == 200, response.text
    result = tmp_path / "out.mp4"
    result.write_bytes(response.content)
    frames, report = ffmpeg_probe(result)
    assert frames == 10 and "Audio: aac" in report


def test_cancel_stops_the_job_and_frees_its_files(server, shared_data):
    with server.client() as client, (shared_data / "videos" / "ski.mov").open("rb") as handle:
        task_id = client.post(
            "/video_job/submit", files={"video": ("ski.mov", handle)}, data={"style": "rand-0"}
        ).json()["task_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            record = client.get(f"/jobs/{task_id}")
            if record.status_code == 200 and record.json().get("done", 0) > 0:
                break
            time.sleep(0.2)
        assert client.post(f"/jobs/{task_id}/cancel").status_code == 202
        final, _ = wait_for_job(client, task_id, timeout=60)
        assert final["state"] == "cancelled" and final["done"] < 250
        assert client.get(f"/jobs/{task_id}/result").status_code == 404
        assert client.post(f"/jobs/{task_id}/cancel").status_code == 409
    leftovers = sorted(p.name for p in (server.jobs / task_id).iterdir())
    assert leftovers == ["cancel", "progress.json"]


@pytest.mark.slow
def test_video_client_on_the_real_clip(server, shared_data, tmp_path):
    """Done-when: clients/stylize_video.py shows progress and returns a 250-frame clip with audio."""
    output = tmp_path / "ski-out.mp4"
    result = subprocess.run(
        [sys.executable, str(REPO / "clients" / "stylize_video.py"), str(shared_data / "videos" / "ski.mov"),
         str(output), "--style", "rand-1", "--max-side", "320", "--url", server.url],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "250/250" in result.stderr and "frame/s" in result.stderr
    frames, report = ffmpeg_probe(output)
    assert frames == 250 and "Audio: aac" in report and re.search(r"Video: h264.* 852x480", report)


def test_image_client(server, tmp_path):
    source = tmp_path / "p.png"
    source.write_bytes(png_bytes())
    output = tmp_path / "out.jpg"
    result = subprocess.run(
        [sys.executable, str(REPO / "clients" / "stylize_image.py"), str(source), str(output), "--style", "rand-0",
         "--url", server.url],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(output).format == "JPEG"


# --- bad input: 4xx with a reason, and the server keeps answering ---


def bomb_png(width=60000, height=60000) -> bytes:
    """A valid PNG header that claims enormous dimensions (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def audio_only(path):
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path.read_bytes()


IMAGE_CASES = {
    "not an image": (b"hello, I am text" * 10, {}, 400, "not an image"),
    "zero bytes": (b"", {}, 400, "empty"),
    "truncated jpeg": (None, {}, 400, "truncated"),
    "image over the pixel limit": (bomb_png(6000, 6000), {}, 400, "limit is 20.0 MP"),
    "decompression bomb": (bomb_png(60000, 60000), {}, 400, "too large"),
    "unknown style": (png_bytes(), {"style": "vangogh"}, 404, "available styles: rand-0, rand-1"),
    "strength above 1": (png_bytes(), {"strength": 1.5}, 400, "less than or equal to 1"),
    "strength below 0": (png_bytes(), {"strength": -0.1}, 400, "greater than or equal to 0"),
    "blend above 1": (png_bytes(), {"blend_with": "rand-1", "blend": 2}, 400, "less than or equal to 1"),
    "blend with unknown": (png_bytes(), {"blend_with": "nope"}, 404, "unknown style 'nope'"),
    "max side over the limit": (png_bytes(), {"max_side": 4096}, 400, "over this server's limit"),
    "bad output format": (png_bytes(), {"output_format": "bmp"}, 400, "output_format"),
    "a video sent as image": (None, {}, 400, "not an image"),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_image_requests(server, case, shared_data):
    data, fields, status, message = IMAGE_CASES[case]
    if case == "truncated jpeg":
        data = png_bytes(400, 300, fmt="JPEG")[:3000]
    if case == "a video sent as image":
        data = (shared_data / "videos" / "ski.mov").read_bytes()
    with server.client() as client:
        response = stylize(client, data, **fields)
    assert response.status_code == status, response.text
    assert message in response.text
    assert server.alive()


def test_upload_over_the_limit_is_413(server):
    big = b"\0" * (4 * 1024 * 1024)
    with server.client() as client:
        declared = client.post("/stylize", files={"image": ("big.png", big)}, data={"style": "rand-0"})
        assert declared.status_code == 413 and "too large" in declared.text

        def chunks():  # no Content-Length: the middleware must count
            for _ in range(8):
                yield b"\0" * (512 * 1024)

        streamed = client.post("/stylize", content=chunks(), headers={"content-type": "application/octet-stream"})
        assert streamed.status_code == 413
    assert server.alive()


def test_each_route_has_its_own_body_limit(server):
    body = b"\0" * int(2.5 * 1024 * 1024)  # over the image limit (2 MB here), under the general one (3 MB)
    with server.client() as client:
        one = client.post("/stylize", files={"image": ("big.png", body)}, data={"style": "rand-0"})
        assert one.status_code == 413 and "/stylize" in one.text
        batch = client.post("/stylize_batch", files={"images": ("big.png", body)}, data={"style": "rand-0"})
        assert batch.status_code == 400 and "not an image" in batch.text  # size accepted; content refused
        small = client.post("/delete_style", content=b'{"style": "' + b"x" * 100_000 + b'"}')
        assert small.status_code == 413


def open_uploads(server, source: str, count: int, length: int = 200000) -> list:
    """``count`` uploads from the address ``source`` (any of 127/8 reaches the server) that send
    their headers and the start of a body, and nothing more."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(server.url)
    head = (
        b"POST /stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
        b'Content-Disposition: form-data; name="image"; filename="slow.png"\r\n\r\n' % length
    )
    uploads = []
    for _ in range(count):
        connection = socket.create_connection((address.hostname, address.port), source_address=(source, 0))
        connection.sendall(head)
        uploads.append(connection)
    return uploads


def answered(connections: list, wait: float, enough: int | None = None) -> list:
    """The connections with an answer to read: those ready at once, then (``wait`` > 0) those
    ready within ``wait`` seconds, stopping once ``enough`` are (select, no polling)."""
    import select

    ready: set = set()
    deadline = time.monotonic() + wait
    while True:
        waiting = [c for c in connections if c not in ready]
        readable = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))[0] if waiting else []
        ready.update(readable)
        if not readable or len(ready) >= (enough or len(connections)):
            return [c for c in connections if c in ready]


def read_to_close(connection) -> bytes:
    """Everything the server sends until it closes the connection (its answer said so)."""
    connection.settimeout(30)
    chunks = []
    while chunk := connection.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def keep_sending(connections: list, stop) -> None:
    """A byte on every connection twice a second, until ``stop`` is set: slow, never idle."""
    while not stop.wait(0.5):
        for connection in connections:
            with contextlib.suppress(OSError):  # answered and closed by the server
                connection.sendall(b"x")


def test_stalled_uploads_get_408_and_do_not_lock_other_clients_out(server):
    stalled = open_uploads(server, "127.0.0.1", 70)  # more than CLIPMORPH_MAX_CONCURRENCY (64)
    answers = []
    for connection in stalled:
        connection.settimeout(30)  # the idle limit is 3 s here; the traffic timeout is 900 s
        try:
            answers.append(connection.recv(100).split(b" ")[1])
        except (TimeoutError, IndexError):
            answers.append(b"no answer")
        finally:
            connection.close()
    assert set(answers) <= {b"408", b"429"} and b"408" in answers, answers
    response = stylize(server.client(timeout=60), png_bytes())
    assert response.status_code == 200  # the slots are free again
    assert server.alive()


def test_a_hundred_slow_uploads_from_two_addresses_lock_no_one_else_out(server):
    """100 uploads that never finish, kept alive a byte at a time: each address may hold 32 open
    (CLIPMORPH_MAX_REQUESTS_PER_CLIENT), its next ones get 429 at once; the 64 held ones fill what
    used to be every processing slot (CLIPMORPH_MAX_CONCURRENCY 64), yet other clients are served."""
    import threading

    uploads = open_uploads(server, "127.0.0.2", 50) + open_uploads(server, "127.0.0.3", 50)
    stop = threading.Event()
    trickle = threading.Thread(target=keep_sending, args=(uploads, stop), daemon=True)
    trickle.start()
    try:
        refused = answered(uploads, wait=30, enough=36)
        assert len(refused) == 36, len(refused)  # 18 over the cap at each address
        for connection in refused:
            answer = read_to_close(connection)
            assert answer.startswith(b"HTTP/1.1 429") and b"at most 32" in answer, answer
        held = [c for c in uploads if c not in refused]
        with server.client(timeout=60) as client:
            for _ in range(4):
                assert stylize(client, png_bytes()).status_code == 200
                assert client.get("/styles").status_code == 200
        assert answered(held, wait=0) == []  # all 64 still held (no 408, no 429) while others were served
    finally:
        stop.set()
        trickle.join()
        for connection in uploads:
            connection.close()
    assert server.alive()


def test_request_heads_trickled_in_or_never_sent_are_cut_off_and_others_are_served(server):
    """Slowloris: connections that send nothing, or one header line a second, are closed after
    CLIPMORPH_HEADER_TIMEOUT_SECONDS (3 here) while every other client is answered."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(server.url)
    silent = [socket.create_connection((address.hostname, address.port)) for _ in range(100)]
    trickling = socket.create_connection((address.hostname, address.port))
    trickling.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    closed_after = None
    with server.client(timeout=60) as client:
        while time.monotonic() - started < 20:
            try:
                trickling.sendall(b"X-Slow: 1\r\n")  # bytes keep coming: only the deadline stops it
            except OSError:
                closed_after = time.monotonic() - started
                break
            trickling.settimeout(1.0)
            try:
                if trickling.recv(100) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            assert client.get("/livez").status_code == 200  # everyone else is served meanwhile
    assert closed_after is not None and 2 <= closed_after <= 10, closed_after
    for connection in silent:
        connection.settimeout(10)
        assert connection.recv(100) == b""  # closed, with no request ever sent
        connection.close()
    trickling.close()
    response = stylize(server.client(timeout=60), png_bytes())  # kept-alive requests still work
    assert response.status_code == 200


def test_path_tricks_in_file_names_are_harmless(server):
    with server.client() as client:
        response = stylize(client, png_bytes(), filename="../../../../etc/passwd.png")
    assert response.status_code == 200
    disposition = response.headers.get("content-disposition", "")
    assert "/" not in disposition and ".." not in disposition


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("no video stream", 400, "not an image or video"),
        ("corrupt video", 400, "not an image or video"),
        ("too long", 400, "limit here is 5 s"),
        ("an image", 400, "not a video"),
        ("bad output format", 400, "output_format"),
    ],
)
def test_bad_video_requests(server, shared_data, tmp_path, case, status, message):
    fields = {"style": "rand-0"}
    if case == "no video stream":
        data = audio_only(tmp_path / "sound.mp4")
    elif case == "corrupt video":
        data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    elif case == "too long":
        data = (shared_data / "videos" / "ski.mov").read_bytes()
    elif case == "an image":
        data = png_bytes()
    else:
        data = make_video(tmp_path / "ok.mp4").read_bytes()
        fields["output_format"] = "avi"
    with server.client() as client:
        response = client.post("/stylize_video", files={"video": ("clip.mp4", data)}, data=fields)
    assert response.status_code == status, response.text
    assert message in response.text
    assert server.alive()


def test_a_video_job_that_cannot_be_run_is_refused_at_once_and_leaves_nothing(server, tmp_path):
    before = set(server.jobs.iterdir()) if server.jobs.exists() else set()
    with server.client() as client:
        response = client.post(
            "/video_job/submit", files={"video": ("x.mp4", b"garbage" * 100)}, data={"style": "rand-0"}
        )
        assert response.status_code == 400 and "not an image or video" in response.text  # before: 200, then failed
        assert str(server.tmp) not in response.text and "/tmp" not in response.text
        clip = make_video(tmp_path / "c.mp4").read_bytes()
        unknown = client.post("/video_job/submit", files={"video": ("c.mp4", clip)}, data={"style": "no-such-style"})
        assert unknown.status_code == 404
        assert client.get("/jobs/..%2F..%2Fetc").status_code in (400, 404)
    assert (set(server.jobs.iterdir()) if server.jobs.exists() else set()) == before  # no job was made


def test_stylize_batch_returns_a_zip_in_order(server):
    import zipfile

    sizes = [(96, 64), (64, 64), (80, 48)]
    files = [("images", (f"p{i}.png", png_bytes(w, h))) for i, (w, h) in enumerate(sizes)]
    with server.client() as client:
        response = client.post("/stylize_batch", files=files, data={"style": "rand-1", "output_format": "jpeg"})
        assert response.status_code == 200, response.text
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert archive.namelist() == ["001.jpeg", "002.jpeg", "003.jpeg"]
        assert [Image.open(archive.open(name)).size for name in archive.namelist()] == sizes
        bad = client.post(
            "/stylize_batch", files=[*files, ("images", ("x.png", b"nope" * 10))], data={"style": "rand-1"}
        )
        assert bad.status_code == 400 and "image 4:" in bad.text


def test_a_batch_over_its_pixel_budget_is_refused_before_any_image_is_decoded(server):
    # 4 headers of 16 MP each: under the per-image limit (20 MP here), 64 MP together (the budget is 60)
    files = [("images", (f"big{i}.png", bomb_png(4000, 4000))) for i in range(4)]
    with server.client() as client:
        response = client.post("/stylize_batch", files=files, data={"style": "rand-1"})
        assert response.status_code == 400 and "add up to 64 MP" in response.text, response.text
        fits = client.post("/stylize_batch", files=files[:3], data={"style": "rand-1"})
        assert fits.status_code == 400 and "image 1:" in fits.text  # within budget: decoded, found truncated
    assert server.alive()


def test_load_generator_reports_throughput_and_latency(server, tmp_path):
    report = tmp_path / "load.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "clients" / "load.py"), "--url", server.url, "--clients", "3", "--seconds", "3",
         "--sizes", "64,96", "--json", str(report)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    numbers = json.loads(report.read_text())
    assert numbers["requests_ok"] > 0 and numbers["errors"] == {}
    assert 0 < numbers["latency_p50_s"] <= numbers["latency_p95_s"] <= numbers["latency_p99_s"]
    assert numbers["styles"] == ["rand-0", "rand-1"] and "req/s" in result.stdout


def test_temp_files_are_cleaned_up(server, tmp_path):
    """Every kind of request, answered or refused, leaves nothing in the server's TMPDIR (its
    request folders are removed in the background once the answer is sent)."""
    clip = make_video(tmp_path / "clip.mp4", frames=6, size=(64, 48), fps=12)
    with server.client() as client:
        assert stylize(client, png_bytes()).status_code == 200
        assert stylize(client, b"not an image" * 10).status_code == 400
        pair = [("images", ("a.png", png_bytes())), ("images", ("b.png", png_bytes(64, 64)))]
        batch = client.post("/stylize_batch", files=pair, data={"style": "rand-1"})
        assert batch.status_code == 200, batch.text
        upload = {"video": ("clip.mp4", clip.read_bytes())}
        video = client.post("/stylize_video", files=upload, data={"style": "rand-0"})
        assert video.status_code == 200, video.text

    wait_until(lambda: not server.leftovers(), 30, lambda: f"left in the server's TMPDIR: {server.leftovers()}")


def test_a_misspelt_video_encoder_stops_the_service_at_start():
    env = {**os.environ, "CLIPMORPH_VIDEO_ENCODER": "x265"}
    result = subprocess.run([sys.executable, "-c", "import service"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "unknown video encoder 'x265'" in result.stderr


def test_the_api_worker_never_loads_torch(server):
    """Only the model worker maps libtorch; the API worker (HTTP, decoding, jobs) stays small."""
    import psutil

    with server.client() as client:
        assert stylize(client, png_bytes()).status_code == 200  # the API worker has served a request
    workers = {}
    for child in psutil.Process(server.process.pid).children(recursive=True):
        cmdline = child.cmdline()
        if "--service-name" in cmdline:
            workers[cmdline[cmdline.index("--service-name") + 1]] = child
    assert set(workers) == {"clipmorph", "clipmorph-model"}

    def maps_torch(process) -> bool:
        return any("libtorch" in mapped.path for mapped in process.memory_maps())

    assert maps_torch(workers["clipmorph-model"]) and not maps_torch(workers["clipmorph"])


def test_small_images_beside_normal_ones_fail_alone(server):
    """Batch poisoning: images under the 16 px minimum sent at the same time as normal ones get
    their own 400; every normal request in the same batches still succeeds."""
    normal, small = png_bytes(), png_bytes(8, 8)

    def send(data: bytes) -> int:
        with server.client() as client:
            return stylize(client, data).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(send, [normal, small] * 12))
    assert codes[0::2] == [200] * 12 and codes[1::2] == [400] * 12


def test_pictures_with_malformed_exif_are_stylized_upright(server):
    """A camera's (or an attacker's) mistyped EXIF tag was a 500: now the picture is served,
    turned as its orientation says, alone and in a batch."""
    data = jpeg_with_malformed_exif(48, 32)
    with server.client() as client:
        response = stylize(client, data, filename="phone.jpg")
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == (32, 48)
        batch = client.post("/stylize_batch", files=[("images", ("a.jpg", data)), ("images", ("b.jpg", data))],
                            data={"style": "rand-1"})  # fmt: skip
        assert batch.status_code == 200, batch.text


@pytest.mark.parametrize("value", ["photo.jpg", "/etc/passwd", "http://127.0.0.1:9/x.png", "file:///etc/hostname"])
def test_a_name_or_address_in_a_file_field_is_refused_and_never_fetched(server, value):
    """`curl -F image=photo.jpg` (no @) or a URL: a 400 saying to upload the file, not a 500,
    and the server fetches nothing (BentoML would download it)."""
    with server.client() as client:
        for route, field in (("/stylize", "image"), ("/stylize_batch", "images"), ("/stylize_video", "video")):
            response = client.post(route, data={field: value, "style": "rand-0"}, files={"x": ("x", b"")})
            assert response.status_code == 400, (route, response.text)
            assert "send the file itself" in error_of(response)
        response = client.post("/create_style", data={"painting": value, "name": "x"}, files={"x": ("x", b"")})
        assert response.status_code == 400 and "send the file itself" in error_of(response)


def test_a_restarted_server_fails_the_jobs_it_left_and_stops_their_training(stored_styles, tmp_path_factory):
    """A crash leaves records in running/queued with their uploads and, for a style job, the
    training child: the next start marks them failed, removes the files and stops the child."""
    from clipmorph.serving.jobs.recovery import CHILD_MODULE, CHILD_PID_FILE
    from clipmorph.serving.jobs.store import JobStore

    from service_fixture import start_server, stop_server

    workdir = tmp_path_factory.mktemp("restart")
    store = JobStore(workdir / "jobs", 3600)
    video, style = store.create("video-left-running"), store.create("style-left-training")
    video.write("running", kind="video", done=10, total=250)
    (video.folder / "input.mov").write_bytes(b"someone's clip")
    style.write("running", kind="style", style="half-done")
    (style.folder / "painting.png").write_bytes(b"someone's painting")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", CHILD_MODULE, str(style.folder)])
    (style.folder / CHILD_PID_FILE).write_text(str(child.pid))
    server = start_server(workdir)
    try:
        assert child.wait(timeout=30) != 0  # stopped by the new server
        with server.client() as client:
            for job in (video, style):
                record = client.get(f"/jobs/{job.id}").json()
                assert record["state"] == "failed" and "submit it again" in record["error"], record
                assert sorted(p.name for p in job.folder.iterdir()) == ["progress.json"]
    finally:
        child.kill()
        child.wait()
        stop_server(server)


def _piped_matroska(source: Path, target: Path) -> Path:
    """What a browser's MediaRecorder writes: Matroska with no duration and no frame count
    (FFmpeg writing to a pipe cannot go back to fill them in)."""
    import imageio_ffmpeg

    with target.open("wb") as out:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(source),
            "-c",
            "copy",
            "-f",
            "matroska",
            "-",
        ]
        subprocess.run(command, stdout=out, check=True)
    return target


def test_limits_hold_while_decoding_whatever_the_container_says(server, tmp_path):
    eight_seconds = make_video(tmp_path / "eight.mp4", frames=96, size=(64, 48), fps=12)
    unknown_length = _piped_matroska(eight_seconds, tmp_path / "recorded.mkv")
    assert media.VideoReader(unknown_length).info.seconds == 0  # the header says nothing: only decoding can tell
    fast = make_video(tmp_path / "fast.mp4", frames=200, size=(64, 48), fps=1000, audio_codec=None)
    small = make_video(tmp_path / "a.ts", frames=10, size=(64, 64), fps=10, audio_codec=None, container="mpegts")
    larger = make_video(tmp_path / "b.ts", frames=5, size=(128, 128), fps=10, audio_codec=None, container="mpegts")
    huge = make_video(tmp_path / "c.ts", frames=2, size=(3200, 3200), fps=10, audio_codec=None, container="mpegts")
    growing = tmp_path / "growing.ts"  # 64x64, then 128x128: a size change mid-clip
    growing.write_bytes(small.read_bytes() + larger.read_bytes())
    bomb = tmp_path / "bomb.ts"  # 64x64 in the header, then 10 MP frames (the limit is 8.3)
    bomb.write_bytes(small.read_bytes() + huge.read_bytes())
    cases = [
        (unknown_length, 400, "longer than the limit here of 5 s"),
        (fast, 400, "1000 frames/s; the limit is 120"),
        (bomb, 400, "frame 11 is 3200x3200"),
    ]
    with server.client() as client:
        for clip, status, message in cases:
            response = client.post(
                "/stylize_video", files={"video": (clip.name, clip.read_bytes())}, data={"style": "rand-0"}
            )
            assert response.status_code == status and message in response.text, (clip.name, response.text)
        grown = client.post("/stylize_video", files={"video": ("g.ts", growing.read_bytes())}, data={"style": "rand-0"})
        assert grown.status_code == 200, grown.text
    out = tmp_path / "grown.mp4"
    out.write_bytes(grown.content)
    frames, report = ffmpeg_probe(out)
    assert frames == 15 and "64x64" in report  # every frame, at the clip's size
    assert server.alive()


def test_malformed_multipart_bodies_get_4xx(server):
    """What broken clients and fuzzers send: every one a 4xx, and the server keeps serving."""
    boundary = "b0undary"
    many_parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(1001)
    )
    big_field = f'--{boundary}\r\nContent-Disposition: form-data; name="style"\r\n\r\n{"x" * 1_200_000}\r\n'
    big_field += f"--{boundary}--\r\n"
    cases = {
        "no boundary": ("multipart/form-data", b"--x\r\n\r\nhello\r\n--x--\r\n"),
        "garbage": (f"multipart/form-data; boundary={boundary}", os.urandom(4096)),
        "1001 parts": (f"multipart/form-data; boundary={boundary}", (many_parts + f"--{boundary}--\r\n").encode()),
        "a 1.2 MB text field": (f"multipart/form-data; boundary={boundary}", big_field.encode()),
        "unterminated": (f"multipart/form-data; boundary={boundary}", f"--{boundary}\r\nContent-Dis".encode()),
        "json to a file route": ("application/json", b'{"image": "x", "style": "rand-0"}'),
        "not json": ("application/json", b"{nope"),
    }
    with server.client() as client:
        for case, (content_type, body) in cases.items():
            for path in ("/stylize", "/stylize_batch", "/video_job/submit"):
                response = client.post(path, content=body, headers={"content-type": content_type})
                assert 400 <= response.status_code < 500, (case, path, response.status_code, response.text[:200])
    assert server.alive()

"""Monitoring against the real thing: promtool on the shipped config and rules, and a real
Prometheus scraping a real `bentoml serve`, where every dashboard panel query and every alert
expression must return data after traffic."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import subprocess
import time

import httpx
import pytest
import yaml
from PIL import Image

from conftest import REPO
from media_factory import gradient_frame, make_video
from service_fixture import free_port

MONITORING = REPO / "monitoring"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(PROMTOOL is None or PROMETHEUS is None, reason="prometheus not installed")


def load_dashboards_module():
    spec = importlib.util.spec_from_file_location("dashboards", MONITORING / "grafana" / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_prometheus
def test_promtool_checks_config_and_rules():
    for command in (
        ["check", "config", str(MONITORING / "prometheus" / "prometheus.yml")],
        ["check", "config", str(MONITORING / "prometheus" / "prometheus-compose.yml")],
        ["check", "rules", *map(str, sorted((MONITORING / "prometheus" / "rules").glob("*.yml")))],
        ["test", "rules", str(MONITORING / "prometheus" / "tests" / "alerts_test.yml")],
    ):
        result = subprocess.run([PROMTOOL, *command], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_summary_description_and_runbook():
    rules = yaml.safe_load((MONITORING / "prometheus" / "rules" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 6
    for alert in alerts:
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]


def test_committed_dashboards_are_generated_from_code():
    module = load_dashboards_module()
    for name, build in module.DASHBOARDS.items():
        committed = (MONITORING / "grafana" / "dashboards" / name).read_text()
        assert committed == module.render(build), f"{name} is stale: run `make dashboards`"


def alert_queries() -> list[tuple[str, str]]:
    """The measured side of each alert (what it compares with a threshold)."""
    rules = yaml.safe_load((MONITORING / "prometheus" / "rules" / "alerts.yml").read_text())
    out = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"].strip()
            if expr.startswith("absent("):
                expr = expr.removeprefix("absent(").removesuffix(")")  # present when healthy
            out.append((rule["alert"], re.split(r"\s(?:>|<|==|!=|>=|<=)\s", expr, maxsplit=1)[0]))
    return out


def recording_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((MONITORING / "prometheus" / "rules" / "recording.yml").read_text())
    return [(rule["record"], rule["record"]) for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed")
    work = tmp_path_factory.mktemp("prometheus")
    shutil.copytree(MONITORING / "prometheus" / "rules", work / "rules")
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][0]["static_configs"] = [{"targets": [server.url.removeprefix("http://")]}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(30)


def send_traffic(server, tmp_path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(gradient_frame(96, 64)).save(buffer, format="PNG")
    with server.client() as client:
        for style in ("rand-0", "rand-1", "rand-0=0.5,rand-1=0.5"):
            for _ in range(3):
                assert (
                    client.post(
                        "/stylize", files={"image": ("a.png", buffer.getvalue())}, data={"style": style}
                    ).status_code
                    == 200
                )
        assert (
            client.post("/stylize", files={"image": ("b.png", b"nope" * 20)}, data={"style": "rand-0"}).status_code
            == 400
        )
        assert (
            client.post("/stylize", files={"image": ("c.png", buffer.getvalue())}, data={"style": "x"}).status_code
            == 404
        )
        assert (
            client.post("/stylize", files={"image": ("d.png", b"\0" * (4 << 20))}, data={"style": "rand-0"}).status_code
            == 413
        )
        stream_live_frames(server, buffer.getvalue())
        clip = make_video(tmp_path / "clip.mp4", frames=12, size=(64, 48))
        # A clip that passes the checks at submission and fails while decoding: 64x64, then frames over the limit.
        small = make_video(tmp_path / "a.ts", frames=4, size=(64, 64), audio_codec=None, container="mpegts")
        huge = make_video(tmp_path / "b.ts", frames=1, size=(3200, 3200), audio_codec=None, container="mpegts")
        for data in (clip.read_bytes(), small.read_bytes() + huge.read_bytes()):  # one job succeeds, one fails
            task = client.post("/video_job/submit", files={"video": ("v.ts", data)}, data={"style": "rand-1"}).json()
            deadline = time.monotonic() + 120
            while client.get(f"/jobs/{task['job_id']}").json().get("state") not in ("succeeded", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.2)  # fmt: skip


def stream_live_frames(server, picture: bytes, count: int = 4) -> None:
    """A live viewer sends ``count`` frames at once (the newest wins, older ones are dropped)
    and waits for an answer to each: painted, dropped or unpainted."""
    import asyncio
    import struct

    import aiohttp

    async def stream() -> None:
        url = f"{server.url}/live/ws"
        async with aiohttp.ClientSession() as session, session.ws_connect(url, params={"style": "rand-0"}) as ws:
            assert (await ws.receive_json(timeout=60))["ready"]
            for number in range(count):
                await ws.send_bytes(struct.pack(">I", number) + picture)
            answered = 0
            while answered < count:
                message = await ws.receive(timeout=120)
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
                answered += 1

    asyncio.run(stream())


def query(prometheus: str, expr: str) -> list:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert response.status_code == 200, f"{expr}: {response.text}"
    return response.json()["data"]["result"]


@needs_prometheus
def test_every_panel_and_alert_query_returns_data(server, prometheus, tmp_path):
    send_traffic(server, tmp_path)
    module = load_dashboards_module()
    checks = []
    for name in module.DASHBOARDS:
        rendered = (MONITORING / "grafana" / "dashboards" / name).read_text()
        checks += [(f"panel {title!r}", expr) for title, expr in module.queries(rendered)]
    checks += [(f"alert {name}", expr) for name, expr in alert_queries()]
    checks += [(f"recording rule {name}", expr) for name, expr in recording_queries()]
    has_gpu = bool(query(prometheus, "clipmorph_gpu_memory_bytes"))
    pending = {label: expr for label, expr in checks if has_gpu or not any(g in expr for g in module.GPU_ONLY)}
    deadline = time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        pending = {label: expr for label, expr in pending.items() if not query(prometheus, expr)}
        time.sleep(2)
    assert not pending, f"queries that return no data after traffic: {pending}"
    targets = httpx.get(f"{prometheus}/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]


def test_every_service_metric_is_exported(server):
    """Guards against BentoML multiprocess exporting only some histograms (BentoML #5056)."""
    from clipmorph.serving import metrics

    exported = httpx.get(f"{server.url}/metrics").text
    names = [
        "clipmorph_frames_stylized_total", "clipmorph_inference_batch_size_bucket", "clipmorph_stage_seconds_bucket",
        "clipmorph_video_jobs_total", "clipmorph_video_jobs_active", "clipmorph_video_job_duration_seconds_bucket",
        "clipmorph_video_job_fps_bucket", "clipmorph_video_frames_in_flight", "clipmorph_rejected_inputs_total",
        "clipmorph_model_load_seconds", "clipmorph_styles_loaded", "clipmorph_model_info",
        "clipmorph_process_max_resident_memory_bytes",
    ]  # fmt: skip
    missing = [name for name in names if f"\n{name}" not in exported]
    assert not missing, missing
    assert set(metrics.Metrics.__dataclass_fields__) >= {"frames", "rejected", "gpu_memory"}

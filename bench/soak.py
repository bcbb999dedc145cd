"""Soak: a real `bentoml serve` under 16 clients for 10 minutes (1 with --quick), mixed styles
and sizes, one request in ten a bad input of some kind. What must hold: no 5xx, no connection
errors, every bad input a 4xx, every good one a 200, and memory that stays flat.

`python -m bench --sections soak --merge`
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from bench.service import free_port, start
from bench.video import random_library
from clipmorph.styles.catalogue import write_catalogue

CLIENTS = 16
REQUEST_TIMEOUT = 60  # seconds; a request unanswered this long counts as a connection error
SIZES = [64, 128, 256, 384, 512]


def png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


def bad_requests() -> dict[str, dict]:
    """httpx.post keyword arguments of inputs a careless or hostile client sends."""
    good = png(96, 64, 1)
    return {
        "corrupt file": {"files": {"image": ("x.png", good[: len(good) // 2])}, "data": {"style": "bench-a"}},
        "text, not an image": {"files": {"image": ("x.png", b"hello" * 50)}, "data": {"style": "bench-a"}},
        "8x8 image": {"files": {"image": ("x.png", png(8, 8, 2))}, "data": {"style": "bench-a"}},
        "unknown style": {"files": {"image": ("x.png", good)}, "data": {"style": "no-such-style"}},
        "file field as text": {"data": {"image": "photo.jpg", "style": "bench-a"}},
        "path trick style": {"files": {"image": ("x.png", good)}, "data": {"style": "../../etc/passwd"}},
        "bad strength": {"files": {"image": ("x.png", good)}, "data": {"style": "bench-a", "strength": "7"}},
        "garbage multipart": {"content": os.urandom(2048), "headers": {"content-type": "multipart/form-data; b=x"}},
    }


def service_memory(root: int) -> dict[str, float]:
    """RSS (MiB) of the server's processes by role: the API worker, the model worker, the rest."""
    memory = {"api": 0.0, "model": 0.0, "other": 0.0}
    for process in [psutil.Process(root), *psutil.Process(root).children(recursive=True)]:
        try:
            command = " ".join(process.cmdline())
            rss = process.memory_info().rss / 2**20
        except psutil.Error:
            continue
        role = "model" if "clipmorph-model" in command else "api" if "clipmorph" in command else "other"
        memory[role] += rss
    return {k: round(v, 1) for k, v in memory.items()}


def soak(url: str, root_pid: int, seconds: float, clients: int = CLIENTS) -> dict:
    bad = bad_requests()
    images = {side: png(side, side * 3 // 4, side) for side in SIZES}
    styles = ["bench-a", "bench-b", "bench-a=0.5,bench-b=0.5"]
    counts = {"good_ok": 0, "good_failed": 0, "bad_4xx": 0, "bad_other": 0, "5xx": 0, "connection_errors": 0}
    failures: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def note(key: str, detail: str | None = None) -> None:
        with lock:
            counts[key] += 1
            if detail:
                failures[detail] = failures.get(detail, 0) + 1

    def worker(index: int) -> None:
        rng = random.Random(index)
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            while time.monotonic() < deadline:
                is_bad = rng.random() < 0.1
                case = rng.choice(list(bad)) if is_bad else None
                request = bad[case] if is_bad else {
                    "files": {"image": ("photo.png", images[rng.choice(SIZES)])}, "data": {"style": rng.choice(styles)},
                }  # fmt: skip
                started = time.perf_counter()
                try:
                    status = client.post("/stylize", **request).status_code
                except httpx.HTTPError as error:
                    note("connection_errors", f"{case or 'good'}: {type(error).__name__}")
                    continue
                if status >= 500:
                    note("5xx", f"{case or 'good'}: {status}")
                elif is_bad:
                    note(
                        "bad_4xx" if 400 <= status < 500 else "bad_other",
                        None if status >= 400 else f"{case}: {status}",
                    )
                elif status == 200:
                    with lock:
                        latencies.append(time.perf_counter() - started)
                    note("good_ok")
                else:
                    note("good_failed", f"good: {status}")

    samples: list[tuple[float, dict]] = []
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        samples.append((time.monotonic() - started, service_memory(root_pid)))
        time.sleep(min(15.0, max(seconds / 20, 1.0)))
    wall = time.monotonic() - started
    warm = next((m for t, m in samples if t >= wall * 0.2), samples[0][1])  # after the first fifth: warmed up
    last = service_memory(root_pid)
    return {
        "clients": clients,
        "seconds": round(wall),
        "requests": sum(counts.values()),
        **counts,
        "failures": failures,
        "good_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
        "good_p99_s": round(float(np.percentile(latencies, 99)), 3) if latencies else None,
        "rss_mib_warm": warm,
        "rss_mib_end": last,
        "rss_mib_max": {k: max(m[k] for _, m in samples) for k in last},
    }


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the server has not stopped in 30 s (the soak's numbers are already in)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        print("the server did not stop within 30 s of SIGTERM: killed", flush=True)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def run(quick: bool = False) -> list[dict]:
    seconds = 60 if quick else 600
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-soak-") as tmp:
        home = Path(tmp) / "bentoml"
        write_catalogue(random_library("lite"), Path(tmp) / "catalogue")
        env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "CLIPMORPH_DEVICE": "cpu"}
        subprocess.run([sys.executable, "-m", "clipmorph.cli", "styles", "import", str(Path(tmp) / "catalogue")],
                       env=env, check=True, capture_output=True)  # fmt: skip
        port = free_port()
        process = start(env, port, Path(tmp) / "serve.log")
        try:
            result = soak(f"http://127.0.0.1:{port}", process.pid, seconds)
        finally:
            stop(process)
    print(
        f"soak {result['clients']} clients {result['seconds']} s: {result['requests']} requests, "
        f"{result['good_ok']} good ok, {result['bad_4xx']} bad -> 4xx, 5xx {result['5xx']}, "
        f"connection errors {result['connection_errors']}, failures {result['failures']}; "
        f"RSS MiB warm {result['rss_mib_warm']} end {result['rss_mib_end']} max {result['rss_mib_max']}",
        flush=True,
    )
    return [{"section": "soak", **result}]

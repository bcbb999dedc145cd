"""Service under load: `bentoml serve` + clients/load.py with 1, 4 and 16 clients and mixed
styles, adaptive batching (max_batch_size 16) against the smallest batch BentoML allows (2),
and the default backend (OpenVINO on a CPU) against PyTorch eager, the default before it."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.paths import REPO
from bench.video import random_library
from clipmorph.styles.catalogue import write_catalogue

CONFIGS = {  # label -> the service's environment
    "adaptive batching (max 16)": {"CLIPMORPH_MAX_BATCH_SIZE": "16"},
    "max_batch_size=2 (BentoML's minimum)": {"CLIPMORPH_MAX_BATCH_SIZE": "2"},
}
BEFORE = {"adaptive, PyTorch eager (CLIPMORPH_BACKEND=torch)": {"CLIPMORPH_BACKEND": "torch"}}  # the CPU's old default


def load_module(client: str = "load"):
    """A script of clients/ as a module (the folder is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(client, REPO / "clients" / f"{client}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(env: dict, port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "service.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"service did not start:\n{log.read_text()[-2000:]}")


def peak_memory(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.findall(r'clipmorph_process_max_resident_memory_bytes\{service="(\w+)"\} (\S+)', text)
    return {service: round(float(value) / 2**20, 1) for service, value in found}


def service_rows(
    section: str, width: str, quick: bool, env_extra: dict | None = None, configs: dict[str, dict] = CONFIGS
) -> list[dict]:
    """Random ``width`` styles served by a real `bentoml serve`, per configuration."""
    load = load_module()
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-svc-") as tmp:
        home = Path(tmp) / "bentoml"
        write_catalogue(random_library(width), Path(tmp) / "catalogue")
        cache = str(Path(tmp) / "cache")  # empty: the first start is a machine's first
        env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", **(env_extra or {}),
               "CLIPMORPH_CACHE": cache}  # fmt: skip
        subprocess.run([sys.executable, "-m", "clipmorph.cli", "styles", "import", str(Path(tmp) / "catalogue")],
                       env=env, check=True, capture_output=True)  # fmt: skip
        for number, (label, config_env) in enumerate(configs.items()):
            ready = {}  # seconds from `bentoml serve` to /readyz: the first start with an empty cache
            for start_kind in ("cold", "warm") if number == 0 else ("warm",):
                port = free_port()
                started = time.monotonic()
                process = start({**env, **config_env}, port, Path(tmp) / f"serve-{number}-{start_kind}.log")
                ready[start_kind] = round(time.monotonic() - started, 1)
                if start_kind == "cold":
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(30)
            try:
                for clients in (1, 4) if quick else (1, 4, 16):
                    result = load.run(f"http://127.0.0.1:{port}", clients, 5 if quick else 10, [256, 512])
                    row = {"section": section, "config": label, "width": width, **result}
                    rows.append(row)
                    print(f"{section} {label:<36} {clients:>2} clients {result['throughput_rps']:6.2f} req/s  "
                          f"p50 {result['latency_p50_s']:.3f} s  p95 {result['latency_p95_s']:.3f} s  "
                          f"p99 {result['latency_p99_s']:.3f} s  errors {result['errors']}", flush=True)  # fmt: skip
                memory = peak_memory(port)
                rows.append({"section": f"{section}-memory", "config": label, "peak_rss_mib": memory,
                             "ready_s": ready["warm"], "ready_cold_cache_s": ready.get("cold", "")})  # fmt: skip
                print(f"{section} {label:<36} peak RSS MiB: {memory}; ready after {ready} s", flush=True)
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
    return rows


def run(quick: bool = False) -> list[dict]:
    return service_rows("service", "lite", quick, {"CLIPMORPH_DEVICE": "cpu"}, CONFIGS | BEFORE)

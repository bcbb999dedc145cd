"""A real `bentoml serve service.py` on 127.0.0.1, started once per test session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from conftest import REPO

SERVICE_LIMITS = {
    "CLIPMORPH_MAX_UPLOAD_MB": "3",
    "CLIPMORPH_MAX_IMAGE_UPLOAD_MB": "2",
    "CLIPMORPH_BODY_IDLE_SECONDS": "3",
    "CLIPMORPH_HEADER_TIMEOUT_SECONDS": "3",
    "CLIPMORPH_MAX_BATCH_MEGAPIXELS": "60",
    "CLIPMORPH_MAX_VIDEO_JOBS": "1",
    "CLIPMORPH_MAX_QUEUED_VIDEO_JOBS": "2",
    "CLIPMORPH_MAX_IMAGE_MEGAPIXELS": "20",
    "CLIPMORPH_MAX_SYNC_VIDEO_SECONDS": "5",
    "CLIPMORPH_MAX_SIDE": "1024",
    "CLIPMORPH_BATCH_SIZE": "4",
    "CLIPMORPH_MAX_LIVE_SESSIONS": "2",
    "CLIPMORPH_LIVE_IDLE_SECONDS": "6",
    "CLIPMORPH_LIVE_TARGET_FPS": "0",  # full size: the pace is tested without a server (test_live)
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    tmp: Path  # the server's TMPDIR: every temp file it makes lands here
    jobs: Path
    log: Path

    def client(self, timeout: float = 300) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def leftovers(self) -> list[Path]:
        """Regular files and request folders in the server's TMPDIR (BentoML's sockets live there
        too and stay). The server removes request folders in the background, so one may vanish
        mid-walk: os.walk skips it where rglob raises."""
        found: list[Path] = []
        for folder, dirs, files in os.walk(self.tmp):
            found += [Path(folder, name) for name in dirs if name.startswith("clipmorph-request-")]
            found += [path for path in (Path(folder, name) for name in files) if path.is_file()]
        return found

    def alive(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False


def start_server(
    workdir: Path,
    extra_env: dict | None = None,
    target: str = "service.py",
    python: str = sys.executable,
    cwd: Path = REPO,
) -> Server:
    """``bentoml serve TARGET`` (service.py, or a built bento's tag) by ``python`` (another
    virtual environment's, to serve a bento with its own requirements) from ``cwd``."""
    port = free_port()
    tmp, jobs = workdir / "tmp", workdir / "jobs"
    tmp.mkdir()
    log = workdir / "serve.log"
    env = {**os.environ, **SERVICE_LIMITS, "TMPDIR": str(tmp), "CLIPMORPH_JOBS_DIR": str(jobs), **(extra_env or {})}
    process = subprocess.Popen(
        [python, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, tmp, jobs, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        if server.alive():
            return server
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"bentoml serve not ready in time:\n{log.read_text()[-4000:]}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            kill_tree(server)


def kill_tree(server: Server) -> None:
    """SIGKILL the server and every process under it, as a container's end does: BentoML's
    workers leave the server's process group, so killing the group alone leaves them running."""
    import psutil

    try:
        processes = [psutil.Process(server.process.pid)]
        processes += processes[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=30)


def own_store(workdir: Path) -> Path:
    """A BentoML home of its own holding the random test styles (rand-0, rand-1): servers that
    run beside the session server must not share its store (BentoML's task database)."""
    from clipmorph.styles import catalogue

    from conftest import random_library, run_cli

    catalogue.write_catalogue(random_library(), workdir / "catalogue")
    home = workdir / "bentoml"
    imported = run_cli("styles", "import", str(workdir / "catalogue"), env={"BENTOML_HOME": str(home)})
    assert imported.returncode == 0, imported.stderr
    return home
